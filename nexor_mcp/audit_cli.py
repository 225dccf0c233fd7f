"""`nexor-mcp audit list | show | undo`: read the audit journal, and put back what writes changed.

Output is for people, on stdout (this is not the stdio server); problems with the journal's lines
go to stderr. `undo` restores the before-values of `update_lead` and `set_lead_tags` entries (and
of earlier undos), newest first, each only if the lead still holds what the entry wrote (else it
is refused unless `--force`), and its own writes are journaled like the server's.

Every line printed is escaped (`quoting.one_line`): tag names, error details and everything else
in the journal came from Nexor or a model, and must not drive the terminal (ESC, CR, C1, bidi).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from nexor_mcp.audit import Entry, Journal, account_fingerprint, read_journal
from nexor_mcp.config import ENV_VARS, Settings
from nexor_mcp.quoting import one_line, visible
from nexor_mcp.rules import tag_slug
from nexor_mcp.tools.preview import same

Json = dict[str, Any]

NO_JOURNAL = (
    f"no audit journal is configured: set {ENV_VARS['audit_log']}, audit_log in the config file, or "
    "--audit-log PATH (the same journal the server writes)"
)
NOT_UNDOABLE = {
    "send_message": "a message went to a real person, and a message cannot be unsent",
    "set_lead_status": (
        "a status change may already have triggered the workflow's automations, and no before-value is "
        "recorded for it; set the status back with set_lead_status if needed"
    ),
    "assign_workflow": (
        "enrolling a lead starts the workflow's cadence (its first messages may have gone out), and Nexor "
        "has no endpoint to take a lead out of a workflow"
    ),
    "add_lead_tags": (
        "tags added by id keep the ones the lead had, and the journal cannot tell which of them it had "
        "already, so removing them could remove tags it had before; fix the set with set_lead_tags"
    ),
    "create_lead": "Nexor's public API cannot delete a lead; delete it in the Nexor dashboard if needed",
    "record_meeting": "Nexor's public API cannot delete a meeting; remove it in the Nexor dashboard if needed",
    "stop_automation": (
        "a takeover is reversed by resume_automation, not by undo (and cadence steps missed meanwhile stay missed)"
    ),
    "resume_automation": (
        "resuming is reversed by stop_automation, not by undo (and messages sent meanwhile stay sent)"
    ),
}
ABSENT_NOTE = (
    "{key} did not exist before; Nexor documents no way to delete a metadata key, so it is set to null"
)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


def add_audit_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The `audit` command and its subcommands, on `commands` (the top parser's subparsers). The
    settings flags (`parents`) are taken before `audit`, after it, and after `list`/`show`/`undo`."""
    audit = commands.add_parser(
        "audit", parents=parents, help="list and show the audit journal's entries, undo lead updates",
        description="Reads the audit journal the server writes (NEXOR_AUDIT_LOG / audit_log / --audit-log). "
        "`nexor-mcp audit` alone lists the entries. Settings flags may go before or after `audit`, and "
        "after list/show/undo.",
    )
    actions = audit.add_subparsers(dest="audit_command", metavar="{list,show,undo}")
    # `nexor-mcp audit` alone is `audit list` with no filter.
    audit.set_defaults(audit_command="list", lead=None, tool=None, since=None, json=False)
    listing = actions.add_parser("list", parents=parents, help="the journal's entries, oldest first")
    listing.add_argument("--lead", metavar="ID", help="only this lead's entries")
    listing.add_argument("--tool", metavar="NAME", help="only this tool's entries (undo: the undos)")
    listing.add_argument("--since", metavar="TIME", help=SINCE_HELP)
    listing.add_argument("--json", action="store_true", help="one JSON object per entry and line")
    show = actions.add_parser("show", parents=parents, help="one entry in full, and whether it can be undone")
    show.add_argument("entry", metavar="ID", help="an entry id (or a unique start of one)")
    undo = actions.add_parser(
        "undo", parents=parents, help="restore the before-values of update_lead / set_lead_tags entries, newest first",
        description="Puts back what the chosen entries changed, newest first: each only if the lead still "
        "holds what that entry wrote (else it is refused, unless --force). Uses the configured key, and "
        "refuses entries written with another account's key. The undo writes are journaled (tool undo). "
        "Exit status 0 if everything chosen was undone (or had nothing to undo), 1 otherwise.",
    )
    chosen = undo.add_mutually_exclusive_group(required=True)
    chosen.add_argument("entries", metavar="ID", nargs="*", default=[], help="entry ids (or unique starts)")
    chosen.add_argument("--since", metavar="TIME", help=SINCE_HELP + "; the undoable entries from then on")
    undo.add_argument("--force", action="store_true", help="undo even where the lead changed after the entry")
    undo.add_argument("--yes", action="store_true", help="with --since: do not ask before undoing")
    undo.add_argument("--dry-run", action="store_true", help="say what would be sent, and send nothing")


SINCE_HELP = (
    "a time (2026-11-27 or 2026-11-27T15:00, UTC unless it has an offset), a duration back from now "
    "(30m, 2h, 7d) or an entry id"
)


def run_audit(settings: Settings, args: argparse.Namespace, out: TextIO | None = None) -> int:
    from nexor_mcp.logs import configure_logging, stop_logging

    # Logs go to stderr: by default warnings and errors only (a journal that could not record an
    # undo's outcome, say), as the server's INFO lines mean nothing here; --log-level says otherwise.
    given = getattr(args, "log_level", None)
    level = given or ("WARNING" if settings.log_level == "INFO" else settings.log_level)
    configure_logging(level, (settings.api_key.reveal(),) if settings.api_key else (),
                      json_lines=getattr(args, "log_format", None) == "json")
    try:
        return _run(settings, args, out or sys.stdout)
    finally:
        stop_logging()


def _run(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    if not settings.audit_log:
        _say(f"nexor-mcp audit: {NO_JOURNAL}", sys.stderr)
        return 2
    try:
        contents = read_journal(settings.audit_log)
    except FileNotFoundError:
        contents = None
    except OSError as exc:
        _say(f"nexor-mcp audit: cannot read the journal {settings.audit_log}: {exc.strerror or exc}", sys.stderr)
        return 2
    if contents is not None:
        for problem in contents.problems:
            _say(f"nexor-mcp audit: warning: {settings.audit_log} {problem}", sys.stderr)
    entries = contents.entries if contents is not None else []
    if contents is None and args.audit_command == "list":
        _say(f"The journal {settings.audit_log} does not exist yet: no write has been recorded.", out)
        return 0
    try:
        if args.audit_command == "list":
            return _list(entries, args, out)
        if args.audit_command == "show":
            return _show(entries, args.entry, out)
        return _undo(settings, entries, args, out)
    except UsageError as exc:
        _say(f"nexor-mcp audit {args.audit_command}: {exc}", sys.stderr)
        return 2


class UsageError(Exception):
    pass


def _say(text: str, stream: TextIO) -> None:
    """Print one line with its control and invisible characters escaped (ESC, CR, C1, bidi...)."""
    print(one_line(text), file=stream)


def _json_line(value: Any) -> str:
    """Compact JSON with every control or invisible character as a \\u escape: the same value for a
    program, and nothing that a terminal would act on."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if visible(text) == text:
        return text
    return "".join(json.dumps(char)[1:-1] if visible(char) != char else char for char in text)


# --- list and show --------------------------------------------------------------------------------


def _list(entries: list[Entry], args: argparse.Namespace, out: TextIO) -> int:
    since = _since(args.since, entries) if args.since else None
    chosen = [
        entry for entry in entries
        if (args.lead is None or entry.lead_id == args.lead)
        and (args.tool is None or entry.tool == args.tool)
        and (since is None or since(entry))
    ]
    if args.json:
        for entry in chosen:
            print(_json_line(entry.as_json()), file=out)
        return 0
    if not chosen:
        _say("No entries" + (" match." if len(entries) else " yet."), out)
        return 0
    rows = [("ID", "TIME (UTC)", "TOOL", "LEAD", "WHAT", "OUTCOME")]
    for entry in chosen:  # escaped before the widths are measured, so the columns line up
        rows.append((one_line(entry.id), one_line(_short_time(entry.time)), one_line(entry.tool),
                     one_line(entry.lead_id or "-"), one_line(_what(entry), 48), entry.shown_outcome))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        _say("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5], out)
    return 0


def _show(entries: list[Entry], wanted: str, out: TextIO) -> int:
    entry = _find(entries, wanted)
    if isinstance(entry, str):
        _say(f"nexor-mcp audit show: {entry}", sys.stderr)
        return 1
    rows: list[tuple[str, str]] = [
        ("entry", entry.id), ("time", entry.time), ("tool", entry.tool), ("lead", entry.lead_id or "-"),
        ("account", entry.account or "-"), ("request", f"{entry.method} {entry.path}"),
        ("body", _json(entry.body)),
    ]
    if entry.undoes:
        rows.append(("undoes", entry.undoes))
    outcome = entry.shown_outcome + (f", at {entry.finished}" if entry.finished else "")
    rows.append(("outcome", outcome))
    if entry.detail:
        rows.append(("detail", entry.detail))
    for number, line in enumerate(_changes(entry)):
        rows.append(("changes" if number == 0 else "", line))
    rows.append(("undo", _undo_verdict(entries, entry)))
    for label, text in rows:
        _say(f"{label:<10} {text}", out)
    return 0


def _undo_verdict(entries: list[Entry], entry: Entry) -> str:
    why = not_undoable(entry)
    if why:
        return why
    undone_by = _undone_by(entries, entry)
    if undone_by:
        return f"already undone by entry {undone_by.id} ({undone_by.time})"
    return f"can be undone, if the lead still holds what it wrote: nexor-mcp audit undo {entry.id}"


def _what(entry: Entry) -> str:
    kind = _kind(entry)
    body = entry.body if isinstance(entry.body, dict) else {}
    prefix = "undo: " if entry.undoes else ""
    if kind == "fields":
        names = [name for name in body if name != "metadata"]
        names += [f"metadata.{key}" for key in body.get("metadata") or {}]
        return prefix + ", ".join(names)
    if kind == "tags":
        return prefix + "tags = " + _names(body.get("tags") or [])
    if entry.tool == "send_message" and isinstance(body.get("content"), str):
        return f"{body.get('channel', 'message')}: {_json(body['content'])}"
    shown = [f"{name}={_json(value)}" for name, value in body.items() if name != "lead_id"]
    return ", ".join(shown) or "-"


def _changes(entry: Entry) -> list[str]:
    """One line per value the entry wrote: before → written, where the before is on record."""
    kind = _kind(entry)
    before = entry.before or {}
    if kind == "fields":
        fields, metadata = _written(entry)
        old_fields = before.get("fields") or {}
        old_metadata = before.get("metadata") or {}
        absent = set(before.get("metadata_absent") or [])
        lines = [
            f"{name}: {_value(old_fields[name]) if name in old_fields else '(not recorded)'} → {_value(value)}"
            for name, value in fields.items()
        ]
        for key, value in metadata.items():
            if key in old_metadata:
                old = _value(old_metadata[key])
            else:
                old = "(absent)" if key in absent else "(not recorded)"
            lines.append(f"metadata.{key}: {old} → {_value(value)}")
        return lines
    if kind == "tags":
        return [f"tags: {_names(before.get('tags'))} → {_names(_written_tags(entry))}"]
    return []


# --- undo -----------------------------------------------------------------------------------------


def _kind(entry: Entry) -> str | None:
    """"fields" for a PATCH of a lead, "tags" for a PUT of its tags (the writes undo can reverse)."""
    if entry.method == "PATCH" and entry.path.startswith("leads/") and isinstance(entry.body, dict):
        return "fields"
    if entry.method == "PUT" and entry.path == "leads/tags" and isinstance(entry.body, dict):
        return "tags"
    return None


def not_undoable(entry: Entry) -> str | None:
    """Why `audit undo` cannot reverse this entry (None: it can try)."""
    if entry.outcome == "failed":
        return f"nothing to undo: the write failed ({entry.shown_outcome}), so Nexor changed nothing"
    kind = _kind(entry)
    if kind is None or entry.tool in NOT_UNDOABLE:
        reason = NOT_UNDOABLE.get(entry.tool, "nexor-mcp has no way to reverse this kind of write")
        return f"cannot be undone: {reason}"
    if not entry.before:
        return "cannot be undone: no before-values were recorded with it"
    return None


def _undone_by(entries: list[Entry], entry: Entry) -> Entry | None:
    return next(
        (other for other in reversed(entries)
         if other.undoes == entry.id and other.line > entry.line and other.outcome in ("ok", "accepted")),
        None,
    )


@dataclass
class _Tally:
    undone: int = 0
    nothing: int = 0
    refused: int = 0
    failed: int = 0


def _undo(settings: Settings, entries: list[Entry], args: argparse.Namespace, out: TextIO) -> int:
    tally = _Tally()
    chosen: list[Entry] = []
    if args.since:
        since = _since(args.since, entries)
        for entry in entries:
            if not since(entry) or entry.undoes:
                continue
            why = not_undoable(entry)
            undone_by = _undone_by(entries, entry)
            if why:
                _say(f"{entry.id} {entry.tool}: skipped: {why}", out)
            elif undone_by:
                _say(f"{entry.id} {entry.tool}: skipped: already undone by entry {undone_by.id}", out)
            else:
                chosen.append(entry)
        if not chosen:
            _say("Nothing to undo since then.", out)
            return 0
    else:
        for wanted in dict.fromkeys(args.entries):
            found = _find(entries, wanted)
            if isinstance(found, str):
                _say(f"{wanted}: refused: {found}", out)
                tally.refused += 1
            elif found not in chosen:
                chosen.append(found)
    chosen.sort(key=lambda entry: entry.line, reverse=True)  # newest first
    if settings.api_key is None and chosen:
        _say(f"nexor-mcp audit undo: no Nexor API key is configured ({ENV_VARS['api_key']})", sys.stderr)
        return 2
    if args.since and not args.yes and not args.dry_run and chosen:
        _say(f"Undo these {len(chosen)} entries, newest first?", out)
        for entry in chosen:
            _say(f"  {entry.id} {entry.tool} on {entry.lead_id}: {_what(entry)}", out)
        if not sys.stdin.isatty():
            _say("Not undone: rerun with --yes to undo them without this question.", out)
            return 1
        if input("Undo them? [y/N] ").strip().lower() not in ("y", "yes"):
            _say("Not undone.", out)
            return 1
    import anyio

    journal = Journal(settings.audit_log or "")
    anyio.run(_undo_entries, settings, journal, entries, chosen, args, out, tally)
    done = f"{tally.undone} undone" if not args.dry_run else f"{tally.undone} would be undone"
    _say(f"Done: {done}, {tally.nothing} with nothing to undo, {tally.refused} refused, {tally.failed} failed.", out)
    return 1 if tally.refused or tally.failed else 0


async def _undo_entries(
    settings: Settings, journal: Journal, entries: list[Entry], chosen: list[Entry], args: argparse.Namespace,
    out: TextIO, tally: _Tally,
) -> None:
    from nexor_mcp.client import NexorClient

    client = NexorClient(settings)
    account = account_fingerprint(settings.api_key)
    try:
        for entry in chosen:
            result, lines = await _undo_one(client, journal, entries, entry, account, force=args.force,
                                            dry_run=args.dry_run)
            setattr(tally, result, getattr(tally, result) + 1)
            heading = {"undone": "would be undone" if args.dry_run else "undone", "nothing": "nothing to undo",
                       "refused": "refused", "failed": "FAILED"}[result]
            _say(f"{entry.id} {entry.tool} on {entry.lead_id or '-'}: {heading}", out)
            for line in lines:
                _say(f"  {line}", out)
    finally:
        await client.aclose()


async def _undo_one(
    client: Any, journal: Journal, entries: list[Entry], entry: Entry, account: str | None, *, force: bool,
    dry_run: bool,
) -> tuple[str, list[str]]:
    """("undone" | "nothing" | "refused" | "failed", what to say)."""
    from nexor_mcp.errors import NexorError

    if entry.outcome == "failed":
        return "nothing", [not_undoable(entry) or ""]
    why = not_undoable(entry)
    if why:
        return "refused", [why]
    if entry.account != account:
        return "refused", [
            f"it was written with another Nexor account's key (account {entry.account or 'unknown'}; the "
            f"configured key is account {account}); undo uses the configured key, so it cannot undo it"
        ]
    lead_id = entry.lead_id or (entry.body.get("lead_id") if isinstance(entry.body, dict) else None)
    if not isinstance(lead_id, str):
        return "refused", ["the entry has no lead id"]
    try:
        lead = (await client.get_lead(lead_id))["lead"]
    except NexorError as exc:
        return "failed", [f"could not read the lead, so nothing was sent: {exc}"]
    plan = _plan(entry, lead)
    if isinstance(plan, str):
        return "refused", [plan]
    lines: list[str] = []
    undone_by = _undone_by(entries, entry)
    if plan.differences or undone_by:
        if undone_by:
            plan.differences.insert(0, f"it was already undone by entry {undone_by.id}")
        if not force:
            return "refused", [
                "the lead changed after this entry, so nothing was sent (--force undoes it anyway):",
                *(f"- {difference}" for difference in plan.differences),
            ]
        lines += ["the lead changed after this entry; undoing anyway (--force):",
                  *(f"- {difference}" for difference in plan.differences)]
    if plan.no_op:
        return "nothing", [*lines, "the lead already holds the before-values; nothing was sent"]
    lines += plan.lines
    if dry_run:
        return "undone", [*lines, f"would send: {entry.method} {entry.path} {_json(plan.body)}"]
    undoing = client.journaled(journal, tool="undo", lead_id=lead_id, before=plan.before, undoes=entry.id)
    try:
        if plan.kind == "fields":
            result = await undoing.update_lead(lead_id, plan.body)
        else:
            result = await undoing.set_lead_tags(lead_id, plan.body["tags"])
    except NexorError as exc:
        return "failed", [*lines, f"the undo failed: {exc}"]
    if result.get("accepted") is True:
        lines.append("Nexor accepted the undo, but its answer could not be read: check the lead")
    return "undone", lines


@dataclass
class _Plan:
    kind: str
    body: Json
    before: Json
    """The lead's current values of what the undo writes: the undo's own journal `before`."""
    differences: list[str]
    lines: list[str]
    no_op: bool


def _plan(entry: Entry, lead: Json) -> _Plan | str:
    """What undoing `entry` sends, given the lead as it is now; a str: why it cannot."""
    before = entry.before or {}
    if _kind(entry) == "tags":
        old = before.get("tags")
        if not isinstance(old, list) or not all(isinstance(name, str) for name in old):
            return "its before-values hold no tag list"
        written = _written_tags(entry)
        current = _tag_names(lead)
        changed = []
        if _tag_set(current) != _tag_set(written):
            changed.append(f"tags are {_names(current)}, not {_names(written)} as the entry wrote")
        return _Plan(
            "tags", {"lead_id": lead.get("id", entry.lead_id), "tags": old}, {"tags": current},
            changed, [f"tags: {_names(current)} → {_names(old)}"], _tag_set(current) == _tag_set(old),
        )
    fields, metadata = _written(entry)
    old_fields = before.get("fields") or {}
    old_metadata = before.get("metadata") or {}
    absent = before.get("metadata_absent") or []
    body: Json = {}
    undo_before: Json = {"fields": {}, "metadata": {}, "metadata_absent": []}
    differences: list[str] = []
    lines: list[str] = []
    no_op = True
    for name, written in fields.items():
        if name not in old_fields:
            return f"its before-value of {name} is not on record"
        current = _current_field(lead, name)
        if not _same(current, written):
            differences.append(f"{name} is {_value(current)}, not {_value(written)} as the entry wrote")
        body[name] = old_fields[name]
        undo_before["fields"][name] = None if current is ABSENT else current
        no_op = no_op and _same(current, old_fields[name])
        lines.append(f"{name}: {_value(current)} → {_value(old_fields[name])}")
    stored: Json = lead["metadata"] if isinstance(lead.get("metadata"), dict) else {}
    for key, written in metadata.items():
        current = stored.get(key, ABSENT)
        if not _same(current, written):
            differences.append(f"metadata.{key} is {_value(current)}, not {_value(written)} as the entry wrote")
        if key in old_metadata:
            target = old_metadata[key]
            note = ""
        elif key in absent:
            target = None
            note = " (" + ABSENT_NOTE.format(key=f"metadata.{key}") + ")"
        else:
            return f"its before-value of metadata.{key} is not on record"
        body.setdefault("metadata", {})[key] = target
        if current is ABSENT:
            undo_before["metadata_absent"].append(key)
        else:
            undo_before["metadata"][key] = current
        no_op = no_op and _same(current, target)
        lines.append(f"metadata.{key}: {_value(current)} → {_value(target)}{note}")
    return _Plan("fields", body, undo_before, differences, lines, no_op)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (1, 1.0 and true are three different values to Nexor); an absent
    metadata key equals only an absent one."""
    if a is ABSENT or b is ABSENT:
        return a is b
    return same(a, b)


def _written(entry: Entry) -> tuple[Json, Json]:
    """The fields and metadata values the entry wrote, as Nexor answered them where it did."""
    body = entry.body if isinstance(entry.body, dict) else {}
    fields = {name: value for name, value in body.items() if name != "metadata"}
    metadata = dict(body.get("metadata") or {})
    after = entry.after or {}
    for name, value in (after.get("fields") or {}).items():
        if name in fields:
            fields[name] = value
    for key, value in (after.get("metadata") or {}).items():
        if key in metadata:
            metadata[key] = value
    return fields, metadata


def _written_tags(entry: Entry) -> list[Any]:
    after = entry.after or {}
    if isinstance(after.get("tags"), list):
        return list(after["tags"])
    body = entry.body if isinstance(entry.body, dict) else {}
    return list(body.get("tags") or [])


def _current_field(lead: Json, name: str) -> Any:
    if name == "campaign_id" and "campaign_id" not in lead:
        campaign = lead.get("campaign")  # GET /leads/{id} shows the campaign, not its id
        return campaign.get("id") if isinstance(campaign, dict) else None
    return lead.get(name, ABSENT)


def _tag_names(lead: Json) -> list[Any]:
    return [tag.get("name") if isinstance(tag, dict) else tag for tag in lead.get("tags") or []]


def _tag_set(names: list[Any]) -> set[str]:
    """Tags as Nexor matches them, by slug: "VIP", "vip" and "Hot lead" / "hot-lead" are one tag each."""
    return {tag_slug(str(name)) for name in names}


# --- helpers --------------------------------------------------------------------------------------


def _find(entries: list[Entry], wanted: str) -> Entry | str:
    """The entry with this id, or the only one whose id starts with it; a str: why none."""
    exact = [entry for entry in entries if entry.id == wanted]
    if exact:
        return exact[0]
    starting = [entry for entry in entries if wanted and entry.id.startswith(wanted)]
    if len(starting) == 1:
        return starting[0]
    if starting:
        return f"{len(starting)} entries start with {wanted!r}; give more of the id"
    return f"no entry {wanted!r} in the journal"


def _since(text: str, entries: list[Entry]) -> Callable[[Entry], bool]:
    found = _find(entries, text) if "-" in text and "T" in text else None
    if isinstance(found, Entry):
        line = found.line
        return lambda entry: entry.line >= line
    when = parse_time(text)
    return lambda entry: _entry_time(entry) >= when


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO-8601 time (UTC unless it has an offset) or a duration back from now (30m, 2h, 7d)."""
    text = text.strip()
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since: {text!r} is not {SINCE_HELP}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _entry_time(entry: Entry) -> datetime:
    try:
        when = datetime.fromisoformat(entry.time)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _short_time(text: str) -> str:
    return text[:19].replace("T", " ")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _value(value: Any) -> str:
    return "(absent)" if value is ABSENT else _json(value)


def _names(names: Any) -> str:
    return "[" + ", ".join(map(str, names)) + "]" if isinstance(names, list) else "(not recorded)"


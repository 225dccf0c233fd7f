"""`nexor-mcp audit list | show | undo`: read the audit journal, and put back what writes changed.

Output is for people, on stdout (this is not the stdio server); problems with the journal's lines
go to stderr, and every line is escaped (`render.say`). `undo` restores the before-values of
`update_lead` and `set_lead_tags` entries (and of earlier undos), newest first, each only if the
lead still holds what the entry wrote (else it is refused unless `--force`; see `undo`), and its
own writes are journaled like the server's.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from nexor_mcp.account import account_fingerprint
from nexor_mcp.audit.journal import FILE_MODE, JournalWriter
from nexor_mcp.audit.record import Decision, Entry
from nexor_mcp.audit.render import compact, json_line, names, say, short_time, shown
from nexor_mcp.audit.source import NO_JOURNAL, CannotRead, JournalSource, journal_source
from nexor_mcp.audit.undo import kind, not_undoable, undo_one, undone_by, written_tags, written_values
from nexor_mcp.config import ENV_VARS, Settings
from nexor_mcp.quoting import one_line

SINCE_HELP = (
    "a time (2026-11-27 or 2026-11-27T15:00, UTC unless it has an offset), a duration back from now "
    "(30m, 2h, 7d) or an entry id"
)


def add_audit_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The `audit` command and its subcommands, on `commands` (the top parser's subparsers). The
    settings flags (`parents`) are taken before `audit`, after it, and after `list`/`show`/`undo`."""
    audit = commands.add_parser(
        "audit", parents=parents, help="list and show the audit journal's entries, undo lead updates",
        description="Reads the audit journal the server writes (NEXOR_AUDIT_LOG / audit_log / --audit-log). "
        "`nexor-mcp audit` alone lists the entries. Settings flags may go before or after `audit`, and "
        "after list/show/undo.",
    )
    actions = audit.add_subparsers(dest="audit_command", metavar="{list,show,undo,export}")
    # `nexor-mcp audit` alone is `audit list` with no filter.
    audit.set_defaults(audit_command="list", lead=None, tool=None, since=None, json=False, decisions=False)
    listing = actions.add_parser("list", parents=parents, help="the journal's entries, oldest first")
    listing.add_argument("--lead", metavar="ID", help="only this lead's entries")
    listing.add_argument("--tool", metavar="NAME", help="only this tool's entries (undo: the undos)")
    listing.add_argument("--since", metavar="TIME", help=SINCE_HELP)
    listing.add_argument("--json", action="store_true", help="one JSON object per entry and line")
    listing.add_argument("--decisions", action="store_true",
                         help="people's approvals and declines of confirmed calls instead (how, and the question)")
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
    export = actions.add_parser(
        "export", parents=parents, help="the journal as JSON lines (the file journal's format), for grep and archives",
        description="Writes every record of the journal (in the database: of the configured key's account, or "
        "of every account without a key) as JSON lines, as the file journal holds them.",
    )
    export.add_argument("--out", metavar="PATH", help="a new file to write (refused if it exists); default: stdout")


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
    source = journal_source(settings)
    if source is None:
        say(f"nexor-mcp audit: {NO_JOURNAL}", sys.stderr)
        return 2
    try:
        if args.audit_command == "export":
            return _export(source, args, out)
        contents = source.read()
        if contents is not None:
            for problem in contents.problems:
                say(f"nexor-mcp audit: warning: {source.label} {problem}", sys.stderr)
        entries = contents.entries if contents is not None else []
        if contents is None and args.audit_command == "list":
            say(f"The journal {source.label} does not exist yet: no write has been recorded.", out)
            return 0
        if args.audit_command == "list" and args.decisions:
            return _decisions(contents.decisions if contents is not None else [], args, out)
        if args.audit_command == "list":
            return _list(entries, args, out)
        if args.audit_command == "show":
            return _show(entries, args.entry, out)
        return _undo(settings, source.writer, entries, args, out)
    except CannotRead as exc:
        say(f"nexor-mcp audit: {exc}", sys.stderr)
        return 2
    except UsageError as exc:
        say(f"nexor-mcp audit {args.audit_command}: {exc}", sys.stderr)
        return 2
    finally:
        source.close()


def _export(source: JournalSource, args: argparse.Namespace, out: TextIO) -> int:
    """The journal as JSON lines (the file journal's own format), to --out or to standard output."""
    if args.out in (None, "-"):
        out.flush()
        lines = source.export(getattr(out, "buffer", sys.stdout.buffer))
    else:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
        with os.fdopen(fd, "wb") as file:  # new, private (it holds lead data), never through a link
            lines = source.export(file)
        say(f"Wrote {lines} journal lines from {source.label} to {args.out}.", sys.stderr)
    return 0


class UsageError(Exception):
    pass


def _decisions(decisions: list[Decision], args: argparse.Namespace, out: TextIO) -> int:
    """`audit list --decisions`: people's approvals and declines of confirmed calls, with how they
    were given (form, url, page or token) and the question they saw."""
    chosen = [decision for decision in decisions if (args.lead is None or decision.lead_id == args.lead)
              and (args.tool is None or decision.tool == args.tool)]
    if args.json:
        for decision in chosen:
            print(json_line(decision.as_json()), file=out)
        return 0
    if not chosen:
        say("No decisions" + (" match." if decisions else " yet."), out)
        return 0
    for decision in chosen:
        say(f"{one_line(short_time(decision.time))}  {one_line(decision.tool)}  {one_line(decision.lead_id or '-')}  "
            f"{decision.decision} ({decision.how})  asked: {one_line(decision.question)[:100]}", out)
    return 0


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
            print(json_line(entry.as_json()), file=out)
        return 0
    if not chosen:
        say("No entries" + (" match." if len(entries) else " yet."), out)
        return 0
    rows = [("ID", "TIME (UTC)", "TOOL", "LEAD", "WHAT", "OUTCOME")]
    for entry in chosen:  # escaped before the widths are measured, so the columns line up
        rows.append((one_line(entry.id), one_line(short_time(entry.time)), one_line(entry.tool),
                     one_line(entry.lead_id or "-"), one_line(_what(entry), 48), entry.shown_outcome))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        say("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5], out)
    return 0


def _show(entries: list[Entry], wanted: str, out: TextIO) -> int:
    entry = _find(entries, wanted)
    if isinstance(entry, str):
        say(f"nexor-mcp audit show: {entry}", sys.stderr)
        return 1
    rows: list[tuple[str, str]] = [
        ("entry", entry.id), ("time", entry.time), ("tool", entry.tool), ("lead", entry.lead_id or "-"),
        ("account", entry.account or "-"), ("request", f"{entry.method} {entry.path}"),
        ("body", compact(entry.body)),
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
        say(f"{label:<10} {text}", out)
    return 0


def _undo_verdict(entries: list[Entry], entry: Entry) -> str:
    why = not_undoable(entry)
    if why:
        return why
    later = undone_by(entries, entry)
    if later:
        return f"already undone by entry {later.id} ({later.time})"
    return f"can be undone, if the lead still holds what it wrote: nexor-mcp audit undo {entry.id}"


def _what(entry: Entry) -> str:
    body = entry.body if isinstance(entry.body, dict) else {}
    prefix = "undo: " if entry.undoes else ""
    if kind(entry) == "fields":
        changed = [name for name in body if name != "metadata"]
        changed += [f"metadata.{key}" for key in body.get("metadata") or {}]
        return prefix + ", ".join(changed)
    if kind(entry) == "tags":
        return prefix + "tags = " + names(body.get("tags") or [])
    if entry.tool == "send_message" and isinstance(body.get("content"), str):
        return f"{body.get('channel', 'message')}: {compact(body['content'])}"
    shown_body = [f"{name}={compact(value)}" for name, value in body.items() if name != "lead_id"]
    return ", ".join(shown_body) or "-"


def _changes(entry: Entry) -> list[str]:
    """One line per value the entry wrote: before → written, where the before is on record."""
    record = entry.undo_record
    if kind(entry) == "fields":
        fields, metadata = written_values(entry)
        old_fields = (record.fields if record else None) or {}
        old_metadata = (record.metadata if record else None) or {}
        absent = set((record.metadata_absent if record else None) or [])
        lines = [
            f"{name}: {shown(old_fields[name]) if name in old_fields else '(not recorded)'} → {shown(value)}"
            for name, value in fields.items()
        ]
        for key, value in metadata.items():
            unknown = "(absent)" if key in absent else "(not recorded)"
            old = shown(old_metadata[key]) if key in old_metadata else unknown
            lines.append(f"metadata.{key}: {old} → {shown(value)}")
        return lines
    if kind(entry) == "tags":
        return [f"tags: {names(record.tags if record else None)} → {names(written_tags(entry))}"]
    return []


# --- undo -----------------------------------------------------------------------------------------


@dataclass
class _Tally:
    undone: int = 0
    nothing: int = 0
    refused: int = 0
    failed: int = 0


def _undo(
    settings: Settings, journal: JournalWriter, entries: list[Entry], args: argparse.Namespace, out: TextIO
) -> int:
    tally = _Tally()
    chosen: list[Entry] = []
    if args.since:
        since = _since(args.since, entries)
        for entry in entries:
            if not since(entry) or entry.undoes:
                continue
            why = not_undoable(entry)
            later = undone_by(entries, entry)
            if why:
                say(f"{entry.id} {entry.tool}: skipped: {why}", out)
            elif later:
                say(f"{entry.id} {entry.tool}: skipped: already undone by entry {later.id}", out)
            else:
                chosen.append(entry)
        if not chosen:
            say("Nothing to undo since then.", out)
            return 0
    else:
        for wanted in dict.fromkeys(args.entries):
            found = _find(entries, wanted)
            if isinstance(found, str):
                say(f"{wanted}: refused: {found}", out)
                tally.refused += 1
            elif found not in chosen:
                chosen.append(found)
    chosen.sort(key=lambda entry: entry.line, reverse=True)  # newest first
    if settings.api_key is None and chosen:
        say(f"nexor-mcp audit undo: no Nexor API key is configured ({ENV_VARS['api_key']})", sys.stderr)
        return 2
    if args.since and not args.yes and not args.dry_run and chosen:
        say(f"Undo these {len(chosen)} entries, newest first?", out)
        for entry in chosen:
            say(f"  {entry.id} {entry.tool} on {entry.lead_id}: {_what(entry)}", out)
        if not sys.stdin.isatty():
            say("Not undone: rerun with --yes to undo them without this question.", out)
            return 1
        if input("Undo them? [y/N] ").strip().lower() not in ("y", "yes"):
            say("Not undone.", out)
            return 1
    import anyio

    anyio.run(_undo_entries, settings, journal, entries, chosen, args, out, tally)
    done = f"{tally.undone} undone" if not args.dry_run else f"{tally.undone} would be undone"
    say(f"Done: {done}, {tally.nothing} with nothing to undo, {tally.refused} refused, {tally.failed} failed.", out)
    return 1 if tally.refused or tally.failed else 0


async def _undo_entries(
    settings: Settings, journal: JournalWriter, entries: list[Entry], chosen: list[Entry], args: argparse.Namespace,
    out: TextIO, tally: _Tally,
) -> None:
    from nexor_mcp.client import NexorClient

    client = NexorClient(settings)
    account = account_fingerprint(settings.api_key)
    try:
        for entry in chosen:
            result, lines = await undo_one(client, journal, entries, entry, account, force=args.force,
                                           dry_run=args.dry_run)
            setattr(tally, result, getattr(tally, result) + 1)
            heading = {"undone": "would be undone" if args.dry_run else "undone", "nothing": "nothing to undo",
                       "refused": "refused", "failed": "FAILED"}[result]
            say(f"{entry.id} {entry.tool} on {entry.lead_id or '-'}: {heading}", out)
            for line in lines:
                say(f"  {line}", out)
    finally:
        await client.aclose()


# --- choosing entries -----------------------------------------------------------------------------


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

"""Issue 14: every command honours each global flag or refuses it (exit 2, naming the flag and the
command), never ignores it; `nexor-mcp audit` alone lists; flags go before or after `audit ...`.

The matrix runs `nexor_mcp.cli.main` in-process (nothing serves): a refused pair must exit 2 and
send nothing to the sandbox standing in for the real API, though a journal entry that could be
undone and a working key are there; an honoured pair must hand the flag's value to the code that
uses it. The dangerous pairs (`--sandbox` with `http` and `audit undo`) are also run as real
subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nexor_mcp import cli
from nexor_mcp.audit import read_journal
from nexor_mcp.sandbox import SandboxApi, SandboxServer
from tests.conftest import ANA, TEST_KEY
from tests.test_e2e_audit_cli import write

COMMANDS: dict[str, list[str]] = {
    "": [],
    "http": ["http"],
    "check": ["check"],
    "audit list": ["audit", "list"],
    "audit show": ["audit", "show", "ENTRY"],
    "audit undo": ["audit", "undo", "ENTRY"],
    "sandbox": ["sandbox"],
    "demo": ["demo"],
}
FLAGS: dict[str, list[str]] = {
    "config": ["--config", "CONFIG"],
    "base_url": ["--base-url", "BASE"],
    "timeout_seconds": ["--timeout-seconds", "7"],
    "max_retries": ["--max-retries", "1"],
    "retry_budget_seconds": ["--retry-budget-seconds", "9"],
    "log_level": ["--log-level", "DEBUG"],
    "tools": ["--tools", "read"],
    "read_only": ["--read-only"],
    "confirm": ["--confirm", "never"],
    "confirm_via": ["--confirm-via", "token"],
    "audit_log": ["--audit-log", "OTHER_JOURNAL"],
    "sandbox": ["--sandbox"],
    "log_format": ["--log-format", "json"],
}
EVERYTHING = set(FLAGS)
READS_JOURNAL = {"config", "audit_log", "log_level", "log_format"}
# The decision for each pair, written out here (not taken from the code under test).
HONOURED: dict[str, set[str]] = {
    "": EVERYTHING,
    "http": EVERYTHING - {"sandbox"},
    "check": EVERYTHING,
    "audit list": READS_JOURNAL,
    "audit show": READS_JOURNAL,
    "audit undo": READS_JOURNAL | {"base_url", "timeout_seconds", "max_retries", "retry_budget_seconds"},
    "sandbox": {"sandbox"},
    "demo": {"sandbox"},
}
PAIRS = [(command, flag) for command in COMMANDS for flag in FLAGS]
# What each honoured settings flag must have set (config: the file's max_retries).
SETTING_VALUES: dict[str, Any] = {
    "timeout_seconds": 7.0, "max_retries": 1, "retry_budget_seconds": 9.0, "log_level": "DEBUG",
    "tools": ("read",), "read_only": True, "confirm": (), "confirm_via": "token",
}


class Setup:
    """A sandbox standing in for the real API, a journal holding an entry that could be undone, and
    the environment a user's shell would have (key, base URL, journal)."""

    def __init__(self, server: SandboxServer, api: SandboxApi, tmp_path: Path) -> None:
        self.server, self.api = server, api
        self.journal = tmp_path / "audit.jsonl"
        self.other_journal = tmp_path / "other.jsonl"
        self.config = tmp_path / "nexor.json"
        self.config.write_text(json.dumps({"max_retries": 5}), encoding="utf-8")
        self.entry = write(server.base_url, self.journal, "update_lead", ANA, {"title": "CTO"})
        api.requests.clear()
        self.journal_text = self.journal.read_text(encoding="utf-8")

    def argv(self, command: str, flag: str, where: str = "before") -> list[str]:
        """`flag` given before the command name, or after the last word of it."""
        values = {"CONFIG": str(self.config), "BASE": self.server.base_url,
                  "OTHER_JOURNAL": str(self.other_journal), "ENTRY": self.entry}
        tail = [values.get(word, word) for word in COMMANDS[command]]
        option = [values.get(word, word) for word in FLAGS[flag]]
        if where == "before":
            return [*option, *tail]
        if where == "after audit":
            return [tail[0], *option, *tail[1:]]
        return [*tail, *option]

    def nothing_was_sent(self) -> None:
        assert list(self.api.requests) == []
        assert self.api.leads[ANA]["title"] == "CTO"  # not undone
        assert self.journal.read_text(encoding="utf-8") == self.journal_text  # no undo entry either


@pytest.fixture
def setup(sandbox_server: SandboxServer, api: SandboxApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    for name in list(os.environ):
        if name.startswith("NEXOR_"):
            monkeypatch.delenv(name)
    made = Setup(sandbox_server, api, tmp_path)
    monkeypatch.setenv("NEXOR_API_KEY", TEST_KEY)
    monkeypatch.setenv("NEXOR_BASE_URL", sandbox_server.base_url)
    monkeypatch.setenv("NEXOR_AUDIT_LOG", str(made.journal))
    return made


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The servers (stdio, http, sandbox) and the demo replaced by recorders of what they were given;
    `check` and `audit` run for real, against the sandbox."""
    record: dict[str, Any] = {}

    def ran(**values: Any) -> int:
        record.update(values, ran=True)
        return 0

    monkeypatch.setattr(cli, "_serve", lambda settings, *, sandbox, json_lines=False: ran(
        settings=settings, sandbox=sandbox, json_lines=json_lines))
    monkeypatch.setattr(cli, "_serve_http", lambda settings, args, flags: ran(
        settings=settings, sandbox=False, json_lines=args.log_format == "json"))
    monkeypatch.setattr(cli, "_run_sandbox", lambda host, port: ran(sandbox=True))
    monkeypatch.setattr("nexor_mcp.demo.run_demo", lambda: ran(sandbox=True))
    return record


def refusal(command: str, flag: str) -> str:
    prefix = f"nexor-mcp {command}".rstrip()
    option = FLAGS[flag][0]
    return f"{prefix}: {option} does not apply to `{prefix}`: "


@pytest.mark.parametrize(("command", "flag"), [pair for pair in PAIRS if pair[1] not in HONOURED[pair[0]]])
def test_a_flag_the_command_does_not_use_is_refused_and_nothing_is_sent(
    setup: Setup, seen: dict[str, Any], capsys: pytest.CaptureFixture[str], command: str, flag: str
) -> None:
    wheres = ["before", "after audit", "after"] if command.startswith("audit") else ["before"]
    for where in wheres:
        status = cli.main(setup.argv(command, flag, where))
        captured = capsys.readouterr()
        assert status == 2, (where, captured)
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(refusal(command, flag)), lines[0]
        assert lines[0].endswith(f"; drop {FLAGS[flag][0]}")
        assert "ran" not in seen  # no server, sandbox or demo started
        setup.nothing_was_sent()


@pytest.mark.parametrize(("command", "flag"), [pair for pair in PAIRS if pair[1] in HONOURED[pair[0]]])
def test_a_flag_the_command_uses_reaches_the_code_that_uses_it(
    setup: Setup, seen: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    command: str, flag: str,
) -> None:
    import nexor_mcp.audit.cli as audit_cli
    import nexor_mcp.logs as logs

    real_run_audit = audit_cli.run_audit

    def audit_spy(settings: Any, args: Any, out: Any = None) -> int:
        seen["settings"] = settings
        return real_run_audit(settings, args, out)

    monkeypatch.setattr(audit_cli, "run_audit", audit_spy)
    monkeypatch.setattr(logs, "configure_logging", lambda level, secrets=(), stream=None, *, json_lines=False:
                        seen.update(level=level, json_lines=json_lines))
    status = cli.main(setup.argv(command, flag))
    captured = capsys.readouterr()
    assert "does not apply" not in captured.err
    if command == "check":
        assert status in (0, 1), captured
        report = captured.out.splitlines()
        if flag == "config":
            assert f"  config file           {setup.config}  (from --config)" in report
        elif flag == "sandbox":
            assert "--sandbox: checking against the embedded sandbox instead of Nexor (no key needed)." in report
        elif flag == "log_format":
            assert "  log format            json  (from flag --log-format)" in report
        else:
            line = next(line for line in report if line.startswith(f"  {flag} "))
            assert line.endswith(f"(from flag {FLAGS[flag][0]})"), line
        return
    assert status != 2, captured
    if flag == "sandbox":
        assert seen["sandbox"] is True
    elif flag == "log_format":
        assert seen["json_lines"] is True
    elif flag == "config":
        assert seen["settings"].max_retries == 5
    elif flag == "base_url":
        assert seen["settings"].base_url == setup.server.base_url
    elif flag == "audit_log":
        assert seen["settings"].audit_log == str(setup.other_journal)
    else:
        assert getattr(seen["settings"], flag) == SETTING_VALUES[flag]
    if command.startswith("audit") and flag == "log_level":
        assert seen["level"] == "DEBUG"  # the audit commands configure their own logging


def test_sandbox_and_base_url_together_are_a_contradiction(
    setup: Setup, seen: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for tail in ([], ["check"]):
        assert cli.main(["--sandbox", "--base-url", setup.server.base_url, *tail]) == 2
        prefix = "nexor-mcp check" if tail else "nexor-mcp"
        assert capsys.readouterr().err == (
            f"{prefix}: --sandbox and --base-url contradict each other: --sandbox talks to an embedded sandbox at "
            "an address of its own; drop one of them\n"
        )
    assert "ran" not in seen
    setup.nothing_was_sent()


# --- the dangerous pairs, as a person runs them ---------------------------------------------------


def run(setup: Setup, *args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    env.update(NEXOR_API_KEY=TEST_KEY, NEXOR_BASE_URL=setup.server.base_url, NEXOR_AUDIT_LOG=str(setup.journal))
    return subprocess.run([sys.executable, "-m", "nexor_mcp", *args], capture_output=True, text=True, timeout=60,
                          check=False, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    "args",
    [
        ["--sandbox", "audit", "undo", "ENTRY"],
        ["audit", "--sandbox", "undo", "ENTRY"],
        ["audit", "undo", "ENTRY", "--sandbox"],
        ["audit", "undo", "--since", "1h", "--yes", "--sandbox"],
    ],
    ids=["before audit", "after audit", "after undo", "since"],
)
def test_sandbox_audit_undo_exits_2_and_never_reaches_the_real_api(setup: Setup, args: list[str]) -> None:
    completed = run(setup, *[setup.entry if word == "ENTRY" else word for word in args])
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == (
        "nexor-mcp audit undo: --sandbox does not apply to `nexor-mcp audit undo`: undo sends its writes to the "
        "configured Nexor API, not to a sandbox (an embedded sandbox ends with the server that ran it), so nothing "
        "was sent; to undo against a sandbox, run `nexor-mcp sandbox` and pass the address it prints as "
        "--base-url; drop --sandbox\n"
    )
    setup.nothing_was_sent()
    assert [entry.tool for entry in read_journal(setup.journal).entries] == ["update_lead"]


def test_read_only_audit_undo_is_refused_and_sends_nothing(setup: Setup) -> None:
    completed = run(setup, "--read-only", "audit", "undo", setup.entry)
    assert completed.returncode == 2
    assert completed.stderr == (
        "nexor-mcp audit undo: --read-only does not apply to `nexor-mcp audit undo`: undo writes to Nexor; to see "
        "what it would send without sending anything, use --dry-run; drop --read-only\n"
    )
    setup.nothing_was_sent()


def test_sandbox_http_exits_2_and_serves_nothing(setup: Setup) -> None:
    completed = run(setup, "--sandbox", "http", "--port", "0")
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == (
        "nexor-mcp http: --sandbox does not apply to `nexor-mcp http`: hosted mode has no embedded sandbox, so it "
        "would serve the real Nexor API; to try it on demo data, run `nexor-mcp sandbox` and pass the address it "
        "prints as --base-url; drop --sandbox\n"
    )
    setup.nothing_was_sent()


def test_sandbox_audit_list_is_refused_rather_than_ignored(setup: Setup) -> None:
    completed = run(setup, "--sandbox", "audit", "list")
    assert completed.returncode == 2
    assert completed.stderr == (
        "nexor-mcp audit list: --sandbox does not apply to `nexor-mcp audit list`: it only reads the journal, and "
        "sends nothing to Nexor; drop --sandbox\n"
    )


# --- `nexor-mcp audit` alone, and flags before or after ------------------------------------------


def test_audit_alone_lists_the_entries(setup: Setup) -> None:
    alone = run(setup, "audit")
    assert alone.returncode == 0, alone.stderr
    listed = run(setup, "audit", "list")
    assert alone.stdout == listed.stdout
    assert [line.split()[0] for line in alone.stdout.splitlines()] == ["ID", setup.entry]


@pytest.mark.parametrize(
    "args",
    [
        ["--audit-log", "JOURNAL", "audit"],
        ["audit", "--audit-log", "JOURNAL"],
        ["--audit-log", "JOURNAL", "audit", "list"],
        ["audit", "--audit-log", "JOURNAL", "list"],
        ["audit", "list", "--audit-log", "JOURNAL"],
        ["audit", "list", "--lead", ANA, "--audit-log", "JOURNAL", "--log-level", "WARNING"],
        ["--config", "CONFIG", "audit"],
        ["audit", "list", "--config", "CONFIG"],
    ],
)
def test_flags_go_before_or_after_audit_and_after_list(setup: Setup, tmp_path: Path, args: list[str]) -> None:
    config = tmp_path / "with-journal.json"
    config.write_text(json.dumps({"audit_log": str(setup.journal)}), encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    words = [str(setup.journal) if word == "JOURNAL" else str(config) if word == "CONFIG" else word for word in args]
    completed = subprocess.run([sys.executable, "-m", "nexor_mcp", *words], capture_output=True, text=True,
                               timeout=60, check=False, env=env, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stderr
    assert [line.split()[0] for line in completed.stdout.splitlines()] == ["ID", setup.entry]


def test_flags_go_after_show_and_undo(setup: Setup) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    env["NEXOR_API_KEY"] = TEST_KEY

    def audit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "nexor_mcp", "audit", *args], capture_output=True, text=True,
                              timeout=60, check=False, env=env, stdin=subprocess.DEVNULL)

    shown = audit("show", setup.entry, "--audit-log", str(setup.journal))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0] == f"entry      {setup.entry}"
    undone = audit("undo", setup.entry, "--audit-log", str(setup.journal), "--base-url", setup.server.base_url)
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert [(request.method, request.json) for request in setup.api.requests] == [
        ("GET", None), ("PATCH", {"title": "Head of Sales"}),
    ]
    assert setup.api.leads[ANA]["title"] == "Head of Sales"

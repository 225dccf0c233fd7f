"""End to end, NEXOR_DATABASE_URL (issue 16): the audit journal in the database, a database that goes
away mid-session, and the database's password, which nothing may show.

Writes made through two hosted replicas are one journal, which `nexor-mcp audit` (a subprocess)
lists, undoes (restoring the exact before-values in the sandbox, and journaling the undo) and
exports. With the database stopped, writes and confirmations are refused with nothing sent while
reads keep working, and service resumes once it is back. `nexor-mcp check` says whether the
database answers. Single use of confirmations across processes is in test_e2e_shared_state.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from nexor_mcp.account import account_fingerprint
from nexor_mcp.audit import read_journal
from nexor_mcp.sandbox import SandboxApi, SandboxServer
from nexor_mcp.store import SCHEMA_VERSION, parse_database_url
from tests.conftest import ANA, JOHN, TEST_KEY, server_env, spawn_server
from tests.postgres import PostgresCluster
from tests.test_e2e_http import mcp_client
from tests.test_e2e_safety_http import HEADERS, MESSAGE, texts
from tests.test_e2e_shared_state import (
    TOOLS,
    assert_password_absent,
    audit,
    hosted_env,
    listed,
    replicas,
    shown,
    token_of,
)
from tests.test_e2e_write_safety_http import sent

pytestmark = pytest.mark.anyio

JOURNAL_DOWN = re.compile(
    r"update_lead failed: Nothing was sent to Nexor: the write was refused because the audit journal cannot be "
    r"written \(connection failed: .*Connection refused\), and every write must be recorded there before it is "
    r"sent\. This is not something to retry: ask the user to fix the database NEXOR_DATABASE_URL names, so that it "
    r"answers and can be written, then try again\.")
TOKEN_UNRECORDED = (
    "Not sent: the confirmation was refused because its single use could not be recorded (the database in "
    "NEXOR_DATABASE_URL did not answer or refused the write), so it cannot be trusted; the user must get the "
    "database fixed. Nothing was sent.")


def display(url: str) -> str:
    """The URL as every message shows it: postgresql://postgres:***@127.0.0.1:PORT/db."""
    shown_url = parse_database_url(url).display
    assert ":***@" in shown_url
    return shown_url


# --- one journal for every replica, and what `nexor-mcp audit` does with it -------------------------


async def test_writes_through_two_replicas_are_one_journal_that_audit_lists_undoes_and_exports(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_url: str, tmp_path: Path
) -> None:
    john_before = {"title": api.leads[JOHN]["title"], "phone": api.leads[JOHN]["phone"]}
    assert john_before == {"title": None, "phone": "+14155550123"}
    ana_tags_before = [api.state.tags[tag]["name"] for tag in api.leads[ANA]["tags"]]
    assert ana_tags_before == ["VIP"]
    base = sandbox_server.base_url
    with replicas(base, 2, hosted_env(postgres_url)) as (a, b):
        with anyio.fail_after(30):
            async with mcp_client(a.url, HEADERS) as on_a, mcp_client(b.url, HEADERS) as on_b:
                update = await on_a.call_tool("update_lead", {"lead_id": JOHN, "title": "CTO", "phone": None})
                tags = await on_b.call_tool("set_lead_tags", {"lead_id": ANA, "tags": ["Hot lead"]})
        logs = a.log_text() + b.log_text()
    assert not update.is_error and not tags.is_error, (shown(update), shown(tags))
    assert (api.leads[JOHN]["title"], api.leads[JOHN]["phone"]) == ("CTO", None)

    table = await audit(postgres_url, base, "list")
    assert table.returncode == 0 and table.stderr == "", table
    rows = [re.split(r"\s{2,}", line) for line in table.stdout.splitlines()]
    assert rows[0] == ["ID", "TIME (UTC)", "TOOL", "LEAD", "WHAT", "OUTCOME"]
    assert [row[2:] for row in rows[1:]] == [
        ["update_lead", JOHN, "phone, title", "ok (HTTP 200)"],
        ["set_lead_tags", ANA, "tags = [Hot lead]", "ok (HTTP 200)"],
    ]
    update_id, tags_id = (row[0] for row in rows[1:])

    api.requests.clear()
    undone = await audit(postgres_url, base, "undo", update_id, tags_id)
    assert undone.returncode == 0, undone
    assert undone.stdout.splitlines() == [
        f"{tags_id} set_lead_tags on {ANA}: undone",
        "  tags: [Hot lead] → [VIP]",
        f"{update_id} update_lead on {JOHN}: undone",
        '  phone: null → "+14155550123"',
        '  title: "CTO" → null',
        "Done: 2 undone, 0 with nothing to undo, 0 refused, 0 failed.",
    ]
    assert [(r.method, r.path.removeprefix("/api/public"), r.json) for r in api.requests] == [
        ("GET", f"/leads/{ANA}", None),
        ("PUT", "/leads/tags", {"lead_id": ANA, "tags": ana_tags_before}),
        ("GET", f"/leads/{JOHN}", None),
        ("PATCH", f"/leads/{JOHN}", john_before),
    ]
    assert {"title": api.leads[JOHN]["title"], "phone": api.leads[JOHN]["phone"]} == john_before
    assert [api.state.tags[tag]["name"] for tag in api.leads[ANA]["tags"]] == ana_tags_before

    entries = await listed(postgres_url, base)
    account = account_fingerprint(TEST_KEY)
    assert [(e["id"], e["tool"], e["undoes"], e["outcome"], e["account"]) for e in entries] == [
        (update_id, "update_lead", None, "ok", account),
        (tags_id, "set_lead_tags", None, "ok", account),
        (entries[2]["id"], "undo", tags_id, "ok", account),
        (entries[3]["id"], "undo", update_id, "ok", account),
    ]
    assert entries[2]["before"] == {"tags": ["Hot lead"]}
    assert entries[3]["before"] == {"fields": {"phone": None, "title": "CTO"}, "metadata": {}, "metadata_absent": []}

    out = tmp_path / "journal.jsonl"
    exported = await audit(postgres_url, base, "export", "--out", str(out))
    assert exported.returncode == 0, exported
    assert exported.stderr == f"Wrote 8 journal lines from {display(postgres_url)} to {out}.\n"
    assert [entry.as_json() for entry in read_journal(out).entries] == entries
    assert_password_absent(logs, shown(update), shown(tags), table.stdout, undone.stdout, exported.stderr,
                           out.read_text())


# --- the database goes away mid-session, and comes back ----------------------------------------------


async def test_with_the_database_down_writes_and_confirmations_are_refused_with_nothing_sent_and_reads_work(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    env = server_env(sandbox_server.base_url, NEXOR_DATABASE_URL=postgres_url, NEXOR_TOOLS=TOOLS,
                     NEXOR_CONFIRM_VIA="token")
    with anyio.fail_after(40):
        async with spawn_server(env, ("--log-level", "debug")) as server:
            before = await server.call("update_lead", {"lead_id": ANA, "title": "Before"})
            token = token_of(await server.call("send_message", MESSAGE))
            with postgres_cluster.stopped():
                seen = len(api.requests)
                update = await server.call("update_lead", {"lead_id": ANA, "title": "While down"})
                confirmed = await server.call("send_message", {**MESSAGE, "confirmation": token})
                read = await server.call("get_lead", {"lead_id": ANA})
                during = [(r.method, r.path.removeprefix("/api/public")) for r in api.requests[seen:]]
            after = await server.call("update_lead", {"lead_id": ANA, "title": "Back"})
            log = server.stderr_text()
    assert not before.is_error, shown(before)
    assert update.is_error and JOURNAL_DOWN.fullmatch(texts(update)), shown(update)
    assert confirmed.is_error and texts(confirmed).startswith(TOKEN_UNRECORDED), shown(confirmed)
    assert not read.is_error and (read.structured_content or {})["lead"]["title"] == "Before", shown(read)
    assert during and all(method == "GET" for method, _ in during), during  # no PATCH, no POST /messages
    assert not after.is_error, shown(after)
    assert [(method, path, body) for method, path, body in sent(api)] == [
        ("PATCH", f"/leads/{ANA}", {"title": "Before"}), ("PATCH", f"/leads/{ANA}", {"title": "Back"})]
    assert api.leads[ANA]["title"] == "Back"
    entries = await listed(postgres_url, sandbox_server.base_url)
    assert [(entry["tool"], entry["body"], entry["outcome"]) for entry in entries] == [
        ("update_lead", {"title": "Before"}, "ok"), ("update_lead", {"title": "Back"}, "ok")]
    assert (f"write refused, nothing sent: the audit journal {display(postgres_url)} cannot be written (connection "
            "failed: ") in log
    assert "a confirmation was refused: its single use could not be recorded" in log
    assert_password_absent(log, *(shown(result) for result in (before, update, confirmed, read, after)))


async def test_a_database_that_answers_but_refuses_writes_refuses_writes_and_confirmations_too(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """Up, but read-only (every connection's transactions are): as good as down for writes."""
    env = server_env(sandbox_server.base_url, NEXOR_DATABASE_URL=postgres_url, NEXOR_TOOLS=TOOLS,
                     NEXOR_CONFIRM_VIA="token")
    with anyio.fail_after(40):
        async with spawn_server(env, ("--log-level", "debug")) as server:
            token = token_of(await server.call("send_message", MESSAGE))
            read_only(postgres_cluster, postgres_url, True)
            try:
                update = await server.call("update_lead", {"lead_id": ANA, "title": "While read-only"})
                confirmed = await server.call("send_message", {**MESSAGE, "confirmation": token})
                read = await server.call("get_lead", {"lead_id": ANA})
            finally:
                read_only(postgres_cluster, postgres_url, False)
            after = await server.call("update_lead", {"lead_id": ANA, "title": "Writable"})
            log = server.stderr_text()
    assert update.is_error and texts(update).startswith(
        "update_lead failed: Nothing was sent to Nexor: the write was refused because the audit journal cannot be "
        "written (cannot execute INSERT in a read-only transaction)"), shown(update)
    assert confirmed.is_error and texts(confirmed).startswith(TOKEN_UNRECORDED), shown(confirmed)
    assert not read.is_error, shown(read)
    assert not after.is_error, shown(after)
    assert [(method, path, body) for method, path, body in sent(api)] == [
        ("PATCH", f"/leads/{ANA}", {"title": "Writable"})]
    entries = await listed(postgres_url, sandbox_server.base_url)
    assert [(entry["tool"], entry["body"]) for entry in entries] == [("update_lead", {"title": "Writable"})]
    assert_password_absent(log, *(shown(result) for result in (update, confirmed, read, after)))


def read_only(cluster: PostgresCluster, url: str, on: bool) -> None:
    """Make the database read-only (or writable again) for every connection, by ending the open ones."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
    with psycopg.connect(cluster.url(password=None), autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'ALTER DATABASE "{name}" {setting}')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


# --- nothing shows the password; check says whether the database answers ---------------------------


async def test_check_and_a_server_started_while_the_database_is_down_never_show_its_password(
    sandbox_server: SandboxServer, api: SandboxApi, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    masked = display(postgres_url)
    up = await check(postgres_url)
    assert up.returncode == 0, up.stdout
    lines = up.stdout.splitlines()
    assert f"  database_url          {masked} (postgresql)  (from flag --database-url)" in lines
    assert (f"  database              postgresql answers, schema version {SCHEMA_VERSION}; it holds used "
            "confirmations and the audit journal") in lines
    with postgres_cluster.stopped():
        ran: dict[str, subprocess.CompletedProcess[str]] = {}

        async def check_down() -> None:
            ran["check"] = await check(postgres_url)

        async def list_down() -> None:
            ran["list"] = await audit(postgres_url, sandbox_server.base_url, "list")

        async with anyio.create_task_group() as group:
            group.start_soon(check_down)
            group.start_soon(list_down)
        down, unreadable = ran["check"], ran["list"]
        with replicas(sandbox_server.base_url, 1, hosted_env(postgres_url)) as (server,), anyio.fail_after(30):
            async with mcp_client(server.url, HEADERS) as client:
                read = await client.call_tool("get_lead", {"lead_id": ANA})
                refused = await client.call_tool("update_lead", {"lead_id": ANA, "title": "CTO"})
                postgres_cluster.start()
                back = await client.call_tool("update_lead", {"lead_id": ANA, "title": "CTO"})
            log = server.log_text()
    assert down.returncode == 1, down.stdout
    lines = down.stdout.splitlines()
    assert f"  database_url          {masked} (postgresql)  (from flag --database-url)" in lines
    assert [line for line in lines if line.startswith("  database ")] == [
        "  database              DOES NOT ANSWER (connection failed: connection to server at \"127.0.0.1\", port "
        f"{postgres_cluster.port} failed: Connection refused): the server would refuse every write and confirmation "
        "until it does (reads work without it)"]
    assert lines[-1] == ("FAILED: the audit journal or the database cannot be written (see above), so the server "
                         "would refuse every write.")
    assert (unreadable.returncode, unreadable.stdout) == (2, ""), unreadable
    assert unreadable.stderr == (
        f"nexor-mcp audit: cannot read the journal in {masked}: connection failed: connection to server at "
        f"\"127.0.0.1\", port {postgres_cluster.port} failed: Connection refused\n")
    assert not read.is_error, shown(read)
    assert refused.is_error and "the audit journal cannot be written" in texts(refused), shown(refused)
    assert not back.is_error, shown(back)  # the first call after the database is back finds it
    assert [(method, path) for method, path, _ in sent(api)] == [("PATCH", f"/leads/{ANA}")]
    assert (f"the database {masked} cannot be used (connection failed: ") in log
    entries = await listed(postgres_url, sandbox_server.base_url)
    assert [(entry["tool"], entry["body"], entry["outcome"]) for entry in entries] == [
        ("update_lead", {"title": "CTO"}, "ok")]  # the refused write left no entry; the one after it did
    assert_password_absent(up.stdout, up.stderr, down.stdout, down.stderr, unreadable.stderr, log,
                           *(shown(result) for result in (read, refused, back)))


async def check(database_url: str) -> subprocess.CompletedProcess[str]:
    """`nexor-mcp check --database-url URL --sandbox` as a subprocess, with no NEXOR_ setting around it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEXOR_")}
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-m", "nexor_mcp", "check", "--database-url", database_url, "--sandbox"], env=env,
            check=False, stdin=subprocess.DEVNULL,
        )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def test_workers_without_a_database_warn_that_single_use_is_per_worker(sandbox_server: SandboxServer) -> None:
    warning = ("--workers 2 without NEXOR_DATABASE_URL: each worker keeps its own used confirmations (a token can be "
               "used once per worker) and the journal is per process; set NEXOR_DATABASE_URL to share them")
    with replicas(sandbox_server.base_url, 1, {"NEXOR_TOOLS": "read,write"}, "--workers", "2") as (server,):
        deadline = time.monotonic() + 5  # logged before serving starts; the log's writer thread may lag
        while warning not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = server.log_text()
    assert f"WARNING nexor_mcp: {warning}" in log, log

"""The store (NEXOR_DATABASE_URL) on a real SQLite file and a real PostgreSQL: the schema and its
migration (several processes at once), used confirmations claimed once across processes, and a
database that fails: a `StoreError` that names it without its password, and the same store object
working again once the database is back."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nexor_mcp.store import SCHEMA_VERSION, Store, StoreError, open_store, parse_database_url
from nexor_mcp.store.schema import POSTGRES_STEPS, SQLITE_STEPS
from tests.postgres import PASSWORD, PostgresCluster

ROOT = Path(__file__).resolve().parent.parent
TABLES = ["nexor_approvals", "nexor_audit_records", "nexor_schema_version", "nexor_used_confirmations"]


def raw(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of `sql` run on the database itself, not through the store (`?` placeholders)."""
    parsed = parse_database_url(url)
    if parsed.kind == "sqlite":
        assert parsed.path is not None
        with contextlib.closing(sqlite3.connect(parsed.path)) as connection, connection:
            return connection.execute(sql, params).fetchall()
    import psycopg

    assert parsed.conninfo is not None
    with psycopg.connect(parsed.conninfo, autocommit=True) as postgres:
        cursor = postgres.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []


def tables(url: str) -> list[str]:
    if parse_database_url(url).kind == "sqlite":
        rows = raw(url, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ? ORDER BY name",
                   ("nexor%",))
    else:
        rows = raw(url, "SELECT tablename FROM pg_tables WHERE tablename LIKE ? ORDER BY tablename", ("nexor%",))
    return [row[0] for row in rows]


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with open_store(database_url) as opened:
        yield opened


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` in `count` threads started together; each one's result or exception, in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a thread blocked"
    return results


def in_processes(code: str, url: str, count: int, directory: Path) -> list[Any]:
    """`code` (reading the URL from argv[1], printing one JSON value) in `count` processes that
    start their work together (each waits for a file the parent creates once all have started)."""
    go = directory / f"go-{time.monotonic_ns()}"
    prelude = ("import json, os, sys, time\n"
               f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n")
    processes = [subprocess.Popen([sys.executable, "-c", prelude + code, url], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(count)]
    time.sleep(1.0)  # let them all import and reach the wait
    go.touch()
    results = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            results.append(json.loads(out))
    finally:
        go.unlink(missing_ok=True)
    return results


# --- the schema --------------------------------------------------------------------------------


def test_both_backends_have_every_step_of_the_schema() -> None:
    assert set(SQLITE_STEPS) == set(POSTGRES_STEPS) == set(range(1, SCHEMA_VERSION + 1))


def test_migrate_creates_the_schema_once_and_is_idempotent(database_url: str) -> None:
    with open_store(database_url) as store:
        assert store.schema_version() == 0
        store.migrate()
        store.migrate()
        assert store.schema_version() == SCHEMA_VERSION
    with open_store(database_url) as again:
        again.migrate()
    assert tables(database_url) == TABLES
    assert raw(database_url, "SELECT version FROM nexor_schema_version") == [(SCHEMA_VERSION,)]


def test_the_schema_is_created_on_first_use_without_migrate(store: Store, database_url: str) -> None:
    assert store.claim_once("acct", "t1", time.time() + 300) is True
    assert raw(database_url, "SELECT version FROM nexor_schema_version") == [(SCHEMA_VERSION,)]


def test_threads_migrating_at_once_create_the_schema_once(database_url: str) -> None:
    stores = [open_store(database_url) for _ in range(8)]
    try:
        results = in_threads(8, lambda index: stores[index].migrate())
    finally:
        for store in stores:
            store.close()
    assert results == [None] * 8
    assert tables(database_url) == TABLES
    assert raw(database_url, "SELECT version FROM nexor_schema_version") == [(SCHEMA_VERSION,)]


MIGRATE = """
from nexor_mcp.store import open_store
with open_store(sys.argv[1]) as store:
    store.migrate()
    print(json.dumps(store.schema_version()))
"""


def test_processes_migrating_at_once_create_the_schema_once(database_url: str, tmp_path: Path) -> None:
    assert in_processes(MIGRATE, database_url, 4, tmp_path) == [SCHEMA_VERSION] * 4
    assert tables(database_url) == TABLES
    assert raw(database_url, "SELECT version FROM nexor_schema_version") == [(SCHEMA_VERSION,)]


def test_a_database_of_a_newer_schema_is_refused(database_url: str) -> None:
    with open_store(database_url) as store:
        store.migrate()
    raw(database_url, "UPDATE nexor_schema_version SET version = 99")
    with open_store(database_url) as newer, pytest.raises(StoreError) as raised:
        newer.claim_once("acct", "t1", time.time() + 300)
    assert raised.value.reason == (f"the database schema is at version 99, newer than this nexor-mcp knows "
                                   f"({SCHEMA_VERSION}): upgrade nexor-mcp")
    assert raw(database_url, "SELECT count(*) FROM nexor_used_confirmations") == [(0,)]


# --- used confirmations --------------------------------------------------------------------------


def test_a_token_is_claimed_once_per_account(store: Store, database_url: str) -> None:
    expires = time.time() + 300
    assert store.claim_once("acct-a", "t1", expires) is True
    assert store.claim_once("acct-a", "t1", expires) is False
    assert store.claim_once("acct-b", "t1", expires) is True
    assert store.claim_once("acct-a", "t2", expires) is True
    assert raw(database_url, "SELECT account, token_id, expires_at FROM nexor_used_confirmations "
                             "ORDER BY account, token_id") == [
        ("acct-a", "t1", expires), ("acct-a", "t2", expires), ("acct-b", "t1", expires)]


def test_expired_claims_are_deleted_when_another_is_made(store: Store, database_url: str) -> None:
    assert store.claim_once("acct", "old", 100.0, now=50.0) is True
    assert store.claim_once("acct", "kept", 300.0, now=60.0) is True
    assert store.claim_once("acct", "new", 500.0, now=200.0) is True
    assert raw(database_url, "SELECT token_id FROM nexor_used_confirmations ORDER BY token_id") == [
        ("kept",), ("new",)]
    assert store.claim_once("acct", "kept", 300.0, now=250.0) is False


def test_a_claim_made_through_one_store_is_seen_by_another(database_url: str) -> None:
    with open_store(database_url) as first, open_store(database_url) as second:
        assert first.claim_once("acct", "t1", time.time() + 300) is True
        assert second.claim_once("acct", "t1", time.time() + 300) is False
        assert second.claim_once("acct", "t2", time.time() + 300) is True
        assert first.claim_once("acct", "t2", time.time() + 300) is False


def test_threads_claiming_one_token_at_once_win_it_once(store: Store) -> None:
    expires = time.time() + 300
    assert sorted(in_threads(16, lambda _: store.claim_once("acct", "t1", expires))) == [False] * 15 + [True]


CLAIM = """
from nexor_mcp.store import open_store
with open_store(sys.argv[1]) as store:
    won = [token for token in range(40) if store.claim_once("acct", f"t{token}", time.time() + 300)]
print(json.dumps(won))
"""


def test_processes_claiming_the_same_tokens_win_each_exactly_once(database_url: str, tmp_path: Path) -> None:
    won = in_processes(CLAIM, database_url, 3, tmp_path)
    assert sorted(token for tokens in won for token in tokens) == list(range(40))
    assert raw(database_url, "SELECT count(*) FROM nexor_used_confirmations") == [(40,)]


# --- when the database fails -------------------------------------------------------------------


def test_ping_answers_when_the_database_does(store: Store) -> None:
    store.ping()


def test_a_closed_store_refuses_every_call(database_url: str) -> None:
    store = open_store(database_url)
    store.claim_once("acct", "t1", time.time() + 300)
    store.close()
    with pytest.raises(StoreError) as raised:
        store.claim_once("acct", "t2", time.time() + 300)
    assert str(raised.value) == f"{store.display}: the store is closed"


def test_sqlite_in_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/gone/state.db") as store, pytest.raises(StoreError) as raised:
        store.claim_once("acct", "t1", time.time() + 300)
    assert str(raised.value) == f"sqlite:///{tmp_path}/gone/state.db: the directory {tmp_path}/gone does not exist"
    with pytest.raises(StoreError):
        store.ping()


def test_sqlite_on_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not a database, it is a text file that is long enough" * 20)
    with open_store(f"sqlite:///{tmp_path}/state.db") as store, pytest.raises(StoreError) as raised:
        store.migrate()
    assert raised.value.reason == "file is not a database"


def test_a_sqlite_file_is_created_private(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path}/state.db") as store:
        store.migrate()
    assert (tmp_path / "state.db").stat().st_mode & 0o777 == 0o600


def test_a_sqlite_file_others_can_read_is_made_private(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    with open_store(f"sqlite:///{path}") as store:
        store.migrate()
    assert path.stat().st_mode & 0o777 == 0o600
    assert f"the database sqlite:///{path} could be read by other users (mode 644)" in caplog.text


def test_sqlite_writers_in_other_processes_take_turns(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        store.migrate()
        path = parse_database_url(sqlite_url).path
        assert path is not None
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock for a moment
        releaser = threading.Timer(0.5, lambda: blocker.execute("COMMIT"))
        releaser.start()
        try:
            started = time.monotonic()
            assert store.claim_once("acct", "t1", time.time() + 300) is True
            assert time.monotonic() - started >= 0.4
        finally:
            releaser.join()
            blocker.close()


def test_a_postgres_that_is_down_is_a_store_error_without_the_password(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    assert f":{PASSWORD}@" in postgres_url
    with open_store(postgres_url) as store:
        assert store.claim_once("acct", "t1", time.time() + 300) is True
        with postgres_cluster.stopped():
            for call in (lambda: store.claim_once("acct", "t2", time.time() + 300), store.ping, store.schema_version):
                started = time.monotonic()
                with pytest.raises(StoreError) as raised:
                    call()
                assert time.monotonic() - started < 3, "a database that is down must fail fast"
                message = str(raised.value)
                assert message.startswith(f"{store.display}: ")
                assert store.display == f"postgresql://postgres:***@127.0.0.1:{postgres_cluster.port}/" + (
                    postgres_url.rsplit("/", 1)[1])
                assert "Connection refused" in raised.value.reason
                for shown in (message, repr(raised.value), raised.value.reason, raised.value.display):
                    assert PASSWORD not in shown
        # The same store object, once the database is back: the claims made before are still there.
        assert store.claim_once("acct", "t1", time.time() + 300) is False
        assert store.claim_once("acct", "t2", time.time() + 300) is True
        store.ping()


def test_a_postgres_restarted_between_two_calls_is_reconnected_to_on_the_next(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    with open_store(postgres_url) as store:
        assert in_threads(4, lambda index: store.claim_once("acct", f"t{index}", time.time() + 300)) == [True] * 4
        postgres_cluster.stop()
        postgres_cluster.start()
        started = time.monotonic()
        assert store.claim_once("acct", "t9", time.time() + 300) is True
        assert store.claim_once("acct", "t0", time.time() + 300) is False
        assert time.monotonic() - started < 3


def test_a_postgres_that_was_down_for_several_calls_serves_the_first_call_after_it_is_back(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    with open_store(postgres_url) as store:
        store.migrate()
        with postgres_cluster.stopped():
            for _ in range(3):
                with pytest.raises(StoreError):
                    store.ping()
        started = time.monotonic()
        assert store.claim_once("acct", "t1", time.time() + 300) is True
        assert time.monotonic() - started < 1, "the pool's wait between reconnection attempts must not delay this"
        assert in_threads(4, lambda index: store.claim_once("acct", f"u{index}", time.time() + 300)) == [True] * 4


def test_a_postgres_database_that_does_not_exist_is_a_store_error_without_the_password(
    postgres_cluster: PostgresCluster,
) -> None:
    url = postgres_cluster.url("no_such_database")
    with open_store(url) as store, pytest.raises(StoreError) as raised:
        store.ping()
    assert 'database "no_such_database" does not exist' in raised.value.reason
    assert PASSWORD not in str(raised.value)


def test_a_postgres_nobody_listens_on_fails_fast_without_the_password() -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{_closed_port()}/nexor"
    started = time.monotonic()
    with open_store(url) as store, pytest.raises(StoreError) as raised:
        store.claim_once("acct", "t1", time.time() + 300)
    assert time.monotonic() - started < 8
    assert "Connection refused" in raised.value.reason
    assert PASSWORD not in str(raised.value)


def _closed_port() -> int:
    from tests.postgres import free_port

    return free_port()


def test_opening_a_store_imports_psycopg_only_for_postgresql(tmp_path: Path) -> None:
    code = ("import sys\nfrom nexor_mcp.store import open_store\n"
            f"open_store('sqlite:///{tmp_path}/state.db').migrate()\n"
            "assert 'psycopg' not in sys.modules, 'psycopg was imported'\n"
            "open_store('postgresql://127.0.0.1:1/nexor').close()\n"
            "assert 'psycopg' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_repr_names_the_store_by_its_display_url(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        assert repr(store) == f"PostgresStore({store.display!r})"
        assert PASSWORD not in repr(store) and PASSWORD not in repr(store.url)


# --- the PostgreSQL the tests run on -------------------------------------------------------------


def test_without_postgresql_the_tests_fail_saying_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.postgres as postgres

    monkeypatch.setattr(postgres, "find_bin_dir", lambda: None)
    monkeypatch.setattr(postgres, "can_install", lambda: False)
    with pytest.raises(postgres.PostgresUnavailable) as raised:
        postgres.ensure_installed()
    assert "apt-get install -y postgresql" in str(raised.value)


def test_without_postgresql_in_ci_it_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.postgres as postgres

    installed: list[bool] = []
    monkeypatch.setattr(postgres, "find_bin_dir", lambda: Path("/opt/pg/bin") if installed else None)
    monkeypatch.setattr(postgres, "install", lambda: installed.append(True))
    monkeypatch.setenv("CI", "true")
    assert postgres.ensure_installed() == Path("/opt/pg/bin")
    assert installed == [True]


@pytest.mark.parametrize(("query", "name"), [
    ("", "nexor-mcp"), ("?application_name=billing&connect_timeout=2", "billing")])
def test_connection_parameters_in_the_url_win_over_the_stores_defaults(
    postgres_url: str, query: str, name: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    with open_store(postgres_url + query) as store:
        store.ping()  # a connection of its own, which then opens the pool
        store.ping()  # from the pool, which stays open
        assert raw(postgres_url, "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = ? "
                                 "AND application_name <> ''", (database,)) == [(name,)]

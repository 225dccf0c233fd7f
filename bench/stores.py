"""What a database round trip costs the store (`python -m bench.stores [--quick] [--count N] [--url URL] [--fsync]`).

1. The drivers alone, one INSERT and one UPDATE per iteration, each timed on its own: psycopg 3
   (sync) on one connection and through `psycopg_pool.ConnectionPool` (with the empty-query check
   `PostgresStore` runs before each use, and without), against asyncpg on one connection and
   through `asyncpg.create_pool`. All in one run, interleaved in a shuffled order, so drift hits
   every variant alike.
2. The store as the server uses it: `claim_once` and `DatabaseJournal.begin` + `finish`, on
   PostgreSQL and on SQLite, called directly and (as the server does) through `anyio.to_thread`.

Without `--url` a throwaway PostgreSQL cluster is started on loopback (tests/postgres.py), with
fsync off unless `--fsync` is given: the commit's disk flush is then left out, so the numbers are
the driver's and the protocol's cost, which is where the two drivers differ. asyncpg is optional
(`pip install asyncpg`); without it its rows are left out. Prints medians and 90th percentiles in
microseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from nexor_mcp.audit import account_fingerprint
from nexor_mcp.sandbox import SANDBOX_API_KEY
from nexor_mcp.store import DatabaseJournal, Store, open_store

Timed = Callable[[int], Awaitable[None]]
"""One timed operation; its argument is the iteration number (the row id to insert or update)."""
SETUP = ("DROP TABLE IF EXISTS bench_{name}",
         "CREATE TABLE bench_{name} (id bigint PRIMARY KEY, n integer NOT NULL, payload text NOT NULL)")


def _summary(label: str, micros: list[float]) -> str:
    ordered = sorted(micros)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{label:<58} median {statistics.median(ordered):9.1f} µs   p90 {p90:9.1f} µs   (n={len(ordered)})"


@contextlib.contextmanager
def _postgres(url: str | None, *, fsync: bool) -> Iterator[tuple[str, str]]:
    """(url for the drivers, url for the store): two databases, so the store's tables stand alone."""
    if url:
        yield url, url
        return
    from tests.postgres import start_cluster

    cluster = start_cluster(fsync=fsync)
    try:
        yield cluster.create_database("bench"), cluster.create_database("bench_store")
    finally:
        cluster.destroy()


def _psycopg_variants(url: str, exit_stack: contextlib.ExitStack) -> dict[str, Timed]:
    import psycopg
    from psycopg_pool import ConnectionPool

    with psycopg.connect(url, autocommit=True) as setup:
        for name in ("psycopg_conn", "psycopg_pool", "psycopg_pool_unchecked"):
            for statement in SETUP:
                setup.execute(statement.format(name=name))
    connection = exit_stack.enter_context(psycopg.connect(url, autocommit=True))
    pool: ConnectionPool[Any] = exit_stack.enter_context(
        ConnectionPool(url, kwargs={"autocommit": True}, min_size=1, max_size=4, open=True))
    pool.wait()

    def on_connection(sql: str) -> Timed:
        async def run(row: int) -> None:
            connection.execute(sql, (row,))
        return run

    def on_pool(sql: str, *, check: bool) -> Timed:
        async def run(row: int) -> None:
            with pool.connection() as pooled:
                if check:
                    pooled.execute("")
                pooled.execute(sql, (row,))
        return run

    def checked(sql: str) -> Timed:
        return on_pool(sql, check=True)

    def unchecked(sql: str) -> Timed:
        return on_pool(sql, check=False)

    makers: tuple[tuple[str, str, Callable[[str], Timed]], ...] = (
        ("psycopg, one connection", "psycopg_conn", on_connection),
        ("psycopg pool, checked before use (as the store)", "psycopg_pool", checked),
        ("psycopg pool, unchecked", "psycopg_pool_unchecked", unchecked),
    )
    variants: dict[str, Timed] = {}
    for label, table, make in makers:
        variants[f"{label}: INSERT"] = make(f"INSERT INTO bench_{table} (id, n, payload) VALUES (%s, 0, 'x')")
        variants[f"{label}: UPDATE"] = make(f"UPDATE bench_{table} SET n = n + 1 WHERE id = %s")
    return variants


async def _asyncpg_variants(url: str, exit_stack: contextlib.AsyncExitStack) -> dict[str, Timed]:
    try:
        asyncpg: Any = importlib.import_module("asyncpg")
    except ImportError:
        print("asyncpg is not installed (pip install asyncpg): its rows are left out")
        return {}
    setup = await asyncpg.connect(url)
    for name in ("asyncpg_conn", "asyncpg_pool"):
        for statement in SETUP:
            await setup.execute(statement.format(name=name))
    await setup.close()
    connection = await asyncpg.connect(url)
    exit_stack.push_async_callback(connection.close)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    exit_stack.push_async_callback(pool.close)

    def on_connection(sql: str) -> Timed:
        async def run(row: int) -> None:
            await connection.execute(sql, row)
        return run

    def on_pool(sql: str) -> Timed:
        async def run(row: int) -> None:
            async with pool.acquire() as pooled:
                await pooled.execute(sql, row)
        return run

    variants: dict[str, Timed] = {}
    for label, table, make in (("asyncpg, one connection", "asyncpg_conn", on_connection),
                               ("asyncpg pool", "asyncpg_pool", on_pool)):
        variants[f"{label}: INSERT"] = make(f"INSERT INTO bench_{table} (id, n, payload) VALUES ($1, 0, 'x')")
        variants[f"{label}: UPDATE"] = make(f"UPDATE bench_{table} SET n = n + 1 WHERE id = $1")
    return variants


def _store_variants(name: str, store: Store) -> dict[str, Timed]:
    journal = DatabaseJournal(store)
    account = account_fingerprint(SANDBOX_API_KEY)
    store.migrate()

    def write(row: int) -> None:
        entry = journal.begin(tool="update_lead", lead_id="lead", method="PATCH", path="leads/lead",
                              body={"title": f"CTO {row}"}, before=None, account=account,
                              secrets=(SANDBOX_API_KEY,))
        journal.finish(entry, status=200, outcome="ok", detail=None, secrets=(SANDBOX_API_KEY,))

    async def claim(row: int) -> None:
        store.claim_once("acct", f"direct-{row}", time.time() + 300)

    async def claim_in_thread(row: int) -> None:
        await anyio.to_thread.run_sync(store.claim_once, "acct", f"thread-{row}", time.time() + 300)

    async def journaled(row: int) -> None:
        write(row)

    return {
        f"{name} claim_once": claim,
        f"{name} claim_once via anyio.to_thread": claim_in_thread,
        f"{name} journal begin+finish": journaled,
    }


async def measure(driver_url: str, store_url: str, sqlite_url: str, count: int) -> dict[str, list[float]]:
    """Every variant's times (µs), interleaved iteration by iteration."""
    with contextlib.ExitStack() as stack:
        async with contextlib.AsyncExitStack() as async_stack:
            variants = _psycopg_variants(driver_url, stack)
            variants |= await _asyncpg_variants(driver_url, async_stack)
            for name, url in (("PostgresStore", store_url), ("SqliteStore", sqlite_url)):
                variants |= _store_variants(name, stack.enter_context(open_store(url)))
            for row in range(-20, 0):  # warm up every connection and statement
                for run in variants.values():
                    await run(row)
            times: dict[str, list[float]] = {name: [] for name in variants}
            order = list(variants.items())
            shuffler = random.Random(0)
            for row in range(count):
                shuffler.shuffle(order)  # no variant always follows the same one
                for name, run in order:
                    started = time.perf_counter()
                    await run(row)
                    times[name].append((time.perf_counter() - started) * 1e6)
            return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stores", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="iterations per variant (default 2000)")
    parser.add_argument("--quick", action="store_true", help="20 iterations per variant: a smoke run")
    parser.add_argument("--url", help="a PostgreSQL URL to use (its bench_* tables and the store's are created there)")
    parser.add_argument("--fsync", action="store_true", help="the throwaway cluster flushes each commit to disk")
    args = parser.parse_args(argv)
    count = 20 if args.quick else args.count
    with tempfile.TemporaryDirectory() as scratch, _postgres(args.url, fsync=args.fsync) as (driver_url, store_url):
        sqlite_url = f"sqlite:///{Path(scratch) / 'state.db'}"
        print(f"PostgreSQL on loopback (fsync {'on' if args.fsync or args.url else 'off'}), SQLite in {scratch}")
        for name, micros in anyio.run(measure, driver_url, store_url, sqlite_url, count).items():
            print(_summary(name, micros))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

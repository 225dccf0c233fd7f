"""What the audit journal costs per write (`python -m bench.journal [--quick] [--count N] [--dir PATH]`).

1. The journal alone: `begin` + `finish` (two appended lines, the file opened for each) with the
   intent line fsynced (the default) and without.
2. A whole `update_lead` through `NexorClient` against the sandbox on loopback: plain, journaled
   with fsync, journaled without. The difference is what a write pays for the journal, including
   the worker-thread hop `begin` takes so that fsync never stalls the event loop. (The GET that
   reads the before-values is the safety layer's, not measured here.)

fsync cost depends entirely on the disk under `--dir` (default: a temporary directory); run it
where the journal will live. Prints medians and 90th percentiles in microseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from nexor_mcp import endpoints
from nexor_mcp.audit import Journal, account_fingerprint
from nexor_mcp.audit.recording import journaled
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY, SandboxServer

LEAD = DEMO_LEAD_IDS[0]
BEFORE = {"fields": {"title": "Head of Sales"}, "metadata": {"budget": 4000}, "metadata_absent": []}
BODY = {"title": "CTO", "metadata": {"budget": 5000}}


def _summary(label: str, micros: list[float]) -> str:
    ordered = sorted(micros)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{label:<44} median {statistics.median(ordered):9.1f} µs   p90 {p90:9.1f} µs   (n={len(ordered)})"


def journal_alone(directory: Path, count: int, *, fsync: bool) -> list[float]:
    journal = Journal(directory / f"alone-{fsync}.jsonl", fsync=fsync)
    account = account_fingerprint(SANDBOX_API_KEY)
    secrets = (SANDBOX_API_KEY,)
    times: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        entry = journal.begin(tool="update_lead", lead_id=LEAD, method="PATCH", path=f"leads/{LEAD}", body=BODY,
                              before=BEFORE, account=account, secrets=secrets)
        journal.finish(entry, status=200, outcome="ok", detail=None, after={"fields": {"title": "CTO"}},
                       secrets=secrets)
        times.append((time.perf_counter() - started) * 1e6)
    return times


async def through_client(base_url: str, directory: Path, count: int) -> dict[str, list[float]]:
    client = NexorClient(Settings(api_key=Secret(SANDBOX_API_KEY), base_url=base_url))
    synced = Journal(directory / "client-fsync.jsonl")
    unsynced = Journal(directory / "client-nofsync.jsonl", fsync=False)
    request = endpoints.update_lead(LEAD, BODY)

    def journaled_update(journal: Journal) -> Awaitable[object]:  # what the write path's journal step does
        return journaled(journal, client, request, lambda: client.exchange(request), tool="update_lead", before=BEFORE)

    variants: dict[str, Callable[[], Awaitable[object]]] = {
        "update_lead, no journal": lambda: client.call(endpoints.update_lead(LEAD, BODY)),
        "update_lead, journaled (intent fsynced)": lambda: journaled_update(synced),
        "update_lead, journaled (no fsync)": lambda: journaled_update(unsynced),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(10):  # warm the connection pool
            await client.call(endpoints.update_lead(LEAD, BODY))
        for _ in range(count):  # interleaved, so drift hits every variant alike
            for name, call in variants.items():
                started = time.perf_counter()
                await call()
                times[name].append((time.perf_counter() - started) * 1e6)
    finally:
        await client.aclose()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="writes per variant (default 2000)")
    parser.add_argument("--quick", action="store_true", help="20 writes per variant: a smoke run")
    parser.add_argument("--dir", type=Path, help="where to put the journals (default: a temporary directory)")
    args = parser.parse_args(argv)
    count = 20 if args.quick else args.count
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        directory = Path(scratch)
        print(f"journal files in {directory}")
        print(_summary("journal alone: begin+finish, intent fsynced", journal_alone(directory, count, fsync=True)))
        print(_summary("journal alone: begin+finish, no fsync", journal_alone(directory, count, fsync=False)))
        with SandboxServer() as sandbox:
            results = anyio.run(through_client, sandbox.base_url, directory, count)
        for name, micros in results.items():
            print(_summary(name, micros))
        plain = statistics.median(results["update_lead, no journal"])
        for name in list(results)[1:]:
            print(f"  journal cost per write ({name.split(', ', 1)[1]}): "
                  f"{statistics.median(results[name]) - plain:+.1f} µs (median difference)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

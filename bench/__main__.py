"""Benchmark nexor-mcp against a minimal SDK server, side by side in one run.

    python -m bench            # full run, writes bench/RESULTS.md
    python -m bench --quick    # tiny counts: a smoke run that only proves the benchmark works
    python -m bench --http     # hosted mode under load (bench/hosted.py), its own section of RESULTS.md
    python -m bench --http --quick

Both servers are driven over stdio with raw JSON-RPC (no SDK client overhead), against the same
sandbox API running in its own process on loopback. A/B runs alternate so drift hits both.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

from bench.hosted import CONCURRENCIES, LATENCIES, kept_section, run_http
from bench.rpc import RawServer, spawn_timed
from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY

HERE = Path(__file__).parent
LEAD = DEMO_LEAD_IDS[0]
PROJECT = "nexor-mcp"
BASELINE = "baseline"


IMPORT_BREAKDOWN = """
import time
started = time.perf_counter()
import mcp.server
sdk = time.perf_counter()
import nexor_mcp.cli, nexor_mcp.client, nexor_mcp.server, nexor_mcp.stdio, nexor_mcp.logs
done = time.perf_counter()
print((sdk - started) * 1000, (done - sdk) * 1000)
"""
NOTES_MARKER = "<!-- notes: kept when the benchmark rewrites this file -->"


@dataclass(frozen=True)
class Counts:
    cold_starts: int
    calls: int
    memory_calls: int
    concurrent: int
    concurrency_rounds: int
    reuse_calls: int
    scale_calls: int


FULL = Counts(cold_starts=15, calls=400, memory_calls=5000, concurrent=100, concurrency_rounds=5,
              reuse_calls=100, scale_calls=60)
QUICK = Counts(cold_starts=2, calls=20, memory_calls=50, concurrent=10, concurrency_rounds=1,
               reuse_calls=10, scale_calls=3)


@dataclass
class Row:
    what: str
    project: float
    baseline: float | None
    unit: str
    note: str = ""

    def ratio(self) -> str:
        if self.baseline in (None, 0):
            return "–"
        return f"{self.project / self.baseline:.2f}×"


def _same(arguments: dict[str, Any], _: int) -> dict[str, Any]:
    return arguments


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextmanager
def sandbox_process() -> Iterator[str]:
    """The sandbox API in its own process, so the driver and the API never share a GIL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "nexor_mcp", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield line.split(" on ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


class Bench:
    def __init__(self, base_url: str, counts: Counts) -> None:
        self.base_url = base_url
        self.counts = counts
        root = base_url.rsplit("/api/public", 1)[0]
        self.control = httpx2.Client(base_url=root + "/_sandbox/")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NEXOR_BASE_URL": base_url,
            "NEXOR_API_KEY": SANDBOX_API_KEY,
        }
        self.argv = {
            PROJECT: [sys.executable, "-m", "nexor_mcp"],
            BASELINE: [sys.executable, str(HERE / "baseline_server.py")],
        }
        self.rows: list[Row] = []

    # -- helpers --------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        data: dict[str, int] = self.control.get("stats").json()
        return data

    def set_latency(self, seconds: float) -> None:
        self.control.post("latency", content=json.dumps({"seconds": seconds}))

    def start(self, name: str) -> RawServer:
        server = RawServer(self.argv[name], self.env)
        server.initialize()
        return server

    def add(self, what: str, project: float, baseline: float | None, unit: str, note: str = "") -> None:
        row = Row(what, project, baseline, unit, note)
        self.rows.append(row)
        shown = f"{baseline:10.2f}" if baseline is not None else "         –"
        print(f"  {what:<52} {project:10.2f} {shown} {unit:<6} {row.ratio():>7}  {note}", flush=True)

    def timed_calls(self, server: RawServer, count: int, arguments: Callable[[int], dict[str, Any]]) -> list[float]:
        times = []
        for n in range(count):
            started = time.perf_counter()
            result = server.call_tool("update_lead", arguments(n))
            times.append((time.perf_counter() - started) * 1000)
            assert not result.get("isError"), result
        return times

    # -- measurements -----------------------------------------------------------------------------

    def cold_start(self) -> None:
        samples: dict[str, list[float]] = {PROJECT: [], BASELINE: []}
        for round_number in range(self.counts.cold_starts):
            order = [PROJECT, BASELINE] if round_number % 2 == 0 else [BASELINE, PROJECT]
            for name in order:
                server, seconds = spawn_timed(self.argv[name], self.env)
                server.close()
                samples[name].append(seconds * 1000)
        sdk, ours = [], []
        for _ in range(max(2, self.counts.cold_starts // 2)):
            output = subprocess.run(
                [sys.executable, "-c", IMPORT_BREAKDOWN], check=True, capture_output=True, text=True
            ).stdout.split()
            sdk.append(float(output[0]))
            ours.append(float(output[1]))
        self.add("cold start: spawn → initialize result (median)", statistics.median(samples[PROJECT]),
                 statistics.median(samples[BASELINE]), "ms")
        self.add("  of which importing the MCP SDK (`mcp.server`)", statistics.median(sdk), None, "ms",
                 "the floor both servers share")
        self.add("  of which importing nexor-mcp's own modules after it", statistics.median(ours), None, "ms")

    def per_call(self) -> None:
        servers = {name: self.start(name) for name in (PROJECT, BASELINE)}
        samples: dict[str, list[float]] = {PROJECT: [], BASELINE: []}
        try:
            for server in servers.values():  # warm up both: pools, lazy imports, caches
                self.timed_calls(server, 20, lambda n: {"lead_id": LEAD, "title": f"warm {n}"})
            block = 50
            for round_number in range(max(1, self.counts.calls // block)):
                order = [PROJECT, BASELINE] if round_number % 2 == 0 else [BASELINE, PROJECT]
                for name in order:
                    samples[name] += self.timed_calls(
                        servers[name], min(block, self.counts.calls),
                        lambda n: {"lead_id": LEAD, "title": f"t{n}", "metadata": {"n": n}},
                    )
        finally:
            for server in servers.values():
                server.close()
        floor = []
        with httpx2.Client(base_url=self.base_url + "/", headers={"X-API-Key": SANDBOX_API_KEY}) as http:
            for n in range(self.counts.calls):
                body = json.dumps({"title": f"t{n}", "metadata": {"n": n}})
                started = time.perf_counter()
                http.patch(f"leads/{LEAD}", content=body, headers={"Content-Type": "application/json"})
                floor.append((time.perf_counter() - started) * 1000)
        project_median = statistics.median(samples[PROJECT])
        baseline_median = statistics.median(samples[BASELINE])
        floor_median = statistics.median(floor)
        self.add(f"per call: update_lead round trip, median of {len(samples[PROJECT])}", project_median,
                 baseline_median, "ms")
        self.add("per call: p90", percentile(samples[PROJECT], 0.9), percentile(samples[BASELINE], 0.9), "ms")
        self.add("  floor: the same PATCH sent directly with httpx2 (median)", floor_median, None, "ms")
        self.add("  overhead above the floor (median)", project_median - floor_median,
                 baseline_median - floor_median, "ms")

    def concurrency(self) -> None:
        servers = {name: self.start(name) for name in (PROJECT, BASELINE)}
        samples: dict[str, list[float]] = {PROJECT: [], BASELINE: []}
        calls = [("update_lead", {"lead_id": LEAD, "title": f"c{n}"}) for n in range(self.counts.concurrent)]
        try:
            for server in servers.values():
                server.call_many(calls[:5])  # warm up
            self.set_latency(0.1)
            for round_number in range(self.counts.concurrency_rounds):
                order = [PROJECT, BASELINE] if round_number % 2 == 0 else [BASELINE, PROJECT]
                for name in order:
                    started = time.perf_counter()
                    results = servers[name].call_many(calls)
                    samples[name].append((time.perf_counter() - started) * 1000)
                    assert not any(result.get("isError") for result in results)
        finally:
            self.set_latency(0.0)
            for server in servers.values():
                server.close()
        self.add(f"{self.counts.concurrent} calls at once, API 100 ms each: wall (median)",
                 statistics.median(samples[PROJECT]), statistics.median(samples[BASELINE]), "ms")

    def memory(self) -> None:
        servers = {name: self.start(name) for name in (PROJECT, BASELINE)}
        after_start = {name: server.rss_kib() / 1024 for name, server in servers.items()}
        try:
            block = 500
            done = 0
            while done < self.counts.memory_calls:
                count = min(block, self.counts.memory_calls - done)
                for server in servers.values():
                    for n in range(count):
                        server.call_tool("update_lead", {"lead_id": LEAD, "title": f"m{done + n}"})
                done += count
            after_calls = {name: server.rss_kib() / 1024 for name, server in servers.items()}
        finally:
            for server in servers.values():
                server.close()
        self.add("RSS after start", after_start[PROJECT], after_start[BASELINE], "MiB")
        self.add(f"RSS after {self.counts.memory_calls} calls", after_calls[PROJECT], after_calls[BASELINE], "MiB")
        self.add("  growth", after_calls[PROJECT] - after_start[PROJECT],
                 after_calls[BASELINE] - after_start[BASELINE], "MiB")

    def tokens(self) -> None:
        sizes: dict[str, dict[str, int]] = {}
        lead_bytes = 0
        for name in (PROJECT, BASELINE):
            with self.start(name) as server:
                listed = server.request("tools/list")
                result = server.call_tool("update_lead", {"lead_id": LEAD, "title": "VP Sales"})
                text = result["content"][0]["text"]
                sizes[name] = {
                    "tools": len(json.dumps(listed, separators=(",", ":")).encode()),
                    "text": len(text.encode()),
                    "structured": len(json.dumps(result.get("structuredContent"), separators=(",", ":")).encode()),
                }
                if name == PROJECT:
                    lead = result["structuredContent"]["lead"]
                    lead_bytes = len(json.dumps(lead, separators=(",", ":"), ensure_ascii=False).encode())
        self.add("tools/list result, default tools (read, write)", sizes[PROJECT]["tools"], sizes[BASELINE]["tools"],
                 "bytes", "13 tools; budget 14,000; the baseline has 1 undocumented tool")
        everything = RawServer(self.argv[PROJECT], {**self.env, "NEXOR_TOOLS": "read,write,automation,outreach"})
        with everything:
            everything.initialize()
            listed = everything.request("tools/list")
        self.add("tools/list result, every group", len(json.dumps(listed, separators=(",", ":")).encode()), None,
                 "bytes", f"{len(listed['tools'])} tools")
        self.add("update_lead result: text content", sizes[PROJECT]["text"], sizes[BASELINE]["text"], "bytes",
                 f"compact JSON of the lead: {lead_bytes} bytes")
        self.add("update_lead result: structuredContent", sizes[PROJECT]["structured"],
                 sizes[BASELINE]["structured"], "bytes")

    def connection_reuse(self) -> None:
        seen: dict[str, int] = {}
        for name in (PROJECT, BASELINE):
            with self.start(name) as server:
                before = self.stats()["connections"]
                self.control.post("reset")
                for n in range(self.counts.reuse_calls):
                    server.call_tool("update_lead", {"lead_id": LEAD, "title": f"r{n}"})
                seen[name] = self.stats()["connections"]
                del before
        self.add(f"connections the API saw for {self.counts.reuse_calls} sequential calls", seen[PROJECT],
                 seen[BASELINE], "conns")

    def scaling(self) -> None:
        servers = {name: self.start(name) for name in (PROJECT, BASELINE)}
        try:
            for keys in (1, 100, 1000):
                metadata = {f"key_{k}": f"value {k}" for k in range(keys)}
                medians = {}
                for name, server in servers.items():
                    arguments: dict[str, Any] = {"lead_id": DEMO_LEAD_IDS[1], "metadata": metadata}
                    times = self.timed_calls(server, self.counts.scale_calls, functools.partial(_same, arguments))
                    medians[name] = statistics.median(times)
                self.add(f"per call with metadata of {keys} keys (median)", medians[PROJECT], medians[BASELINE], "ms")
        finally:
            for server in servers.values():
                server.close()

    def write_safety(self) -> None:
        """What the write-safety steps cost per update_lead, against the plain call in the same run
        (the "baseline" column here is nexor-mcp's own unguarded call): the guard and the journal
        each read the lead first (one GET), a dry run reads and sends nothing, the journal also
        appends two lines, or (NEXOR_DATABASE_URL) stores two rows in SQLite or in PostgreSQL (a real
        cluster on loopback, fsync on, as the JSONL file's intent line is fsynced)."""
        from tests.postgres import start_cluster

        cluster = start_cluster(fsync=True)
        with tempfile.TemporaryDirectory() as scratch:
            journal = str(Path(scratch) / "audit.jsonl")
            plain = self.start(PROJECT)
            stores = {
                "journal": {"NEXOR_AUDIT_LOG": journal},
                "sqlite": {"NEXOR_DATABASE_URL": f"sqlite:///{Path(scratch) / 'state.db'}"},
                "postgresql": {"NEXOR_DATABASE_URL": cluster.create_database("bench")},
            }
            servers = {name: RawServer(self.argv[PROJECT], {**self.env, **extra}) for name, extra in stores.items()}
            for server in servers.values():
                server.initialize()
            samples: dict[str, list[float]] = {"plain": [], "guard": [], "dry": [], **{name: [] for name in stores}}
            def now_updated_at() -> str:
                lead = plain.call_tool("get_lead", {"lead_id": LEAD})["structuredContent"]["lead"]
                return str(lead["updated_at"])

            def guarded(n: int) -> dict[str, Any]:
                return {"lead_id": LEAD, "title": f"g{n}", "if_unchanged_since": updated_at}

            try:
                block = 25
                for _ in range(max(1, self.counts.calls // (2 * block))):
                    samples["plain"] += self.timed_calls(plain, block, lambda n: {"lead_id": LEAD, "title": f"p{n}"})
                    updated_at = now_updated_at()  # each write moves it; the guard must see the latest
                    for n in range(block):
                        started = time.perf_counter()
                        result = plain.call_tool("update_lead", guarded(n))
                        samples["guard"].append((time.perf_counter() - started) * 1000)
                        assert not result.get("isError"), result
                        updated_at = result["structuredContent"]["lead"]["updated_at"]
                    samples["dry"] += self.timed_calls(plain, block,
                                                       lambda n: {"lead_id": LEAD, "title": f"d{n}", "dry_run": True})
                    for name, server in servers.items():
                        samples[name] += self.timed_calls(server, block, lambda n: {"lead_id": LEAD, "title": f"j{n}"})
            finally:
                plain.close()
                for server in servers.values():
                    server.close()
                cluster.destroy()
        base = statistics.median(samples["plain"])
        self.add("write safety: update_lead with if_unchanged_since (median)", statistics.median(samples["guard"]),
                 base, "ms", "baseline: the same call without it; one GET more")
        self.add("write safety: update_lead with dry_run (median)", statistics.median(samples["dry"]), base, "ms",
                 "one GET, no write")
        self.add("write safety: update_lead with the audit journal on (median)", statistics.median(samples["journal"]),
                 base, "ms", "one GET for the before-values, two appended lines")
        file_journal = statistics.median(samples["journal"])
        for name, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
            self.add(f"write safety: update_lead journaled in {label} (median)", statistics.median(samples[name]),
                     base, "ms", "one GET, two rows (NEXOR_DATABASE_URL)")
            self.add(f"  journal in {label} against the JSONL file (median)", statistics.median(samples[name]),
                     file_journal, "ms", "baseline column: the JSONL journal's call")

    def run(self) -> None:
        print(f"  {'measure':<52} {PROJECT:>10} {BASELINE:>10} {'unit':<6} {'ratio':>7}", flush=True)
        self.cold_start()
        self.per_call()
        self.concurrency()
        self.memory()
        self.tokens()
        self.connection_reuse()
        self.scaling()
        self.write_safety()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version

    import mcp  # noqa: F401  (version below)

    return (
        f"{platform.system()} {platform.release()} {platform.machine()}, {cpu}, {os.cpu_count()} cores; "
        f"Python {platform.python_version()}, mcp {version('mcp')}, httpx2 {version('httpx2')}"
    )


def write_results(path: Path, rows: list[Row], counts: Counts) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Run `python -m bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}.",
        "",
        "nexor-mcp against `bench/baseline_server.py` (the smallest honest MCPServer that PATCHes a lead",
        "with httpx2), in the same run, alternating A/B, both over stdio with raw JSON-RPC, against the",
        f"sandbox API in its own process on loopback. Counts: {counts}.",
        "",
        "| measure | nexor-mcp | baseline | unit | ratio |",
        "|---|---:|---:|---|---:|",
    ]
    for row in rows:
        baseline = f"{row.baseline:.2f}" if row.baseline is not None else "–"
        note = f" ({row.note})" if row.note else ""
        lines.append(f"| {row.what.strip()}{note} | {row.project:.2f} | {baseline} | {row.unit} | {row.ratio()} |")
    notes = ""
    if path.exists():
        previous = path.read_text(encoding="utf-8")
        http_section = kept_section(previous)  # `--http`'s section, kept as it is
        if http_section:
            notes = "\n" + http_section
        if NOTES_MARKER in previous:
            notes += "\n" + previous[previous.index(NOTES_MARKER):]
    path.write_text("\n".join(lines) + "\n" + notes, encoding="utf-8")


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run, results not written")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write the results table")
    parser.add_argument("--http", action="store_true", help="hosted mode under load instead (bench/hosted.py)")
    parser.add_argument("--project-root", type=Path, default=HERE.parent,
                        help="with --http: serve nexor-mcp from this tree (a scratch copy, for experiments)")
    parser.add_argument("--latency", type=_floats, default=LATENCIES,
                        help="with --http: API latencies in seconds, comma-separated (default 0,0.1)")
    parser.add_argument("--concurrency", type=_ints, default=CONCURRENCIES,
                        help="with --http: concurrencies, comma-separated (default 1,16,64)")
    parser.add_argument("--growth-calls", type=int, help="with --http: calls for the RSS growth (0: skip it)")
    args = parser.parse_args(argv)
    if args.http:
        return run_http(args.quick, args.out, args.project_root.resolve(), args.latency, args.concurrency,
                        machine(), f"{datetime.now(UTC):%Y-%m-%d %H:%M}", NOTES_MARKER, args.growth_calls)
    counts = QUICK if args.quick else FULL
    with sandbox_process() as base_url:
        bench = Bench(base_url, counts)
        bench.run()
    if not args.quick:
        write_results(args.out, bench.rows, counts)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Hosted mode under load: `nexor-mcp http` against `bench/baseline_http.py`, side by side in one run.

    python -m bench --http            # full run (~3 min), writes its section of bench/RESULTS.md
    python -m bench --http --quick    # tiny counts: a smoke run that only proves the benchmark works

Both servers are stateless Streamable HTTP with JSON answers, one uvicorn process each, pinned to
core 0; the load generator (this process) and the sandbox API (its own process) are pinned to the
other core(s), so the server under test never competes with its own load for a CPU. The load is
raw HTTP/1.1 keep-alive on asyncio sockets, one connection per concurrent caller, each sending
`tools/call update_lead` JSON-RPC POSTs back to back: it costs ~0.1 ms of CPU per call, against
~1.5 ms for an httpx2 client (which would be the bottleneck on one core). Rounds alternate
A/B/B/A so drift hits both servers alike.

A third server in the same run is nexor-mcp with its other outbound sender (`nexor_mcp.client.SENDER`:
the lean pool or httpx2), so the sender choice is measured against the same load and baseline; a
fourth is nexor-mcp with NEXOR_DATABASE_URL on a real PostgreSQL (loopback, fsync on; its own
processes on the load side's cores), so every call is journaled there, before and after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

from nexor_mcp.client import SENDER
from nexor_mcp.sandbox import DEMO_LEAD_IDS, SANDBOX_API_KEY

HERE = Path(__file__).parent
ROOT = HERE.parent
LEAD = DEMO_LEAD_IDS[0]
PROJECT = "nexor-mcp"
BASELINE = "baseline"
OTHER_SENDER = "httpx" if SENDER == "pool" else "pool"
OTHER = f"{PROJECT} ({OTHER_SENDER})"
"""nexor-mcp with the sender it does not use by default."""
STATEFUL = f"{PROJECT} (PostgreSQL journal)"
"""nexor-mcp with NEXOR_DATABASE_URL: every update_lead journaled in PostgreSQL."""
NAMES = (PROJECT, BASELINE, OTHER, STATEFUL)
WITH_SENDER = (
    "import sys; import nexor_mcp.client as client; client.SENDER = sys.argv[1]; "
    "from nexor_mcp.cli import main; sys.exit(main(sys.argv[2:]))"
)
PROTOCOL_VERSION = "2025-11-25"
SECTION_BEGIN = "<!-- http: rewritten by `python -m bench --http` -->"
SECTION_END = "<!-- /http -->"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class HttpCounts:
    """Calls per round for each (latency, concurrency) cell; every cell runs `rounds` rounds per server."""

    calls: dict[tuple[float, int], int]
    rounds: int
    warmup: int
    growth_calls: int
    growth_concurrency: int


LATENCIES = (0.0, 0.1)
CONCURRENCIES = (1, 16, 64)
HTTP_FULL = HttpCounts(
    calls={(0.0, 1): 600, (0.0, 16): 2000, (0.0, 64): 2560, (0.1, 1): 40, (0.1, 16): 320, (0.1, 64): 1280},
    rounds=2, warmup=300, growth_calls=10_000, growth_concurrency=16,
)
HTTP_QUICK = HttpCounts(
    calls={(0.0, 1): 5, (0.0, 16): 32, (0.0, 64): 64, (0.1, 1): 2, (0.1, 16): 16, (0.1, 64): 64},
    rounds=1, warmup=5, growth_calls=100, growth_concurrency=16,
)


# -- processes ---------------------------------------------------------------------------------------


def cores() -> tuple[set[int], set[int]]:
    """(the server's core, the load generator's and API's cores); both everything on one core."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return set(available), set(available)
    return {available[0]}, set(available[1:])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (every thread), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def spawn_pinned(argv: list[str], cpus: set[int], cwd: Path, env: dict[str, str],
                 stdout: int = subprocess.DEVNULL) -> subprocess.Popen[str]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL,
                            text=True, cwd=cwd, env=env, preexec_fn=pin)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Sandbox:
    base_url: str
    pid: int


@contextmanager
def pinned_sandbox(cpus: set[int]) -> Iterator[Sandbox]:
    """The sandbox API in its own process on the load generator's cores."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT)}
    process = spawn_pinned([sys.executable, "-m", "nexor_mcp", "sandbox", "--port", "0"], cpus, ROOT, env,
                           stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield Sandbox(line.split(" on ", 1)[1].strip(), process.pid)
    finally:
        stop(process)


class Served:
    """One server under test: a uvicorn process on a loopback port, pinned to `cpus`."""

    def __init__(self, name: str, base_url: str, cpus: set[int], project_root: Path,
                 database_url: str | None = None) -> None:
        self.name = name
        self.port = free_port()
        root = ROOT if name == BASELINE else project_root
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(root)}
        if name == STATEFUL and database_url is not None:
            env["NEXOR_DATABASE_URL"] = database_url
        serve = ["--base-url", base_url, "http", "--host", "127.0.0.1", "--port", str(self.port)]
        if name in (PROJECT, STATEFUL):
            argv = [sys.executable, "-m", "nexor_mcp", *serve]
        elif name == OTHER:
            argv = [sys.executable, "-c", WITH_SENDER, OTHER_SENDER, *serve]
        else:
            argv = [sys.executable, str(HERE / "baseline_http.py"), "--base-url", base_url, "--port", str(self.port)]
        self.process = spawn_pinned(argv, cpus, root, env)
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited at start ({self.process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def close(self) -> None:
        stop(self.process)


# -- the load generator --------------------------------------------------------------------------------


@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    client_cpu_seconds: float = 0.0

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(what[:300])


def call_body(n: int) -> bytes:
    message = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
               "params": {"name": "update_lead", "arguments": {"lead_id": LEAD, "title": f"t{n}"}}}
    return json.dumps(message, separators=(",", ":")).encode()


def request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: {PROTOCOL_VERSION}\r\n"
        f"X-API-Key: {SANDBOX_API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _caller(port: int, numbers: Iterator[int], load: Load, limit_seconds: float) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        for n in numbers:
            started = time.perf_counter()
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request_bytes(port, call_body(n)))
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limit_seconds)
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                length = -1
                close = False
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "connection" and value.strip().lower() == "close":
                        close = True
                if length < 0:
                    raise RuntimeError(f"no Content-Length: {head!r}")
                payload = await asyncio.wait_for(reader.readexactly(length), limit_seconds)
                elapsed = (time.perf_counter() - started) * 1000
                if close:
                    writer.close()
                    reader = writer = None
                if status != 200:
                    load.error(f"HTTP {status}: {payload[:200]!r}")
                    continue
                message = json.loads(payload)
                result = message.get("result")
                if not isinstance(result, dict) or result.get("isError"):
                    load.error(f"call failed: {payload[:200]!r}")
                    continue
                load.latencies_ms.append(elapsed)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as exc:
                load.error(f"{type(exc).__name__}: {exc}")
                if writer is not None:
                    writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _drive(port: int, calls: int, concurrency: int, limit_seconds: float) -> Load:
    load = Load()
    numbers = iter(range(calls))
    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(_caller(port, numbers, load, limit_seconds) for _ in range(concurrency)))
    load.wall_seconds = time.perf_counter() - started
    load.client_cpu_seconds = time.process_time() - cpu
    return load


def drive(port: int, calls: int, concurrency: int, timeout: float = 30.0) -> Load:
    """`calls` tools/call POSTs over `concurrency` keep-alive connections, as fast as answered."""
    return asyncio.run(_drive(port, calls, concurrency, timeout))


# -- measurements --------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Cell:
    """One server's figures in one (latency, concurrency) cell, over all its rounds."""

    latencies_ms: list[float] = field(default_factory=list)
    calls: int = 0
    wall_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    api_cpu_seconds: float = 0.0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    connections: int = 0
    rss_mib: float = 0.0

    @property
    def rate(self) -> float:
        return self.calls / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def cpu_ms_per_call(self) -> float:
        return self.server_cpu_seconds * 1000 / self.calls if self.calls else 0.0

    @property
    def busy(self) -> float:
        return self.server_cpu_seconds / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def load_busy(self) -> float:
        """The load side's CPU (generator + API) over wall time: near 100 % of its cores would
        mean the load, not the server, set the pace."""
        spent = self.client_cpu_seconds + self.api_cpu_seconds
        return spent / self.wall_seconds if self.wall_seconds else 0.0


@dataclass
class Growth:
    before_mib: float
    after_mib: float
    calls: int
    errors: int


class HttpBench:
    def __init__(self, sandbox: Sandbox, counts: HttpCounts, server_cpus: set[int], load_cpus: set[int],
                 project_root: Path, latencies: tuple[float, ...] = LATENCIES,
                 concurrencies: tuple[int, ...] = CONCURRENCIES, database_url: str | None = None) -> None:
        self.database_url = database_url
        self.base_url = base_url = sandbox.base_url
        self.sandbox_pid = sandbox.pid
        self.counts = counts
        self.server_cpus = server_cpus
        self.load_cpus = load_cpus
        self.project_root = project_root
        self.latencies = latencies
        self.concurrencies = concurrencies
        root = base_url.rsplit("/api/public", 1)[0]
        self.control = httpx2.Client(base_url=root + "/_sandbox/")
        self.cells: dict[tuple[float, int], dict[str, Cell]] = {}
        self.growth: dict[str, Growth] = {}

    def reset(self, latency: float) -> None:
        self.control.post("reset")  # also sets latency back to 0
        if latency:
            self.control.post("latency", content=json.dumps({"seconds": latency}))

    def connections(self) -> int:
        data: dict[str, int] = self.control.get("stats").json()
        return data["connections"]

    def round(self, server: Served, cell: Cell, latency: float, concurrency: int, calls: int) -> None:
        self.reset(latency)
        cpu, api_cpu = server.cpu_seconds(), process_cpu_seconds(self.sandbox_pid)
        load = drive(server.port, calls, concurrency)
        cell.server_cpu_seconds += server.cpu_seconds() - cpu
        cell.api_cpu_seconds += process_cpu_seconds(self.sandbox_pid) - api_cpu
        cell.connections = max(cell.connections, self.connections())
        cell.latencies_ms += load.latencies_ms
        cell.calls += calls
        cell.wall_seconds += load.wall_seconds
        cell.client_cpu_seconds += load.client_cpu_seconds
        cell.errors += load.errors
        cell.error_samples += load.error_samples[: 3 - len(cell.error_samples)]
        cell.rss_mib = server.rss_mib()

    def run(self) -> None:
        servers = {name: Served(name, self.base_url, self.server_cpus, self.project_root, self.database_url)
                   for name in NAMES}
        try:
            for server in servers.values():  # warm up: pools, lazy imports, caches
                self.reset(0.0)
                drive(server.port, self.counts.warmup, 16)
            print(f"  {'API ms':>6} {'conc':>4} | {'calls/s':>17} {'p50 ms':>13} {'p99 ms':>15} "
                  f"{'CPU ms/call':>11} {'busy':>9} {'RSS MiB':>11} {'err':>5} {'conns':>9} | {OTHER}: "
                  "calls/s, p99 ms, CPU ms/call, err, conns", flush=True)
            print(f"  {'':>6} {'':>4} | {'nexor / base':>17} {'nexor / base':>13} {'nexor / base':>15} "
                  f"{'nexor/base':>11} {'n / b':>9} {'n / b':>11} {'n/b':>5} {'n / b':>9}", flush=True)
            for latency in self.latencies:
                for concurrency in self.concurrencies:
                    calls = self.counts.calls[(latency, concurrency)]
                    cells = {name: Cell() for name in NAMES}
                    for round_number in range(self.counts.rounds):
                        for name in NAMES if round_number % 2 == 0 else NAMES[::-1]:  # A/B/C, C/B/A
                            self.round(servers[name], cells[name], latency, concurrency, calls)
                    self.cells[(latency, concurrency)] = cells
                    self.print_cell(latency, concurrency, cells)
            self.reset(0.0)
            for name in (PROJECT, BASELINE) if self.counts.growth_calls else ():
                server = servers[name]
                drive(server.port, self.counts.warmup, self.counts.growth_concurrency)
                before = server.rss_mib()
                load = drive(server.port, self.counts.growth_calls, self.counts.growth_concurrency)
                self.growth[name] = Growth(before, server.rss_mib(), self.counts.growth_calls, load.errors)
                self.reset(0.0)
            if not self.growth:
                return
            project, baseline = self.growth[PROJECT], self.growth[BASELINE]
            print(f"  RSS over {self.counts.growth_calls} calls at concurrency {self.counts.growth_concurrency}: "
                  f"{PROJECT} {project.before_mib:.1f} → {project.after_mib:.1f} MiB "
                  f"(+{project.after_mib - project.before_mib:.2f}), "
                  f"{BASELINE} {baseline.before_mib:.1f} → {baseline.after_mib:.1f} MiB "
                  f"(+{baseline.after_mib - baseline.before_mib:.2f})", flush=True)
        finally:
            for server in servers.values():
                server.close()
            self.reset(0.0)

    @staticmethod
    def print_cell(latency: float, concurrency: int, cells: dict[str, Cell]) -> None:
        a, b, c = cells[PROJECT], cells[BASELINE], cells[OTHER]
        print(
            f"  {latency * 1000:>6.0f} {concurrency:>4} | {a.rate:>7.0f} / {b.rate:<7.0f} "
            f"{statistics.median(a.latencies_ms or [0]):>5.1f} / {statistics.median(b.latencies_ms or [0]):<5.1f} "
            f"{percentile(a.latencies_ms, 0.99):>6.1f} / {percentile(b.latencies_ms, 0.99):<6.1f} "
            f"{a.cpu_ms_per_call:>4.2f}/{b.cpu_ms_per_call:<4.2f}  {a.busy:>3.0%}/{b.busy:<3.0%} "
            f"{a.rss_mib:>5.1f}/{b.rss_mib:<5.1f} {a.errors:>2}/{b.errors:<2} {a.connections:>4}/{b.connections:<4}"
            f" | {c.rate:>5.0f} {percentile(c.latencies_ms, 0.99):>6.1f} {c.cpu_ms_per_call:>4.2f} {c.errors:>2} "
            f"{c.connections:>4}  (load side busy {a.load_busy:.0%}/{b.load_busy:.0%}; "
            f"load gen {a.client_cpu_seconds * 1000 / max(1, a.calls):.2f} ms CPU/call)",
            flush=True,
        )
        s = cells[STATEFUL]
        print(f"  {'':>6} {'':>4} | {STATEFUL}: {s.rate:.0f} calls/s ({s.rate / b.rate if b.rate else 0:.2f}× "
              f"baseline), p99 {percentile(s.latencies_ms, 0.99):.1f} ms, {s.cpu_ms_per_call:.2f} ms CPU/call, "
              f"{s.errors} errors", flush=True)
        for name, cell in cells.items():
            for sample in cell.error_samples:
                print(f"    {name} error: {sample}", flush=True)

    # -- the verdict and the table ------------------------------------------------------------------

    def targets(self) -> list[tuple[str, bool, str]]:
        checks: list[tuple[str, bool, str]] = []
        for concurrency in (16, 64):
            cells = self.cells.get((0.0, concurrency))
            if cells is None:
                continue
            a, b = cells[PROJECT], cells[BASELINE]
            ratio = a.rate / b.rate if b.rate else 0.0
            checks.append((f"calls/s ≥ 1.5× baseline, concurrency {concurrency}, API 0 ms", ratio >= 1.5,
                           f"{ratio:.2f}×"))
            if concurrency == 16:
                journaled = cells[STATEFUL].rate / b.rate if b.rate else 0.0
                checks.append(("calls/s ≥ 1.2× baseline with every call journaled in PostgreSQL, concurrency 16, "
                               "API 0 ms", journaled >= 1.2, f"{journaled:.2f}×"))
        for (latency, concurrency), cells in self.cells.items():
            a, b = cells[PROJECT], cells[BASELINE]
            floor = latency * 1000  # the API's own latency: no server can answer under it
            a99, b99 = percentile(a.latencies_ms, 0.99) - floor, percentile(b.latencies_ms, 0.99) - floor
            ratio = a99 / b99 if b99 > 0 else float("inf")
            what = f"p99 ≤ 0.8× baseline, concurrency {concurrency}, API {floor:.0f} ms"
            if floor:
                what += f" (the time above the API's {floor:.0f} ms)"
            checks.append((what, ratio <= 0.8, f"{ratio:.2f}×"))
        errors = sum(cells[name].errors for cells in self.cells.values() for name in (PROJECT, OTHER, STATEFUL))
        checks.append(("zero errors", errors == 0, f"{errors}"))
        if PROJECT in self.growth:
            growth = self.growth[PROJECT]
            grown = growth.after_mib - growth.before_mib
            checks.append((f"RSS growth < 5 MB over {growth.calls} calls", grown < 5 * 1e6 / 2**20,
                           f"{grown:.2f} MiB"))
        for (latency, concurrency), cells in self.cells.items():
            a = cells[PROJECT]
            rounds = self.counts.rounds
            checks.append((f"connections to the API reused, concurrency {concurrency}, API {latency * 1000:.0f} ms",
                           a.connections <= concurrency, f"{a.connections} for {a.calls // rounds} calls"))
        return checks

    def markdown(self, machine: str, when: str) -> str:
        lines = [
            SECTION_BEGIN,
            "## Hosted mode (Streamable HTTP) under load",
            "",
            f"Run `python -m bench --http` on {when} UTC. Machine: {machine}.",
            "",
            "`nexor-mcp http` (multi-tenant: the key comes in each request's `X-API-Key`) against",
            "`bench/baseline_http.py` (the smallest honest `MCPServer`, stateless, JSON answers, one httpx2",
            "client with its default pool, PATCHing with the request's key), one uvicorn process each pinned",
            f"to core(s) {sorted(self.server_cpus)}; the raw-socket load generator and the sandbox API are pinned to "
            f"{sorted(self.load_cpus)}.",
            f"Each cell: {self.counts.rounds} rounds per server, alternating A/B/B/A; calls per round: "
            + ", ".join(f"{int(lat * 1000)} ms × {conc}: {n}" for (lat, conc), n in self.counts.calls.items()) + ".",
            "Busy = server CPU time / wall time (100 % = the server's core is saturated); load busy = the load",
            "generator's and the API's CPU time / wall time, on their own core(s). Conns = distinct",
            "client ports the API saw in a round (the most of any round): ≤ concurrency means reused.",
            "",
            "| API latency | concurrency | calls/s nexor | calls/s base | × | p50 ms nexor | p50 ms base | "
            "p99 ms nexor | p99 ms base | × | CPU ms/call nexor | CPU ms/call base | busy nexor | busy base | "
            "RSS MiB nexor | RSS MiB base | errors nexor | errors base | conns nexor | conns base | "
            "load busy nexor | load busy base |",
            "|---:|---:|" + "---:|" * 20,
        ]
        for (latency, concurrency), cells in self.cells.items():
            a, b = cells[PROJECT], cells[BASELINE]
            a99, b99 = percentile(a.latencies_ms, 0.99), percentile(b.latencies_ms, 0.99)
            lines.append(
                f"| {latency * 1000:.0f} ms | {concurrency} | {a.rate:.0f} | {b.rate:.0f} | "
                f"{a.rate / b.rate if b.rate else 0:.2f}× | "
                f"{statistics.median(a.latencies_ms or [0]):.2f} | {statistics.median(b.latencies_ms or [0]):.2f} | "
                f"{a99:.2f} | {b99:.2f} | {a99 / b99:.2f}× | {a.cpu_ms_per_call:.2f} | {b.cpu_ms_per_call:.2f} | "
                f"{a.busy:.0%} | {b.busy:.0%} | {a.rss_mib:.1f} | {b.rss_mib:.1f} | {a.errors} | {b.errors} | "
                f"{a.connections} | {b.connections} | {a.load_busy:.0%} | {b.load_busy:.0%} |"
            )
        if self.growth:
            lines += ["", "| RSS over calls at concurrency "
                      f"{self.counts.growth_concurrency} (after a warm-up) | nexor-mcp | baseline |", "|---|---:|---:|"]
            ga, gb = self.growth[PROJECT], self.growth[BASELINE]
            lines.append(f"| before | {ga.before_mib:.1f} MiB | {gb.before_mib:.1f} MiB |")
            lines.append(f"| after {ga.calls:,} calls | {ga.after_mib:.1f} MiB | {gb.after_mib:.1f} MiB |")
            grown = (ga.after_mib - ga.before_mib, gb.after_mib - gb.before_mib)
            lines.append(f"| growth | {grown[0]:.2f} MiB | {grown[1]:.2f} MiB |")
            lines.append(f"| errors | {ga.errors} | {gb.errors} |")
        lines += self.sender_table()
        lines += ["", "nexor-mcp with every call journaled in PostgreSQL (NEXOR_DATABASE_URL), same rounds:", "",
                  "| API latency | concurrency | calls/s journaled | calls/s baseline | × | p99 ms journaled | "
                  "CPU ms/call journaled | errors |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for (latency, concurrency), cells in self.cells.items():
            s, b = cells[STATEFUL], cells[BASELINE]
            lines.append(f"| {latency * 1000:.0f} ms | {concurrency} | {s.rate:.0f} | {b.rate:.0f} | "
                         f"{s.rate / b.rate if b.rate else 0:.2f}× | {percentile(s.latencies_ms, 0.99):.2f} | "
                         f"{s.cpu_ms_per_call:.2f} | {s.errors} |")
        lines += ["", "| target (same-run ratios) | met | measured |", "|---|---|---:|"]
        for what, met, measured in self.targets():
            lines.append(f"| {what} | {'yes' if met else '**no**'} | {measured} |")
        lines.append(SECTION_END)
        return "\n".join(lines) + "\n"


    def sender_table(self) -> list[str]:
        """nexor-mcp with each outbound sender, from the same rounds as the table above."""
        pool, httpx = (PROJECT, OTHER) if SENDER == "pool" else (OTHER, PROJECT)
        lines = [
            "", f"nexor-mcp by outbound sender (`nexor_mcp.client.SENDER`; the default is {SENDER}), same rounds:", "",
            "| API latency | concurrency | calls/s pool | calls/s httpx2 | × | p99 ms pool | p99 ms httpx2 | "
            "CPU ms/call pool | CPU ms/call httpx2 | busy pool | busy httpx2 | conns pool | conns httpx2 | "
            "errors pool | errors httpx2 |",
            "|---:|---:|" + "---:|" * 13,
        ]
        for (latency, concurrency), cells in self.cells.items():
            a, b = cells[pool], cells[httpx]
            lines.append(
                f"| {latency * 1000:.0f} ms | {concurrency} | {a.rate:.0f} | {b.rate:.0f} | "
                f"{a.rate / b.rate if b.rate else 0:.2f}× | {percentile(a.latencies_ms, 0.99):.2f} | "
                f"{percentile(b.latencies_ms, 0.99):.2f} | {a.cpu_ms_per_call:.2f} | {b.cpu_ms_per_call:.2f} | "
                f"{a.busy:.0%} | {b.busy:.0%} | {a.connections} | {b.connections} | {a.errors} | {b.errors} |"
            )
        return lines


def with_section(previous: str, section: str, notes_marker: str) -> str:
    """`previous` with its HTTP section replaced by `section` (or put just before the notes)."""
    if SECTION_BEGIN in previous and SECTION_END in previous:
        start = previous.index(SECTION_BEGIN)
        end = previous.index(SECTION_END) + len(SECTION_END) + 1
        return previous[:start] + section + previous[end:]
    if notes_marker in previous:
        at = previous.index(notes_marker)
        return previous[:at] + section + "\n" + previous[at:]
    return previous + "\n" + section


def kept_section(previous: str) -> str:
    """The HTTP section of `previous`, for the stdio run to keep when it rewrites the file."""
    if SECTION_BEGIN in previous and SECTION_END in previous:
        return previous[previous.index(SECTION_BEGIN):previous.index(SECTION_END) + len(SECTION_END)] + "\n"
    return ""


def run_http(quick: bool, out: Path, project_root: Path, latencies: tuple[float, ...],
             concurrencies: tuple[int, ...], machine: str, when: str, notes_marker: str,
             growth_calls: int | None = None) -> int:
    server_cpus, load_cpus = cores()
    os.sched_setaffinity(0, load_cpus)
    counts = HTTP_QUICK if quick else HTTP_FULL
    if growth_calls is not None:
        counts = dataclasses.replace(counts, growth_calls=growth_calls)
    from tests.postgres import start_cluster

    cluster = start_cluster(fsync=True)  # started from here: its processes share the load side's cores
    try:
        with pinned_sandbox(load_cpus) as sandbox:
            bench = HttpBench(sandbox, counts, server_cpus, load_cpus, project_root, latencies, concurrencies,
                              database_url=cluster.create_database("bench"))
            bench.run()
    finally:
        cluster.destroy()
    for line in bench.sender_table()[1:]:
        print(line)
    failed = [(what, measured) for what, met, measured in bench.targets() if not met]
    print("targets: " + ("all met" if not failed else "not met: " + "; ".join(f"{w} ({m})" for w, m in failed)))
    if not quick:
        previous = out.read_text(encoding="utf-8") if out.exists() else ""
        out.write_text(with_section(previous, bench.markdown(machine, when), notes_marker), encoding="utf-8")
        print(f"wrote {out}")
    errors = sum(cell.errors for cells in bench.cells.values() for cell in cells.values())
    return 1 if quick and errors else 0

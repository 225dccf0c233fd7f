"""Logging: one bounded, escaped line per record with the key masked first; a bounded queue so a
host that never reads stderr cannot stall the server; dropped records counted and reported."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from nexor_mcp.logs import (
    MASK,
    MAX_MESSAGE_CHARS,
    TRACEBACK_PREFIX,
    LogPipeline,
    RedactingFilter,
    SafeFormatter,
    configure_logging,
    stop_logging,
)
from nexor_mcp.sandbox import SandboxServer
from tests.conftest import ANA, TEST_KEY, server_env

KEY = "nxr_live_0123456789abcdefghij"
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
FORGED = "2026-11-27 03:32:50,611 INFO nexor_mcp.server: FORGED"
TIMEOUT = 60  # seconds; only a bound on a hang, never an assertion about speed


def make_record(msg: str, args: Any = None, exc_info: Any = None) -> logging.LogRecord:
    return logging.LogRecord("nexor_mcp.test", logging.INFO, __file__, 1, msg, args, exc_info)


def format_masked(record: logging.LogRecord, secrets: tuple[str, ...] = (KEY,)) -> str:
    """What the server's handler does to a record: mask, then format (escape and clip)."""
    RedactingFilter(secrets).filter(record)
    return SafeFormatter().format(record)


# --- the formatter ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("char", "shown"),
    [("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"), ("\x00", "\\u0000"), ("\x1b", "\\u001b"), ("\x7f", "\\u007f"),
     ("\x85", "\\u0085"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")],
)
def test_control_characters_are_escaped_so_a_record_stays_one_line(char: str, shown: str) -> None:
    line = SafeFormatter().format(make_record("rejected: %s", (f"x{char}{FORGED}",)))
    assert "\n" not in line and char not in line
    assert line.endswith(f"rejected: x{shown}{FORGED}")
    assert len(line.splitlines()) == 1


def test_long_messages_are_clipped_and_say_how_much_was_cut() -> None:
    line = SafeFormatter("%(message)s").format(make_record("v=%s", ("y" * 1_000_000,)))
    assert line == "v=" + "y" * (MAX_MESSAGE_CHARS - 2) + f"…(+{1_000_002 - MAX_MESSAGE_CHARS} chars)"


def test_a_key_straddling_the_clip_is_masked_before_clipping() -> None:
    for pad in range(MAX_MESSAGE_CHARS - len(KEY), MAX_MESSAGE_CHARS):
        line = format_masked(make_record("%s%s%s", ("a" * pad, KEY, "b" * 100)))
        assert KEY[:6] not in line, pad  # not even a prefix too short for redact() to recognise
        assert "…(+" in line


def test_traceback_lines_are_quoted_so_an_exception_message_cannot_forge_a_record() -> None:
    try:
        raise ValueError(f"bad value\n{FORGED}\r\u2028 with {KEY}")
    except ValueError:
        record = make_record("call crashed", exc_info=sys.exc_info())
    text = format_masked(record)
    first, *rest = text.split("\n")
    assert first.endswith("call crashed")
    assert rest and all(line.startswith(TRACEBACK_PREFIX) for line in rest)
    assert f"{TRACEBACK_PREFIX}{FORGED}" in rest
    assert not any(RECORD_START.match(line) for line in rest)
    assert "\r" not in text and "\u2028" not in text
    assert KEY not in text and MASK in text


def test_a_huge_traceback_is_bounded() -> None:
    try:
        raise ValueError("z" * 1_000_000)
    except ValueError:
        record = make_record("crashed", exc_info=sys.exc_info())
    text = SafeFormatter().format(record)
    assert len(text) < 40_000
    assert "chars of traceback cut" in text
    assert all(len(line) < MAX_MESSAGE_CHARS + 50 for line in text.splitlines())


def test_a_record_whose_arguments_do_not_fit_still_logs_a_line() -> None:
    line = format_masked(make_record("%d items", ("many",)))
    assert "unformattable log record '%d items'" in line


# --- the queue and its writer thread ---------------------------------------------------------------


class BlockedWriter:
    """A stderr that nobody reads: the first write blocks until `release()`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.lines: list[str] = []

    def write(self, data: bytes) -> None:
        self.entered.set()
        self.released.wait()
        self.lines.extend(data.decode().splitlines())

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def blocked() -> Iterator[tuple[BlockedWriter, LogPipeline, logging.Logger]]:
    writer = BlockedWriter()
    pipeline = LogPipeline(writer.write, size=10)
    logger = logging.getLogger("nexor_mcp.test_logging.queue")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(pipeline.handler)
    pipeline.start()
    try:
        yield writer, pipeline, logger
    finally:
        writer.release()
        logger.removeHandler(pipeline.handler)
        pipeline.stop()


def log_in_thread(logger: logging.Logger, count: int) -> None:
    """Log `count` records from another thread and fail (instead of hanging) if logging blocks."""
    def run() -> None:
        for n in range(count):
            logger.info("record %d", n)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(TIMEOUT)
    assert not worker.is_alive(), "logging blocked on a stuck stderr"


def test_a_stuck_stderr_never_blocks_logging_and_drops_are_counted_then_reported(
    blocked: tuple[BlockedWriter, LogPipeline, logging.Logger],
) -> None:
    writer, pipeline, logger = blocked
    logger.info("first")
    assert writer.entered.wait(TIMEOUT)  # the writer thread holds "first" and is stuck writing it
    log_in_thread(logger, 10 + 37)  # 10 fill the queue, 37 are dropped
    assert pipeline.dropped == 37
    writer.release()
    pipeline.stop(timeout=TIMEOUT)
    assert [line.split(": ", 1)[1] for line in writer.lines] == [
        "first", *[f"record {n}" for n in range(10)], "37 log records were dropped because stderr was not being read"
    ]
    assert "WARNING nexor_mcp.logs" in writer.lines[-1]


def test_stop_gives_up_on_a_stuck_stderr(blocked: tuple[BlockedWriter, LogPipeline, logging.Logger]) -> None:
    writer, pipeline, logger = blocked
    logger.info("first")
    assert writer.entered.wait(TIMEOUT)
    log_in_thread(logger, 20)
    stopper = threading.Thread(target=pipeline.stop, kwargs={"timeout": 0.05}, daemon=True)
    stopper.start()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive(), "stop() waited for a stderr that is never read"


def test_configure_logging_masks_escapes_and_clips_every_library() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", (KEY,), stream=stream)
        logging.getLogger("some.library").warning("header %s\n%s", {"X-API-Key": KEY}, FORGED)
        logging.getLogger("nexor_mcp.server").info("rejected: %s", "q" * 10_000 + KEY)
    finally:
        stop_logging(timeout=TIMEOUT)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(RECORD_START.match(line) for line in lines)
    assert lines[0].endswith(f"WARNING some.library: header {{'X-API-Key': '{MASK}'}}\\n{FORGED}")
    assert lines[1].endswith(f"…(+{10_000 + len(MASK) + len('rejected: ') - MAX_MESSAGE_CHARS} chars)")
    assert KEY[:9] not in stream.getvalue()


# --- end to end: a host that never reads stderr --------------------------------------------------


async def start_server(base_url: str, env_extra: dict[str, str], stderr: int) -> Process:
    env = {"PATH": "/usr/bin:/bin", **server_env(base_url), **env_extra}
    return await anyio.open_process([sys.executable, "-m", "nexor_mcp"], env=env, stderr=stderr)


class Rpc:
    def __init__(self, process: Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.reader = BufferedByteReceiveStream(process.stdout)
        self.next_id = 0

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        await self.process.stdin.send((json.dumps(message) + "\n").encode())
        while True:
            answer: dict[str, Any] = json.loads(await self.reader.receive_until(b"\n", 16 * 1024 * 1024))
            if answer.get("id") == self.next_id:
                return answer

    async def initialize(self) -> None:
        await self.request("initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}
        })
        assert self.process.stdin is not None
        await self.process.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')

    async def get_lead(self) -> dict[str, Any]:
        answer = await self.request("tools/call", {"name": "get_lead", "arguments": {"lead_id": ANA}})
        result: dict[str, Any] = answer["result"]
        assert result["isError"] is False, result
        return result


@pytest.mark.anyio
async def test_a_host_that_never_reads_stderr_still_gets_every_answer_and_a_clean_exit(
    sandbox_server: SandboxServer,
) -> None:
    """At DEBUG each call logs ~0.2 KB (two records); 5,000 calls write ~1 MB, a 64 KiB pipe over 15 times."""
    sandbox_server.api.reset()
    process = await start_server(sandbox_server.base_url, {"NEXOR_LOG_LEVEL": "DEBUG"}, subprocess.PIPE)
    try:
        rpc = Rpc(process)
        with anyio.fail_after(TIMEOUT):
            await rpc.initialize()
            for _ in range(5_000):
                await rpc.get_lead()
        assert sandbox_server.api.requests.total == 5_000
        assert process.stdin is not None
        await process.stdin.aclose()
        with anyio.fail_after(TIMEOUT):  # exit must not wait for the stuck stderr writer
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()


@pytest.mark.anyio
async def test_once_stderr_is_read_again_the_dropped_records_are_reported(sandbox_server: SandboxServer) -> None:
    sandbox_server.api.reset()
    process = await start_server(sandbox_server.base_url, {"NEXOR_LOG_LEVEL": "DEBUG"}, subprocess.PIPE)
    try:
        rpc = Rpc(process)
        with anyio.fail_after(TIMEOUT):
            await rpc.initialize()
            for _ in range(5_000):
                await rpc.get_lead()
        assert process.stderr is not None
        stderr = BufferedByteReceiveStream(process.stderr)
        with anyio.fail_after(TIMEOUT):
            await rpc.get_lead()  # one more record after the host starts reading
            while True:
                line = (await stderr.receive_until(b"\n", 1024 * 1024)).decode()
                if "dropped because stderr was not being read" in line:
                    break
        assert re.search(r"WARNING nexor_mcp\.logs: [1-9]\d* log records were dropped because stderr", line), line
    finally:
        process.kill()
        await process.aclose()


def test_a_forged_or_huge_argument_name_cannot_forge_or_flood_the_log(
    sandbox_server: SandboxServer, tmp_path: Any
) -> None:
    from bench.rpc import RawServer

    env = {"PATH": "/usr/bin:/bin", **server_env(sandbox_server.base_url), "NEXOR_LOG_LEVEL": "DEBUG"}
    log = tmp_path / "stderr.txt"
    with log.open("w") as errlog:
        server = RawServer([sys.executable, "-m", "nexor_mcp"], env, stderr=errlog)
        try:
            server.initialize()
            arguments = {"lead_id": ANA, f"x\n{FORGED}\u2028": 1, "n" * 1_000_000: 2, "echo": TEST_KEY}
            result = server.call_tool("update_lead", arguments)
            assert result["isError"] is True
        finally:
            assert server.close(timeout=TIMEOUT) == 0
    text = log.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines and all(RECORD_START.match(line) or line.startswith(TRACEBACK_PREFIX) for line in lines)
    assert not any("FORGED" in line and "rejected" not in line for line in lines)
    assert all(len(line) < MAX_MESSAGE_CHARS + 200 for line in lines)
    assert TEST_KEY not in text


def test_a_formatter_failure_is_noted_in_the_log_not_written_to_stderr_directly(
    blocked: tuple[BlockedWriter, LogPipeline, logging.Logger], capsys: pytest.CaptureFixture[str]
) -> None:
    writer, pipeline, logger = blocked

    class Broken(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise RuntimeError("formatter bug")

    pipeline.handler.setFormatter(Broken())
    logger.info("anything")
    writer.release()
    pipeline.stop(timeout=TIMEOUT)
    assert [line.split(" ", 2)[2] for line in writer.lines] == [
        "ERROR nexor_mcp.logs: a log record from nexor_mcp.test_logging.queue could not be formatted (RuntimeError)"
    ]
    assert capsys.readouterr().err == ""

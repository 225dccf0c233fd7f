"""End to end over stdio: shutdown with calls in flight (stdin EOF, SIGTERM), the inherited
descriptors left as they were, /dev/null stdin, message framing (lone \\r, oversize lines) and a
JSON-RPC answer to every malformed request."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

import anyio
import pytest

from bench.rpc import PROTOCOL_VERSION
from nexor_mcp.sandbox import Fault, SandboxApi, SandboxServer
from tests.conftest import ANA, JOHN, child_log, read_log, server_env

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes, signals and fcntl")

SECRET_MARKER = "SHOULD-NOT-BE-LOGGED-7f3a"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def call(request_id: int | str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


class Wire:
    """A `python -m nexor_mcp` process driven with exact bytes; every read has a deadline."""

    def __init__(self, base_url: str, stderr: IO[Any], **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nexor_mcp"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **server_env(base_url), **env},
        )
        self._buffer = b""

    def send(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    def read_message(self, timeout: float = 20.0) -> dict[str, Any]:
        """The next line on stdout, parsed; fails the test instead of hanging."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no answer from the server in time"
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 65536)
                assert chunk, f"server closed stdout (exit code {self.process.poll()})"
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def initialize(self) -> None:
        self.send(line(INITIALIZE) + line(INITIALIZED))
        assert self.read_message()["id"] == 1

    def rest_of_stdout(self, timeout: float = 20.0) -> bytes:
        """Everything up to EOF on stdout, then the exit code is known."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        data = self._buffer
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "the server did not close stdout in time"
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return data
                data += chunk

    def finish(self) -> int:
        """Close stdin and wait for a clean exit: the log is complete only then."""
        self.close_stdin()
        assert self.rest_of_stdout() == b""
        return self.wait()

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()


@pytest.fixture
def stderr() -> Iterator[IO[str]]:
    with child_log() as file:
        yield file


def log_of(stderr: IO[str]) -> str:
    return read_log(stderr)


def messages(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in data.splitlines()]


def wait_for_requests(api: SandboxApi, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(api.requests) < count:
        assert time.monotonic() < deadline, "the sandbox never saw the request"
        time.sleep(0.01)


# --- 5. shutdown with calls in flight -------------------------------------------------------------


def test_stdin_eof_right_after_a_call_waits_for_it_and_answers(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    """`printf '<initialize>\\n<initialized>\\n<tools/call>\\n' | nexor-mcp`: stdin is closed while
    the PATCH is on its way; the update is made, answered, and the exit code is 0."""
    api.latency = 0.5
    stdin = line(INITIALIZE) + line(INITIALIZED) + line(call(2, "update_lead", {"lead_id": ANA, "title": "EOF"}))
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp"], input=stdin, capture_output=True, timeout=60, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **server_env(sandbox_server.base_url)},
    )
    assert completed.returncode == 0, completed.stderr.decode()
    answers = messages(completed.stdout)
    assert [answer["id"] for answer in answers] == [1, 2]
    assert answers[1]["result"]["isError"] is False
    assert answers[1]["result"]["structuredContent"]["lead"]["title"] == "EOF"
    assert [(r.method, r.path, r.json) for r in api.requests] == [
        ("PATCH", f"/api/public/leads/{ANA}", {"title": "EOF"})
    ]
    assert api.leads[ANA]["title"] == "EOF"


def test_stdin_eof_waits_for_every_call_in_flight(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    api.latency = 0.3
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.initialize()
        wire.send(b"".join(line(call(10 + n, "update_lead", {"lead_id": JOHN, "metadata": {f"k{n}": n}}))
                           for n in range(5)))
        wire.close_stdin()
        answers = messages(wire.rest_of_stdout())
        assert wire.wait() == 0
    finally:
        wire.kill()
    assert sorted(answer["id"] for answer in answers) == [10, 11, 12, 13, 14]
    assert all(answer["result"]["isError"] is False for answer in answers)
    bodies = sorted(json.dumps(r.json) for r in api.requests)
    assert bodies == [json.dumps({"metadata": {f"k{n}": n}}) for n in range(5)]
    assert api.leads[JOHN]["metadata"] == {f"k{n}": n for n in range(5)}
    assert "waiting up to" in log_of(stderr)


def test_sigterm_with_a_call_in_flight_answers_it_then_exits_0(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    api.latency = 1.0
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.initialize()
        wire.send(line(call(2, "update_lead", {"lead_id": ANA, "title": "TERM"})))
        wait_for_requests(api, 1)  # the PATCH is at the API, its answer 1 s away
        wire.process.send_signal(signal.SIGTERM)
        answers = messages(wire.rest_of_stdout())
        assert wire.wait() == 0
    finally:
        wire.kill()
    assert [answer["id"] for answer in answers] == [2]
    assert answers[0]["result"]["isError"] is False
    assert answers[0]["result"]["structuredContent"]["lead"]["title"] == "TERM"
    assert [r.json for r in api.requests] == [{"title": "TERM"}]
    assert "SIGTERM received" in log_of(stderr)


def test_a_second_sigterm_ends_the_drain_and_the_host_still_gets_an_answer(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    """A call still running when a second SIGTERM arrives is cancelled with an error answer, never
    silence (the first SIGTERM waits for the call's deadline, 50 s here)."""
    api.inject(Fault(200, {"success": True, "lead": {"id": ANA}}, delay=30.0))
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.initialize()
        wire.send(line(call(2, "update_lead", {"lead_id": ANA, "title": "slow"})))
        wait_for_requests(api, 1)
        wire.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while "SIGTERM received" not in log_of(stderr):
            assert time.monotonic() < deadline, "the server never logged the first SIGTERM"
            time.sleep(0.01)
        wire.process.send_signal(signal.SIGTERM)
        answers = messages(wire.rest_of_stdout())
        assert wire.wait() == 0
    finally:
        wire.kill()
    assert [(answer["id"], answer["error"]["message"]) for answer in answers] == [(2, "Connection closed")]
    assert "gave up waiting for 1 call(s) in flight (ids 2)" in log_of(stderr)


# --- 6. the inherited descriptors and odd stdin ---------------------------------------------------


def test_dev_null_stdin_exits_0_at_once(sandbox_server: SandboxServer) -> None:
    """`docker run` without -i, systemd StandardInput=null: epoll refuses /dev/null."""
    completed = subprocess.run(
        [sys.executable, "-m", "nexor_mcp"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **server_env(sandbox_server.base_url)},
    )
    assert completed.returncode == 0, completed.stderr.decode()
    assert completed.stdout == b""


def test_a_regular_file_as_stdin_is_served(sandbox_server: SandboxServer, api: SandboxApi) -> None:
    with tempfile.TemporaryFile() as requests:
        requests.write(line(INITIALIZE) + line(INITIALIZED) + line(call(2, "get_lead", {"lead_id": JOHN})))
        requests.seek(0)
        completed = subprocess.run(
            [sys.executable, "-m", "nexor_mcp"], stdin=requests, capture_output=True, timeout=30, check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **server_env(sandbox_server.base_url)},
        )
    assert completed.returncode == 0, completed.stderr.decode()
    answers = messages(completed.stdout)
    assert [answer["id"] for answer in answers] == [1, 2]
    assert answers[1]["result"]["structuredContent"]["lead"]["id"] == JOHN


@pytest.mark.parametrize("ending", ["eof", "sigterm"])
@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_stdin_and_stdout_stay_blocking_for_the_parent(sandbox_server: SandboxServer, kind: str, ending: str) -> None:
    """O_NONBLOCK belongs to the open file description, which the parent shell shares: were it
    set, `nexor-mcp; cat` would fail with EAGAIN. Checked on the parent's own copies of the
    server's stdin and stdout, while serving and after exit. Sockets are what Node-based hosts
    (libuv) hand their children."""
    if kind == "pipe":
        child_in, parent_in = os.pipe()
        parent_out, child_out = os.pipe()
        sockets: list[socket.socket] = []
    else:
        sockets = [*socket.socketpair(), *socket.socketpair()]
        child_in, parent_in, parent_out, child_out = (sock.fileno() for sock in sockets)
    process = subprocess.Popen(
        [sys.executable, "-m", "nexor_mcp"], stdin=child_in, stdout=child_out, stderr=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **server_env(sandbox_server.base_url)},
    )
    try:
        os.write(parent_in, line(INITIALIZE) + line(INITIALIZED) + line(call(2, "get_lead", {"lead_id": JOHN})))
        deadline = time.monotonic() + 20
        received = b""
        while received.count(b"\n") < 2:
            assert select.select([parent_out], [], [], max(deadline - time.monotonic(), 0))[0], "no answer"
            received += os.read(parent_out, 65536)
        assert [answer["id"] for answer in messages(received)] == [1, 2]
        assert os.get_blocking(child_in) and os.get_blocking(child_out)  # while serving
        if ending == "sigterm":
            process.send_signal(signal.SIGTERM)
        elif kind == "socket":
            sockets[1].shutdown(socket.SHUT_WR)
        else:
            os.close(parent_in)
        assert process.wait(timeout=20) == 0
        assert os.get_blocking(child_in) and os.get_blocking(child_out)  # after exit
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for sock in sockets:
            sock.close()
        if kind == "pipe":
            for fd in (child_in, parent_in, parent_out, child_out):
                with contextlib.suppress(OSError):
                    os.close(fd)


# --- 6. framing ------------------------------------------------------------------------------------


def test_lone_cr_crlf_and_lf_all_separate_messages(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.initialize()
        first = json.dumps(call(2, "update_lead", {"lead_id": ANA, "title": "cr"})).encode()
        second = json.dumps(call(3, "update_lead", {"lead_id": JOHN, "title": "crlf"})).encode()
        third = json.dumps(call(4, "get_lead", {"lead_id": ANA})).encode()
        wire.send(first + b"\r" + second + b"\r\n" + third + b"\r")
        answers = {answer["id"]: answer for answer in (wire.read_message() for _ in range(3))}
    finally:
        wire.kill()
    assert sorted(answers) == [2, 3, 4]
    assert all(answer["result"]["isError"] is False for answer in answers.values())
    assert sorted(json.dumps(r.json) for r in api.requests if r.method == "PATCH") == [
        json.dumps({"title": "cr"}), json.dumps({"title": "crlf"})
    ]


def test_a_line_over_the_limit_is_answered_and_the_session_goes_on(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    wire = Wire(sandbox_server.base_url, stderr, NEXOR_MCP_MAX_LINE_BYTES="2000")
    try:
        wire.initialize()
        big = call(2, "update_lead", {"lead_id": ANA, "metadata": {"blob": SECRET_MARKER * 400}})
        wire.send(line(big)[:3000])  # more than the limit, then the rest in a second write
        wire.send(line(big)[3000:])
        refused = wire.read_message()
        wire.send(line(call(3, "update_lead", {"lead_id": ANA, "metadata": {"small": "x" * 1500}})))
        accepted = wire.read_message()
        assert wire.finish() == 0
    finally:
        wire.kill()
    assert refused == {
        "jsonrpc": "2.0", "id": None,
        "error": {"code": -32600, "message": "Invalid Request: the message is larger than the 2000-byte limit; "
                  "it was skipped"},
    }
    assert accepted["id"] == 3 and accepted["result"]["isError"] is False
    assert [r.json for r in api.requests] == [{"metadata": {"small": "x" * 1500}}]
    log = log_of(stderr)
    assert log.count("WARNING nexor_mcp.stdio") == 1
    assert SECRET_MARKER not in log


# --- 7. malformed input gets a JSON-RPC answer ----------------------------------------------------

BAD_REQUESTS: list[tuple[bytes, int, int | str | None, str]] = [
    (f"not json {SECRET_MARKER}".encode(), -32700, None, "Parse error: the line is not valid JSON"),
    (b'{"jsonrpc": "2.0", "id": 5, "method": "ping"', -32700, None, "Parse error: the line is not valid JSON"),
    (b"\xff\xfe{}", -32700, None, "Parse error: the line is not valid JSON"),
    (b"[" * 100_000, -32700, None, "Parse error: the line is not valid JSON"),
    (b"[]", -32600, None, "Invalid Request: batches (JSON arrays) are not supported"),
    (b'[{"jsonrpc": "2.0", "id": 6, "method": "ping"}]', -32600, None,
     "Invalid Request: batches (JSON arrays) are not supported"),
    (b"42", -32600, None, "Invalid Request: not a JSON object"),
    (b'"ping"', -32600, None, "Invalid Request: not a JSON object"),
    (b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}', -32600, None,
     "Invalid Request: id must be a string or an integer"),
    (b'{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', -32600, None,
     "Invalid Request: id must be a string or an integer"),
    (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', -32600, None,
     "Invalid Request: id must be a string or an integer"),
    (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', -32600, None,
     "Invalid Request: id must be a string or an integer"),
    (b'{"jsonrpc": "2.0", "id": [7], "method": "ping"}', -32600, None,
     "Invalid Request: id must be a string or an integer"),
    (b'{"jsonrpc": "2.0"}', -32600, None, "Invalid Request: id must be a string or an integer"),
    (b'{"jsonrpc": "2.0", "id": 8}', -32600, 8, "Invalid Request: no method, result or error"),
    (b'{"jsonrpc": "1.0", "id": 9, "method": "ping"}', -32600, 9, 'Invalid Request: "jsonrpc" must be "2.0"'),
    (b'{"id": 10, "method": "ping"}', -32600, 10, 'Invalid Request: "jsonrpc" must be "2.0"'),
    (b'{"jsonrpc": "2.0", "id": "s11", "method": 5}', -32600, "s11", 'Invalid Request: "method" must be a string'),
    (b'{"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": "x"}', -32600, 12,
     'Invalid Request: "params" must be an object'),
    (b'{"jsonrpc": "2.0", "id": 13, "method": "tools/list", "params": [1]}', -32600, 13,
     'Invalid Request: "params" must be an object'),
]


def test_every_malformed_request_gets_the_json_rpc_error_and_the_session_keeps_working(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.initialize()
        answers = []
        for raw, _, _, _ in BAD_REQUESTS:
            wire.send(raw + b"\n")
            answers.append(wire.read_message())
        wire.send(line(call(99, "update_lead", {"lead_id": ANA, "title": "after garbage"})))
        after = wire.read_message()
        assert wire.finish() == 0
    finally:
        wire.kill()
    assert [(a["id"], a["error"]["code"], a["error"]["message"]) for a in answers] == [
        (request_id, code, message) for _, code, request_id, message in BAD_REQUESTS
    ]
    assert all(set(a) == {"jsonrpc", "id", "error"} and a["jsonrpc"] == "2.0" for a in answers)
    assert after["id"] == 99 and after["result"]["isError"] is False
    assert [r.json for r in api.requests] == [{"title": "after garbage"}]
    log = log_of(stderr)
    assert log.count("WARNING nexor_mcp.stdio") == len(BAD_REQUESTS)
    assert SECRET_MARKER not in log


def test_malformed_notifications_get_only_a_warning_and_blank_lines_nothing(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.initialize()
        wire.send(
            b'{"jsonrpc": "2.0", "method": 5}\n'
            b'{"jsonrpc": "1.0", "method": "notifications/cancelled"}\n'
            b'{"jsonrpc": "2.0", "method": "notifications/progress", "params": 3}\n'
            b'{"jsonrpc": "2.0", "id": 77, "result": 1, "error": 2}\n'
            b"\n   \n\t\n\r\n"
        )
        wire.send(line({"jsonrpc": "2.0", "id": 20, "method": "ping"}))
        first = wire.read_message()  # had any of the above been answered, it would come first
        assert wire.finish() == 0
    finally:
        wire.kill()
    assert first == {"jsonrpc": "2.0", "id": 20, "result": {}}
    log = log_of(stderr)
    assert log.count("WARNING nexor_mcp.stdio: ignored a malformed notification") == 3
    assert log.count("WARNING nexor_mcp.stdio: ignored a malformed response") == 1
    assert log.count("WARNING") == 4


def test_a_request_before_initialize_is_told_to_initialize_first(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        wire.send(line(call(2, "update_lead", {"lead_id": ANA, "title": "too early"})))
        early_call = wire.read_message()
        wire.send(line({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}))
        early_list = wire.read_message()
        wire.send(line({"jsonrpc": "2.0", "id": 4, "method": "no/such/method"}))
        unknown = wire.read_message()
        wire.send(line({"jsonrpc": "2.0", "id": 5, "method": "ping"}))
        ping = wire.read_message()
        wire.initialize()
        wire.send(line(call(6, "update_lead", {"lead_id": ANA, "title": "in time"})))
        later = wire.read_message()
    finally:
        wire.kill()
    not_initialized = {"code": -32600, "message": "the session is not initialized: send initialize first"}
    assert early_call == {"jsonrpc": "2.0", "id": 2, "error": not_initialized}
    assert early_list == {"jsonrpc": "2.0", "id": 3, "error": not_initialized}
    assert unknown["id"] == 4 and unknown["error"]["code"] == -32601  # unknown stays "method not found"
    assert ping == {"jsonrpc": "2.0", "id": 5, "result": {}}
    assert later["id"] == 6 and later["result"]["isError"] is False
    assert [r.json for r in api.requests] == [{"title": "in time"}]


def test_pipelined_initialize_then_a_bad_call_is_not_called_uninitialized(
    sandbox_server: SandboxServer, api: SandboxApi, stderr: IO[str]
) -> None:
    """Requests written right behind `initialize` are served after it, so a bad-params error for
    them is the SDK's own -32602, not the not-initialized answer."""
    wire = Wire(sandbox_server.base_url, stderr)
    try:
        bad = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": 5}}
        wire.send(line(INITIALIZE) + line(INITIALIZED) + line(bad))
        answers = {answer["id"]: answer for answer in (wire.read_message(), wire.read_message())}
    finally:
        wire.kill()
    assert "result" in answers[1]
    assert answers[2]["error"]["code"] == -32602


# --- the writer -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_answer_pydantic_cannot_encode_still_goes_out_as_valid_utf8() -> None:
    """A lone surrogate makes pydantic's JSON encoder raise; a process cannot show it because the
    client cleans them from Nexor's answers, so this drives the transport's writer into a pipe."""
    from mcp.shared.message import SessionMessage
    from mcp_types import JSONRPCResponse

    from nexor_mcp.stdio.fds import LoopWriter, ThreadReader
    from nexor_mcp.stdio.transport import Outbound, StdioTransport

    read_end, write_end = os.pipe()
    try:
        transport = StdioTransport(ThreadReader(read_end), LoopWriter(write_end), drain_seconds=1.0)
        send, receive = anyio.create_memory_object_stream[Outbound](2)
        with anyio.fail_after(5):
            async with send:
                await send.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=7, result={"text": "a\ud800b"})))
                await send.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=8, result={"text": "fine"})))
            await transport.write_loop(receive)
        data = os.read(read_end, 65536)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert [json.loads(raw.decode("utf-8")) for raw in data.splitlines()] == [
        {"jsonrpc": "2.0", "id": 7, "result": {"text": "a?b"}},
        {"jsonrpc": "2.0", "id": 8, "result": {"text": "fine"}},
    ]


@pytest.mark.anyio
async def test_the_poll_path_moves_more_than_a_pipe_holds_without_touching_the_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where a pipe cannot be reopened privately (macOS, no /proc), the transport polls and then
    reads, or writes at most PIPE_BUF bytes; on Linux a process never takes this path, so it is
    driven directly: 300 KB each way through 64 KB pipes, with the other end slow."""
    import threading

    from nexor_mcp.stdio import fds

    monkeypatch.setattr(fds, "private_nonblocking_reopen", lambda fd, mode: None)
    payload = bytes(range(256)) * 1200
    to_server_read, to_server_write = os.pipe()
    from_server_read, from_server_write = os.pipe()
    drained: list[bytes] = []

    def host() -> None:
        for start in range(0, len(payload), 50_000):  # feeds in bursts, drains slowly
            os.write(to_server_write, payload[start : start + 50_000])
        os.close(to_server_write)
        while chunk := os.read(from_server_read, 7000):
            drained.append(chunk)
            time.sleep(0.001)

    thread = threading.Thread(target=host, daemon=True)
    thread.start()
    reader, writer = fds.LoopReader(to_server_read), fds.LoopWriter(from_server_write)
    try:
        assert reader.channel.describe() == writer.channel.describe() == "poll, then a bounded call"
        received = b""
        with anyio.fail_after(20):
            while chunk := await reader.read():
                received += chunk
            await writer.write(received)
        assert os.get_blocking(to_server_read) and os.get_blocking(from_server_write)
        os.close(from_server_write)
        thread.join(timeout=20)
        assert received == payload
        assert b"".join(drained) == payload
    finally:
        reader.close()
        writer.close()
        for fd in (to_server_read, from_server_read):
            os.close(fd)

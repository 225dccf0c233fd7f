"""The stdio transport: newline-delimited JSON-RPC on stdin/stdout, with no worker-thread hop per
message and no change to the inherited descriptors' flags.

Why not the SDK's `stdio_server()`: it runs every readline, write and flush in a worker thread
(three hops per call, serialised under load), ends the session at stdin EOF by cancelling the calls
in flight, and answers nothing to a line it cannot parse. Here:

- Stdin and stdout are used by the event loop when its selector accepts them (pipe, socket, tty),
  else by a worker thread (a regular file, /dev/null, Windows). O_NONBLOCK is never set on them:
  it belongs to the open file description, which the parent shell shares, so it would outlive
  this process (see `_Channel` for how the loop avoids blocking without it).
- `\\r`, `\\n` and `\\r\\n` all end a message (as in the SDK, whose text layer uses universal
  newlines); blank lines are skipped.
- A line that is not JSON gets -32700, anything else that is not a valid request gets -32600 (id
  null when the id cannot be trusted), a line over the size limit gets -32600 and is skipped; each
  logs one WARNING without the content. A malformed notification or response is only logged.
- A request sent before `initialize` is answered "the session is not initialized" instead of the
  SDK's bare -32602.
- At stdin EOF, or SIGTERM, reading stops but the session stays open until every request read has
  been answered (bounded by the calls' deadline), so a write already sent to Nexor is never
  abandoned by our shutdown; the server is told that input ended (`on_input_end`), since a call
  waiting for the client's answer (a person's confirmation) can no longer get one. A second SIGTERM
  stops waiting at once.
- Like the SDK, fd 1 points at stderr and fd 0 at /dev/null while serving, so a stray print or a
  child process can never corrupt the protocol; both are restored on exit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import select
import signal
import socket
import stat
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    PROTOCOL_VERSION_META_KEY,
    JSONRPCError,
    JSONRPCRequest,
    JSONRPCResponse,
    jsonrpc_message_adapter,
)
from pydantic import ValidationError

logger = logging.getLogger(__name__)

MAX_LINE_BYTES_ENV = "NEXOR_MCP_MAX_LINE_BYTES"
"""Tests set it to show the oversize answer without sending 64 MiB."""
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
EXIT_FLUSH_SECONDS = 5.0
"""How long answers still queued at exit may wait for a host that stopped reading stdout."""
NOT_INITIALIZED = "the session is not initialized: send initialize first"

_READ_SIZE = 256 * 1024
_SETTLE_TURNS = 20
"""Event-loop turns given to the session, at end of input, to route the messages already read (an
elicitation answer reaches the waiting call in 3 to 4 with mcp 2.3; each turn costs microseconds)."""
_WRITE_CHUNK = getattr(select, "PIPE_BUF", 512)
_SEPARATOR = re.compile(rb"[\r\n]")
_OVERSIZE = None  # a framer event: a line went over the limit

Outbound = SessionMessage | bytes


def max_line_bytes() -> int:
    raw = os.environ.get(MAX_LINE_BYTES_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_MAX_LINE_BYTES


class Framer:
    """Splits a byte stream into lines at `\\r`, `\\n` or `\\r\\n`; a line over `limit` bytes is
    reported once as None and the rest of it skipped, so it never sits whole in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | None]:
        events: list[bytes | None] = []
        pieces = _SEPARATOR.split(data)
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            complete = index < last
            if self._skipping:
                self._skipping = not complete
                continue
            if len(self._buffer) + len(piece) > self.limit:
                self._buffer.clear()
                events.append(_OVERSIZE)
                self._skipping = not complete
                continue
            if not complete:
                self._buffer += piece
                continue
            line = bytes(self._buffer + piece) if self._buffer else piece
            self._buffer.clear()
            if line.strip():
                events.append(line)
        return events

    def finish(self) -> list[bytes | None]:
        """At EOF a last line without a separator still counts, as in the SDK."""
        line, self._buffer = bytes(self._buffer), bytearray()
        return [line] if line.strip() and not self._skipping else []


def _valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _error_line(request_id: str | int | None, code: int, message: str) -> bytes:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def _request_problem(message: dict[str, Any]) -> str | None:
    if message.get("jsonrpc") != "2.0":
        return '"jsonrpc" must be "2.0"'
    if not isinstance(message.get("method"), str):
        return '"method" must be a string'
    if "params" in message and not isinstance(message["params"], dict):
        return '"params" must be an object'
    return None


# --- the wire: one private duplicate of fd 0 and of fd 1 -----------------------------------------


class _Channel:
    """One end of the wire, used without ever blocking the loop or touching the shared flags.

    Best first: a Linux pipe is reopened through /proc, which makes a new open file description,
    so O_NONBLOCK on it is ours alone; a socket (what Node-based hosts hand their children) takes
    MSG_DONTWAIT per call; anything else (a tty, a pipe elsewhere) reads only after the fd polls
    readable and writes at most PIPE_BUF bytes only after it polls writable, which cannot block.
    """

    def __init__(self, fd: int, *, writing: bool) -> None:
        self.writing = writing
        self._own_fd = _private_nonblocking(fd, os.O_WRONLY if writing else os.O_RDONLY)
        self._socket = None
        if self._own_fd is None and stat.S_ISSOCK(os.fstat(fd).st_mode):
            self._socket = socket.socket(fileno=fd)
        self.fd = fd if self._own_fd is None else self._own_fd
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLOUT if writing else select.POLLIN)

    def describe(self) -> str:
        if self._own_fd is not None:
            return "a private non-blocking reopen of the pipe"
        return "MSG_DONTWAIT on the socket" if self._socket is not None else "poll, then a bounded call"

    def _ready_now(self) -> bool:
        return bool(self._poll.poll(0))

    def try_read(self) -> bytes:
        if self._own_fd is not None:
            return os.read(self.fd, _READ_SIZE)
        if self._socket is not None:
            return self._socket.recv(_READ_SIZE, socket.MSG_DONTWAIT)
        if not self._ready_now():
            raise BlockingIOError
        return os.read(self.fd, _READ_SIZE)

    def try_write(self, data: memoryview) -> int:
        if self._own_fd is not None:
            return os.write(self.fd, data)
        if self._socket is not None:
            return self._socket.send(data, socket.MSG_DONTWAIT)
        if not self._ready_now():
            raise BlockingIOError
        return os.write(self.fd, data[:_WRITE_CHUNK])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.detach()  # the fd is the wire duplicate, closed by its owner
        if self._own_fd is not None:
            os.close(self._own_fd)


def _private_nonblocking(fd: int, mode: int) -> int | None:
    if not sys.platform.startswith("linux") or not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return None
    try:
        return os.open(f"/proc/self/fd/{fd}", mode | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no /proc, no permission, or no reader left on the pipe
        return None


class _LoopReader:
    def __init__(self, fd: int) -> None:
        self.channel = _Channel(fd, writing=False)

    async def read(self) -> bytes:
        while True:
            try:
                return self.channel.try_read()
            except BlockingIOError:
                await _ready(self.channel.fd, writing=False)

    def close(self) -> None:
        self.channel.close()


class _LoopWriter:
    """When the pipe is full, waits for room without blocking the loop, so stdin keeps being read
    and host and server never deadlock."""

    def __init__(self, fd: int) -> None:
        self.channel = _Channel(fd, writing=True)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.channel.try_write(view) :]
            except BlockingIOError:
                await _ready(self.channel.fd, writing=True)

    def close(self) -> None:
        self.channel.close()


async def _ready(fd: int, *, writing: bool) -> None:
    """Wait, on the loop's selector, until fd polls readable (or writable)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    (loop.add_writer if writing else loop.add_reader)(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)


class _ThreadReader:
    """For what the selector refuses (regular files, /dev/null, Windows pipes): one worker-thread
    hop per chunk read, abandoned if it is still blocked at exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def read(self) -> bytes:
        return await anyio.to_thread.run_sync(os.read, self.fd, _READ_SIZE, abandon_on_cancel=True)

    def close(self) -> None:
        return None


class _ThreadWriter:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await anyio.to_thread.run_sync(os.write, self.fd, view) :]

    def close(self) -> None:
        return None


def _loop_can_poll(fd: int, add: str, remove: str) -> bool:
    """Pipes, sockets and ttys, if the loop's selector accepts them (epoll refuses /dev/null and
    regular files)."""
    if sys.platform == "win32":
        return False
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))):
        return False
    loop = asyncio.get_running_loop()
    try:
        getattr(loop, add)(fd, lambda: None)
    except (OSError, ValueError, NotImplementedError):
        return False
    getattr(loop, remove)(fd)
    return True


def _private_duplicate(fd: int) -> int:
    if sys.platform == "win32":
        return os.dup(fd)
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _point(fd: int, target: int) -> None:
    os.dup2(target, fd)
    if sys.platform == "win32":
        from mcp.os.win32.utilities import rebind_std_handle_to_fd

        with suppress(OSError):
            rebind_std_handle_to_fd(fd)


@asynccontextmanager
async def _claimed_stdio() -> AsyncIterator[tuple[int, int]]:
    """Private duplicates of fd 0 and fd 1; meanwhile fd 0 reads /dev/null and fd 1 is stderr."""
    if sys.stdout is not None:
        sys.stdout.flush()
    wire_in, wire_out = _private_duplicate(0), _private_duplicate(1)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    try:
        _point(1, 2)
        _point(0, null_fd)
    finally:
        os.close(null_fd)
    try:
        yield wire_in, wire_out
    finally:
        _point(1, wire_out)
        _point(0, wire_in)
        os.close(wire_out)
        # wire_in stays open: a worker thread may still be blocked reading it, and a recycled fd
        # number would hand it someone else's data. The process is ending anyway.


# --- the session bookkeeping ----------------------------------------------------------------------


class StdioTransport:
    """Frames and checks inbound lines, serialises outbound messages, and knows which requests
    are still unanswered, so that EOF can wait for them."""

    def __init__(
        self,
        reader: _LoopReader | _ThreadReader,
        writer: _LoopWriter | _ThreadWriter,
        drain_seconds: float,
        on_input_end: Callable[[], None] = lambda: None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._drain_seconds = drain_seconds
        self._on_input_end = on_input_end
        self._framer = Framer(max_line_bytes())
        self._unanswered: Counter[str | int] = Counter()
        self._maybe_gated: set[str | int] = set()  # read before initialize, without a 2026 envelope
        self._initialize_ids: set[str | int] = set()
        self._initialized = False
        self._read_scope = anyio.CancelScope()
        self._drain_scope: anyio.CancelScope | None = None
        self._draining = False
        self._all_answered = anyio.Event()
        self._terminated = 0
        self._broken_wire = False

    # inbound

    async def read_loop(
        self, to_session: MemoryObjectSendStream[SessionMessage | Exception], to_wire: MemoryObjectSendStream[Outbound]
    ) -> None:
        async with to_session, to_wire:
            try:
                with self._read_scope:
                    while chunk := await self._reader.read():
                        for event in self._framer.feed(chunk):
                            await self._take(event, to_session, to_wire)
                    for event in self._framer.finish():
                        await self._take(event, to_session, to_wire)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the session ended first
            except OSError as exc:
                logger.warning("reading stdin failed (%s); treating it as end of input", exc.strerror or exc)
            await self._drain()

    async def _drain(self) -> None:
        """Keep the session open until every request read has its answer, within the bound (the
        same after EOF and SIGTERM: what matters is the calls' deadline, not how input ended)."""
        self._draining = True
        # Let the session take in what was read last (a person's yes just before EOF must count)
        # before the calls still waiting for an answer are told that none can come.
        for _ in range(_SETTLE_TURNS):
            await anyio.lowlevel.checkpoint()
        self._on_input_end()
        if not self._unanswered:
            return
        bound = 0 if self._terminated > 1 else self._drain_seconds
        count = sum(self._unanswered.values())
        logger.info("input ended; waiting up to %g s for %d call(s) in flight", bound, count)
        with anyio.CancelScope(deadline=anyio.current_time() + bound) as scope:
            self._drain_scope = scope
            await self._all_answered.wait()
        if scope.cancel_called and self._unanswered:
            logger.warning(
                "gave up waiting for %d call(s) in flight (ids %s); they are cancelled now",
                sum(self._unanswered.values()), ", ".join(map(repr, self._unanswered)),
            )

    def terminate(self) -> None:
        """SIGTERM: stop reading and drain as at EOF; a second SIGTERM ends the drain at once."""
        self._terminated += 1
        if self._terminated == 1:
            logger.info("SIGTERM received: finishing the calls in flight, then exiting (a second one exits at once)")
        else:
            logger.info("second SIGTERM received: not waiting for the calls in flight")
        self._read_scope.cancel()
        if self._terminated > 1 and self._drain_scope is not None:
            self._drain_scope.cancel()

    def stop_reading(self) -> None:
        """The session ended on its own: nothing more will be read or awaited."""
        self._read_scope.cancel()
        if self._drain_scope is not None:
            self._drain_scope.cancel()

    async def _take(
        self,
        line: bytes | None,
        to_session: MemoryObjectSendStream[SessionMessage | Exception],
        to_wire: MemoryObjectSendStream[Outbound],
    ) -> None:
        if line is None:
            limit = self._framer.limit
            logger.warning("answered -32600 to a line over the %d-byte limit; skipped it", limit)
            text = f"Invalid Request: the message is larger than the {limit}-byte limit; it was skipped"
            return await to_wire.send(_error_line(None, INVALID_REQUEST, text))
        try:
            raw = json.loads(line)
        except (ValueError, RecursionError):
            return await self._refuse(to_wire, line, None, PARSE_ERROR, "Parse error: the line is not valid JSON")
        if not isinstance(raw, dict):
            what = "batches (JSON arrays) are not supported" if isinstance(raw, list) else "not a JSON object"
            return await self._refuse(to_wire, line, None, INVALID_REQUEST, what)
        if "method" not in raw and ("result" in raw or "error" in raw):
            kind = "response"
        elif "method" in raw and "id" not in raw:
            kind = "notification"
        else:
            kind = "request"
            request_id = raw.get("id")
            if not _valid_id(request_id):
                return await self._refuse(to_wire, line, None, INVALID_REQUEST, "id must be a string or an integer")
            if "method" not in raw:
                return await self._refuse(to_wire, line, request_id, INVALID_REQUEST, "no method, result or error")
        problem: str | None = _request_problem(raw) if kind != "response" else None
        message = None
        if problem is None:
            try:
                message = jsonrpc_message_adapter.validate_python(raw, by_name=False)
            except ValidationError:
                problem = "not a valid JSON-RPC 2.0 message"
        if message is None:
            if kind == "request":
                return await self._refuse(to_wire, line, raw["id"], INVALID_REQUEST, problem or "")
            # Nobody waits for an answer to these, and answering a response could start a loop.
            logger.warning("ignored a malformed %s (%d bytes): %s", kind, len(line), problem)
            return None
        method = raw.get("method")
        if isinstance(message, JSONRPCRequest):
            self._unanswered[message.id] += 1
            if method == "initialize":
                self._initialize_ids.add(message.id)
            elif not self._initialized and not _has_modern_envelope(raw.get("params")):
                self._maybe_gated.add(message.id)
        elif method == "notifications/cancelled":
            self._forget((raw.get("params") or {}).get("requestId"))
        await to_session.send(SessionMessage(message))
        return None

    async def _refuse(
        self, to_wire: MemoryObjectSendStream[Outbound], line: bytes, request_id: str | int | None, code: int,
        problem: str,
    ) -> None:
        """Answer a bad request at once, so the host does not wait for its own timeout."""
        logger.warning("answered %d to a bad message (%d bytes): %s", code, len(line), problem)
        text = problem if code == PARSE_ERROR else f"Invalid Request: {problem}"
        await to_wire.send(_error_line(request_id, code, text))

    def _forget(self, request_id: object) -> None:
        """A cancelled request is never answered (the spec forbids it), so it is not waited for."""
        if (isinstance(request_id, str | int)) and request_id in self._unanswered:
            del self._unanswered[request_id]
            self._settled()

    def _settled(self) -> None:
        if self._draining and not self._unanswered:
            self._all_answered.set()

    # outbound

    async def write_loop(self, from_session: MemoryObjectReceiveStream[Outbound]) -> None:
        async with from_session:
            async for item in from_session:
                data, answered = self._encode(item) if isinstance(item, SessionMessage) else (item, None)
                if data and not self._broken_wire:
                    try:
                        await self._writer.write(data)
                    except OSError as exc:
                        self._broken_wire = True
                        logger.warning("stdout is closed (%s); answers from now on are dropped", exc.strerror or exc)
                        self._read_scope.cancel()
                if answered is not None and answered in self._unanswered:
                    self._unanswered[answered] -= 1
                    if self._unanswered[answered] <= 0:
                        del self._unanswered[answered]
                    self._settled()

    def _encode(self, item: SessionMessage) -> tuple[bytes, str | int | None]:
        message = item.message
        answered: str | int | None = None
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            answered = message.id
            if isinstance(message, JSONRPCResponse) and answered in self._initialize_ids:
                self._initialized = True
            elif (
                isinstance(message, JSONRPCError)
                and answered in self._maybe_gated
                and not self._initialized
                and message.error.code == INVALID_PARAMS
                and message.error.message == "Invalid request parameters"
            ):
                return _error_line(answered, INVALID_REQUEST, NOT_INITIALIZED), answered
            self._maybe_gated.discard(answered)
            self._initialize_ids.discard(answered)
        try:
            text = message.model_dump_json(by_alias=True, exclude_unset=True)
        except Exception:  # one message must never end the session
            try:
                # pydantic refuses a str that is not valid UTF-8 (a lone surrogate); json does not.
                dumped = message.model_dump(mode="json", by_alias=True, exclude_unset=True)
                text = json.dumps(dumped, ensure_ascii=False, separators=(",", ":"))
            except Exception:
                logger.exception("could not serialise an outgoing message")
                if answered is None:
                    return b"", None
                return _error_line(answered, INTERNAL_ERROR, "the answer could not be serialised"), answered
        # A lone surrogate goes out as "?": the wire carries valid UTF-8 whatever the text held.
        return (text + "\n").encode("utf-8", errors="replace"), answered


def _has_modern_envelope(params: object) -> bool:
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta


@asynccontextmanager
async def serve_streams(
    drain_seconds: float, on_input_end: Callable[[], None] = lambda: None
) -> AsyncIterator[tuple[Any, Any]]:
    """The (read, write) message streams of this process's stdio.

    At stdin EOF or SIGTERM, `on_input_end` is called and the read stream stays open until every
    request read has been answered, for at most `drain_seconds`; a second SIGTERM ends that wait.
    """
    async with _claimed_stdio() as (wire_in, wire_out):
        in_loop = _loop_can_poll(wire_in, "add_reader", "remove_reader")
        out_loop = _loop_can_poll(wire_out, "add_writer", "remove_writer")
        reader = _LoopReader(wire_in) if in_loop else _ThreadReader(wire_in)
        writer = _LoopWriter(wire_out) if out_loop else _ThreadWriter(wire_out)
        logger.debug(
            "stdin: %s; stdout: %s",
            reader.channel.describe() if isinstance(reader, _LoopReader) else "a worker thread",
            writer.channel.describe() if isinstance(writer, _LoopWriter) else "a worker thread",
        )
        transport = StdioTransport(reader, writer, drain_seconds, on_input_end)
        to_session, session_reads = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        to_wire, wire_queue = anyio.create_memory_object_stream[Outbound](64)
        remove_handler = _on_sigterm(transport.terminate)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(transport.read_loop, to_session, to_wire.clone())
                group.start_soon(transport.write_loop, wire_queue)
                try:
                    yield session_reads, to_wire
                finally:
                    transport.stop_reading()
                    await to_wire.aclose()
                    group.cancel_scope.deadline = anyio.current_time() + EXIT_FLUSH_SECONDS
        finally:
            remove_handler()
            reader.close()
            writer.close()


def _on_sigterm(handler: Callable[[], None]) -> Callable[[], None]:
    if sys.platform == "win32":
        return lambda: None
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, handler)
    except (RuntimeError, ValueError):  # not the main thread
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGTERM)

    return remove

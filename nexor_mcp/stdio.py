"""A stdio transport without a worker-thread hop per message.

The SDK's `stdio_server()` reads and writes through `anyio.wrap_file`, which runs every readline,
write and flush in a worker thread: three thread hops per tool call, serialised under load. Here
stdin is read by the event loop itself (a pipe reader) and each message is one `os.write` to the
wire. Like the SDK, fd 1 is pointed at stderr and fd 0 at /dev/null while serving, so a stray
print or a child process can never corrupt the protocol. Where a pipe reader is not possible
(Windows, stdin that is a regular file), the SDK's own transport is used.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mcp.server.stdio import stdio_server


class _PipeLines:
    """Async iterator of text lines from a pipe, read by the event loop (no threads)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _PipeLines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readline()
        except ValueError:  # a line over the reader's limit: report it as a bad message, keep serving
            return "\n"
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


class _WireWriter:
    """Writes each message to the (non-blocking) wire fd; when the pipe is full, waits for room
    without blocking the loop, so stdin keeps being read and host and server never deadlock."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        while data:
            try:
                written = os.write(self._fd, data)
            except BlockingIOError:
                await self._writable()
                continue
            data = data[written:]

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(self._fd, ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_writer(self._fd)

    async def flush(self) -> None:
        return None


def _pipe_capable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


@asynccontextmanager
async def _fast_stdio() -> AsyncIterator[Any]:
    saved_stdin, wire_in, wire_out = os.dup(0), os.dup(0), os.dup(1)
    os.set_blocking(wire_out, False)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    sys.stdout.flush()
    os.dup2(2, 1)  # stray output from now on lands on stderr, never on the wire
    os.dup2(null_fd, 0)
    os.close(null_fd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(wire_in, "rb", buffering=0)
    )
    try:
        async with stdio_server(_PipeLines(reader), _WireWriter(wire_out)) as streams:  # type: ignore[arg-type]
            yield streams
    finally:
        transport.close()
        os.set_blocking(wire_out, True)
        os.dup2(wire_out, 1)
        os.dup2(saved_stdin, 0)
        os.close(wire_out)
        os.close(saved_stdin)


def serve_streams() -> AbstractAsyncContextManager[Any]:
    """The (read, write) message streams of this process's stdio, fastest way available."""
    if sys.platform != "win32" and _pipe_capable(0) and _pipe_capable(1):
        return _fast_stdio()
    return stdio_server()

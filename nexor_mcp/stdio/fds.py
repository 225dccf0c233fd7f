"""The wire: a private duplicate of fd 0 and of fd 1, read and written without a worker-thread hop
where the event loop can, and without ever touching the inherited descriptors' flags.

Stdin and stdout are used by the event loop when its selector accepts them (pipe, socket, tty),
else by a worker thread (a regular file, /dev/null, Windows). O_NONBLOCK is never set on them: it
belongs to the open file description, which the parent shell shares, so it would outlive this
process (see `Channel` for how the loop avoids blocking without it).

Like the SDK, fd 1 points at stderr and fd 0 at /dev/null while serving, so a stray print or a
child process can never corrupt the protocol; both are restored on exit.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio

READ_SIZE = 256 * 1024
_WRITE_CHUNK = getattr(select, "PIPE_BUF", 512)


class Channel:
    """One end of the wire, used without ever blocking the loop or touching the shared flags.

    Best first: a Linux pipe is reopened through /proc, which makes a new open file description,
    so O_NONBLOCK on it is ours alone; a socket (what Node-based hosts hand their children) takes
    MSG_DONTWAIT per call; anything else (a tty, a pipe elsewhere) reads only after the fd polls
    readable and writes at most PIPE_BUF bytes only after it polls writable, which cannot block.
    """

    def __init__(self, fd: int, *, writing: bool) -> None:
        self.writing = writing
        self._own_fd = private_nonblocking_reopen(fd, os.O_WRONLY if writing else os.O_RDONLY)
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
            return os.read(self.fd, READ_SIZE)
        if self._socket is not None:
            return self._socket.recv(READ_SIZE, socket.MSG_DONTWAIT)
        if not self._ready_now():
            raise BlockingIOError
        return os.read(self.fd, READ_SIZE)

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


def private_nonblocking_reopen(fd: int, mode: int) -> int | None:
    """A new open file description of a Linux pipe, non-blocking for us alone; None elsewhere."""
    if not sys.platform.startswith("linux") or not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return None
    try:
        return os.open(f"/proc/self/fd/{fd}", mode | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # no /proc, no permission, or no reader left on the pipe
        return None


class LoopReader:
    def __init__(self, fd: int) -> None:
        self.channel = Channel(fd, writing=False)

    async def read(self) -> bytes:
        while True:
            try:
                return self.channel.try_read()
            except BlockingIOError:
                await _until_ready(self.channel.fd, writing=False)

    def close(self) -> None:
        self.channel.close()


class LoopWriter:
    """When the pipe is full, waits for room without blocking the loop, so stdin keeps being read
    and host and server never deadlock."""

    def __init__(self, fd: int) -> None:
        self.channel = Channel(fd, writing=True)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.channel.try_write(view) :]
            except BlockingIOError:
                await _until_ready(self.channel.fd, writing=True)

    def close(self) -> None:
        self.channel.close()


async def _until_ready(fd: int, *, writing: bool) -> None:
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


class ThreadReader:
    """For what the selector refuses (regular files, /dev/null, Windows pipes): one worker-thread
    hop per chunk read, abandoned if it is still blocked at exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def read(self) -> bytes:
        return await anyio.to_thread.run_sync(os.read, self.fd, READ_SIZE, abandon_on_cancel=True)

    def close(self) -> None:
        return None


class ThreadWriter:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await anyio.to_thread.run_sync(os.write, self.fd, view) :]

    def close(self) -> None:
        return None


Reader = LoopReader | ThreadReader
Writer = LoopWriter | ThreadWriter


def wire_ends(wire_in: int, wire_out: int) -> tuple[Reader, Writer]:
    """The best reader and writer each descriptor allows (call inside the running loop)."""
    reader = LoopReader(wire_in) if _loop_can_poll(wire_in, writing=False) else ThreadReader(wire_in)
    writer = LoopWriter(wire_out) if _loop_can_poll(wire_out, writing=True) else ThreadWriter(wire_out)
    return reader, writer


def describe(end: Reader | Writer) -> str:
    return end.channel.describe() if isinstance(end, LoopReader | LoopWriter) else "a worker thread"


def _loop_can_poll(fd: int, *, writing: bool) -> bool:
    """Pipes, sockets and ttys, if the loop's selector accepts them (epoll refuses /dev/null and
    regular files)."""
    if sys.platform == "win32":
        return False
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))):
        return False
    loop = asyncio.get_running_loop()
    add, remove = (loop.add_writer, loop.remove_writer) if writing else (loop.add_reader, loop.remove_reader)
    try:
        add(fd, lambda: None)
    except (OSError, ValueError, NotImplementedError):
        return False
    remove(fd)
    return True


def _private_duplicate(fd: int) -> int:
    if sys.platform == "win32":
        return os.dup(fd)
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _redirect(fd: int, target: int) -> None:
    """Make `fd` refer to what `target` refers to (and, on Windows, the matching std handle)."""
    os.dup2(target, fd)
    if sys.platform == "win32":
        from mcp.os.win32.utilities import rebind_std_handle_to_fd

        with suppress(OSError):
            rebind_std_handle_to_fd(fd)


@asynccontextmanager
async def claimed_stdio() -> AsyncIterator[tuple[int, int]]:
    """Private duplicates of fd 0 and fd 1; meanwhile fd 0 reads /dev/null and fd 1 is stderr."""
    if sys.stdout is not None:
        sys.stdout.flush()
    wire_in, wire_out = _private_duplicate(0), _private_duplicate(1)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    try:
        _redirect(1, 2)
        _redirect(0, null_fd)
    finally:
        os.close(null_fd)
    try:
        yield wire_in, wire_out
    finally:
        _redirect(1, wire_out)
        _redirect(0, wire_in)
        os.close(wire_out)
        # wire_in stays open: a worker thread may still be blocked reading it, and a recycled fd
        # number would hand it someone else's data. The process is ending anyway.

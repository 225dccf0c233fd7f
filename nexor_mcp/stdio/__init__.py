"""The stdio transport: newline-delimited JSON-RPC on stdin/stdout, with no worker-thread hop per
message and no change to the inherited descriptors' flags.

Why not the SDK's `stdio_server()`: it runs every readline, write and flush in a worker thread
(three hops per call, serialised under load), ends the session at stdin EOF by cancelling the calls
in flight, and answers nothing to a line it cannot parse. The rooms, by job:

- `fds`: the wire (private duplicates of fd 0 and fd 1; loop or worker-thread reads and writes).
- `framing`: bytes to lines and messages to lines (`\\r`, `\\n`, `\\r\\n`; oversize lines).
- `checks`: the JSON-RPC checks on each line, and the answer to a request before `initialize`.
- `drain`: the end of input (EOF or SIGTERM) waits for the calls in flight.
- `transport`: the two loops that join them between the wire and the session.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.shared.message import SessionMessage

from nexor_mcp.stdio.drain import on_sigterm
from nexor_mcp.stdio.fds import claimed_stdio, describe, wire_ends
from nexor_mcp.stdio.transport import Outbound, StdioTransport

__all__ = ["serve_streams"]

logger = logging.getLogger(__name__)

EXIT_FLUSH_SECONDS = 5.0
"""How long answers still queued at exit may wait for a host that stopped reading stdout."""


@asynccontextmanager
async def serve_streams(
    drain_seconds: float, on_input_end: Callable[[], None] = lambda: None
) -> AsyncIterator[tuple[Any, Any]]:
    """The (read, write) message streams of this process's stdio.

    At stdin EOF or SIGTERM, `on_input_end` is called and the read stream stays open until every
    request read has been answered, for at most `drain_seconds`; a second SIGTERM ends that wait.
    """
    async with claimed_stdio() as (wire_in, wire_out):
        reader, writer = wire_ends(wire_in, wire_out)
        logger.debug("stdin: %s; stdout: %s", describe(reader), describe(writer))
        transport = StdioTransport(reader, writer, drain_seconds, on_input_end)
        to_session, session_reads = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        to_wire, wire_queue = anyio.create_memory_object_stream[Outbound](64)
        remove_handler = on_sigterm(transport.drain.terminate)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(transport.read_loop, to_session, to_wire.clone())
                group.start_soon(transport.write_loop, wire_queue)
                try:
                    yield session_reads, to_wire
                finally:
                    transport.drain.stop()
                    await to_wire.aclose()
                    group.cancel_scope.deadline = anyio.current_time() + EXIT_FLUSH_SECONDS
        finally:
            remove_handler()
            reader.close()
            writer.close()

"""The two loops between the wire and the session: lines in (framed, checked, counted), messages
out (reworded where the SDK's answer misleads, serialised, counted as answered)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCError, JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from nexor_mcp.stdio.checks import Ignored, InitializeGate, Refusal, check_line, oversize_refusal
from nexor_mcp.stdio.drain import Drain
from nexor_mcp.stdio.fds import Reader, Writer
from nexor_mcp.stdio.framing import OVERSIZE, Framer, Line, encode, max_line_bytes

logger = logging.getLogger(__package__)

Outbound = SessionMessage | bytes
"""What goes out: a message from the session, or a line the transport answers itself."""


class StdioTransport:
    """Frames and checks inbound lines, serialises outbound messages, and tells the drain which
    requests are still unanswered, so that EOF can wait for them."""

    def __init__(
        self, reader: Reader, writer: Writer, drain_seconds: float, on_input_end: Callable[[], None] = lambda: None
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = Framer(max_line_bytes())
        self._gate = InitializeGate()
        self.drain = Drain(drain_seconds, on_input_end)
        self._broken_wire = False

    # inbound

    async def read_loop(
        self, to_session: MemoryObjectSendStream[SessionMessage | Exception], to_wire: MemoryObjectSendStream[Outbound]
    ) -> None:
        async with to_session, to_wire:
            try:
                with self.drain.reading:
                    while chunk := await self._reader.read():
                        for line in self._framer.feed(chunk):
                            await self._route(line, to_session, to_wire)
                    for line in self._framer.finish():
                        await self._route(line, to_session, to_wire)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the session ended first
            except OSError as exc:
                logger.warning("reading stdin failed (%s); treating it as end of input", exc.strerror or exc)
            await self.drain.wait_for_answers()

    async def _route(
        self,
        line: Line,
        to_session: MemoryObjectSendStream[SessionMessage | Exception],
        to_wire: MemoryObjectSendStream[Outbound],
    ) -> None:
        """One line to the session, or its refusal straight to the wire."""
        if line is OVERSIZE:
            limit = self._framer.limit
            logger.warning("answered -32600 to a line over the %d-byte limit; skipped it", limit)
            return await to_wire.send(oversize_refusal(limit).answer())
        verdict = check_line(line)
        if isinstance(verdict, Refusal):
            logger.warning("answered %d to a bad message (%d bytes): %s", verdict.code, len(line), verdict.problem)
            return await to_wire.send(verdict.answer())
        if isinstance(verdict, Ignored):
            logger.warning("ignored a malformed %s (%d bytes): %s", verdict.kind, len(line), verdict.problem)
            return None
        if isinstance(verdict, JSONRPCRequest):
            self.drain.request_read(verdict.id)
            self._gate.request_read(verdict)
        elif isinstance(verdict, JSONRPCNotification) and verdict.method == "notifications/cancelled":
            self.drain.request_cancelled((verdict.params or {}).get("requestId"))
        await to_session.send(SessionMessage(verdict))
        return None

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
                        self.drain.reading.cancel()
                if answered is not None:
                    self.drain.answer_sent(answered)

    def _encode(self, item: SessionMessage) -> tuple[bytes, str | int | None]:
        """The line for `item`, and the id of the request it answers, if any."""
        message = item.message
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id is not None:
            reworded = self._gate.answer_for(message, message.id)
            return (reworded if reworded is not None else encode(item, message.id)), message.id
        return encode(item, None), None

"""The one way this project opens a listening TCP socket (hosted mode and the sandbox)."""

from __future__ import annotations

import socket

BACKLOG = 2048


def listening_socket(host: str, port: int, *, backlog: int = BACKLOG, ipv6: bool = True) -> socket.socket:
    """A bound, listening socket for uvicorn's `sockets=`; port 0 picks a free one (read it back
    with `getsockname()`). `ipv6=False` binds IPv4 only (the sandbox, whose printed URLs have no
    brackets for an IPv6 address).

    Made with IPPROTO_TCP, not 0: with proto 0 asyncio skips TCP_NODELAY on accepted connections,
    and every keep-alive request then waits ~40 ms for a delayed ACK."""
    family = socket.AF_INET6 if ipv6 and ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock

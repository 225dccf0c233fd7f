"""A `Sender` (nexor_mcp.sender) on asyncio streams: a lean HTTP/1.1 keep-alive pool.

`Pool.send` does
only what calls to one JSON API need: one origin, HTTP/1.1, keep-alive, TLS with certificate
verification, an HTTP proxy from the environment, gzip/deflate answers, and a cap on the body it
reads. It never follows a redirect.

Why not httpx2 (which the SDK brings anyway): on the hosted benchmark its request/response model and
httpcore2's pool cost ~0.87 ms of CPU per call, half of the server's whole budget, and httpcore2
walks every pooled connection on each request, so a pool large enough to keep 64 concurrent calls
on reused connections made every call slower. This pool costs ~0.05 ms per exchange and keeps idle
connections in a deque (O(1) to take and return one), so it can keep as many as are in use.

It keeps the `Sender` contract (what "sent" means, timeouts, the body cap); a cancelled exchange
closes its connection, never reuses it. It supports only http:// proxies and HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import errno
import ssl
import time
import urllib.request
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx2

from nexor_mcp import sender
from nexor_mcp.sender import (
    CLOSED,
    IDLE_SECONDS,
    NOT_HTTP,
    OUT_OF_FILES,
    REFUSED,
    RESET,
    RESET_SENDING,
    UNTRUSTED,
    Answer,
    SendFailed,
    check_headers,
    decoded,
)

MAX_HEAD_BYTES = 64 * 1024
"""Status line and headers of an answer; longer is not valid HTTP for us (h11's limit too)."""
class Reader(Protocol):
    @property
    def unread(self) -> int: ...
    async def readuntil(self, separator: bytes = ...) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...
    async def read(self, n: int = ...) -> bytes: ...
    def at_eof(self) -> bool: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...
    async def start_tls(self, sslcontext: ssl.SSLContext, *, server_hostname: str | None = ...) -> None: ...


Opener = Callable[[str, int], Awaitable[tuple[Reader, Writer]]]
"""Opens a TCP connection to (host, port): `asyncio.open_connection`, or a stand-in in tests."""


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: Reader, writer: Writer) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        """Still open, and nothing arrived while idle (a late "408" would be read as the next
        request's answer)."""
        return not (self.writer.is_closing() or self.reader.at_eof() or self.reader.unread)

    def close(self) -> None:
        self.writer.close()


class UnsupportedProxy(SendFailed):
    """The environment names a proxy this pool cannot speak (https://, socks5://): httpx2 can."""


@dataclass(frozen=True, slots=True)
class _Proxy:
    host: str
    port: int
    authorization: str | None


class Pool:
    """Keep-alive HTTP/1.1 connections to one origin (the scheme, host and port of `base_url`).

    At most `max_connections` exchanges run at once (more wait for a free slot, under the caller's
    deadline); at most `max_idle` idle connections are kept, each for `IDLE_SECONDS`.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float,
        max_connections: int = 200,
        max_idle: int = 100,
        opener: Opener | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._tls = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._tls else 80)
        default_port = self._port == (443 if self._tls else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._authority = host if default_port else f"{host}:{self._port}"
        self._origin = f"{url.scheme}://{self._authority}"
        self._prefix = url.path.rstrip("/") + "/"
        self._proxy = _proxy_for(url.scheme, self._host) if opener is None else None
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        check_headers(headers)
        self._connect_timeout = connect_timeout
        self._open: Opener = opener or _open_tcp
        self._ssl: ssl.SSLContext | None = _ssl_context() if self._tls else None
        self._idle: collections.deque[_Connection] = collections.deque()
        self._max_idle = max_idle
        self._slots = asyncio.Semaphore(max_connections)

    def __repr__(self) -> str:
        return f"Pool({self._origin!r}, idle={len(self._idle)})"

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str],
        body: bytes | None,
        max_body: int,
    ) -> Answer:
        """`method` `base_url/path?query`, with `headers` on this request only."""
        check_headers(headers)
        target = sender.target(self._prefix, path, query)
        if self._proxy is not None and not self._tls:
            target = self._origin + target  # a forward proxy takes the absolute form
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {self._authority}\r\n", self._fixed]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if self._proxy is not None and self._proxy.authorization and not self._tls:
            lines.append(f"Proxy-Authorization: {self._proxy.authorization}\r\n")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1") + (body or b"")
        async with self._slots:
            connection = await self._connection()
            reusable = False
            try:
                answer, reusable = await _write_and_read(connection, data, method, max_body)
            finally:
                if reusable:
                    self._release(connection)
                else:
                    connection.close()
            return answer

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop().close()

    async def _connection(self) -> _Connection:
        """The most recently used idle connection that is still open, or a new one."""
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if now - connection.idle_since < IDLE_SECONDS and connection.usable():
                return connection
            connection.close()
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await self._connect()
        except TimeoutError:
            raise
        except ssl.SSLCertVerificationError:
            raise SendFailed(UNTRUSTED, sent=False) from None
        except OSError as exc:
            raise SendFailed(OUT_OF_FILES if exc.errno in (errno.EMFILE, errno.ENFILE) else REFUSED,
                             sent=False) from None

    async def _connect(self) -> _Connection:
        proxy = self._proxy
        reader, writer = await (self._open(proxy.host, proxy.port) if proxy else self._open(self._host, self._port))
        try:
            if self._ssl is not None:
                if proxy is not None:
                    await _tunnel(reader, writer, self._authority, proxy.authorization)
                await writer.start_tls(self._ssl, server_hostname=self._host)
        except BaseException:
            writer.close()
            raise
        return _Connection(reader, writer)

    def _release(self, connection: _Connection) -> None:
        now = connection.idle_since = time.monotonic()
        idle = self._idle
        while idle and (len(idle) >= self._max_idle or now - idle[0].idle_since >= IDLE_SECONDS):
            idle.popleft().close()  # the oldest go first
        idle.append(connection)


async def _write_and_read(connection: _Connection, data: bytes, method: str, max_body: int) -> tuple[Answer, bool]:
    """Write one request, read its answer: (the answer, whether the connection can be reused)."""
    reader, writer = connection.reader, connection.writer
    try:
        writer.write(data)
        await writer.drain()
    except (SendFailed, TimeoutError):
        raise
    except OSError:
        raise SendFailed(RESET_SENDING, sent=True) from None
    try:
        while True:
            status, headers, keep_alive = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            if not 100 <= status <= 199:
                break  # an interim answer (103 Early Hints) is followed by the real one
        body, complete, framed = await _read_body(reader, method, status, headers, max_body)
    except (SendFailed, TimeoutError):
        raise
    except asyncio.IncompleteReadError:
        raise SendFailed(CLOSED, sent=True) from None
    except (asyncio.LimitOverrunError, ValueError, zlib.error):
        raise SendFailed(NOT_HTTP, sent=True) from None
    except OSError:  # ConnectionResetError and the like (ssl.SSLError is one too)
        raise SendFailed(RESET, sent=True) from None
    return Answer(status, headers, body, complete), complete and framed and keep_alive


def _parse_head(head: bytes) -> tuple[int, dict[str, str], bool]:
    """(status, headers, keep-alive) of an answer's head; ValueError if it is not HTTP/1.x."""
    if len(head) > MAX_HEAD_BYTES:
        raise ValueError("head too long")
    lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isdigit() and code.isascii()) or rest[3:4] not in ("", " "):
        raise ValueError("bad status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or not name.isascii():
            raise ValueError("bad header line")  # also a folded line (it starts with a space)
        name, value = name.lower(), value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    return int(code), headers, keep_alive


async def _read_body(
    reader: Reader, method: str, status: int, headers: Mapping[str, str], max_body: int
) -> tuple[bytes, bool, bool]:
    """(body, complete, framed): framed is False when the body ran to the end of the connection."""
    if method == "HEAD" or status in (204, 304):
        # No body, whatever the head says; a server that sent one anyway left bytes that would be
        # read as the next answer, so such a connection is not reused.
        sent_one = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
        return b"", True, not sent_one
    raw = bytearray()
    framed = True
    if "transfer-encoding" in headers:
        framed = "content-length" not in headers  # both: the length is ignored, and so is the connection
        if headers["transfer-encoding"].lower().rsplit(",", 1)[-1].strip() != "chunked":
            raise ValueError("unsupported transfer-encoding")
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size_text = size_line.split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
                raise ValueError("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailer fields, ignored
                break
            if len(raw) + size > max_body:
                return b"", False, False
            raw += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("bad chunk end")
    elif "content-length" in headers:
        values = {value.strip() for value in headers["content-length"].split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ValueError("bad content-length")
        length = int(values.pop())
        if length > max_body:
            return b"", False, False
        raw += await reader.readexactly(length)
    else:
        framed = False  # the body ends when the server closes the connection
        while chunk := await reader.read(65536):
            raw += chunk
            if len(raw) > max_body:
                return b"", False, False
    body, complete = decoded(bytes(raw), headers.get("content-encoding", ""), max_body)
    return body, complete, framed


async def _tunnel(reader: Reader, writer: Writer, authority: str, authorization: str | None) -> None:
    """Ask an HTTP proxy for a tunnel to `authority` (CONNECT); SendFailed (not sent) if refused."""
    lines = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
    if authorization:
        lines += f"Proxy-Authorization: {authorization}\r\n"
    writer.write((lines + "\r\n").encode("latin-1"))
    try:
        await writer.drain()
        status, _, _ = _parse_head(await reader.readuntil(b"\r\n\r\n"))
    except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise SendFailed("ProxyError: the proxy from the environment closed the connection", sent=False) from None
    if not 200 <= status <= 299:
        raise SendFailed(f"ProxyError: the proxy from the environment answered HTTP {status}", sent=False)


class _CountingReader(asyncio.StreamReader):
    """A StreamReader that knows how many bytes wait unread: asyncio has no public call for that."""

    fed = 0
    taken = 0

    @property
    def unread(self) -> int:
        return self.fed - self.taken

    def feed_data(self, data: bytes) -> None:  # type: ignore[override]  # asyncio feeds bytes
        self.fed += len(data)
        super().feed_data(data)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:  # type: ignore[override]
        data = await super().readuntil(separator)
        self.taken += len(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        data = await super().readexactly(n)
        self.taken += len(data)
        return data

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        self.taken += len(data)
        return data


async def _open_tcp(host: str, port: int) -> tuple[Reader, Writer]:
    """`asyncio.open_connection`, with a reader that counts what it has not yet handed out."""
    loop = asyncio.get_running_loop()
    reader = _CountingReader(limit=MAX_HEAD_BYTES, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, host, port)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def _ssl_context() -> ssl.SSLContext:
    """The same trust as httpx2 (the SDK's client): the system store, or SSL_CERT_FILE / SSL_CERT_DIR;
    certificates and host names are always verified."""
    context = httpx2.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _proxy_for(scheme: str, host: str) -> _Proxy | None:
    """The proxy the environment asks for (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, minus
    `NO_PROXY`, read as Python's urllib reads them). Only http:// proxies are supported."""
    proxies = urllib.request.getproxies_environment()
    address = proxies.get(scheme) or proxies.get("all")
    if not address or urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return None
    url = urlsplit(address if "://" in address else f"http://{address}")
    if url.scheme != "http" or not url.hostname:
        raise UnsupportedProxy(
            f"ProxyError: the {scheme} proxy set in the environment is {url.scheme}://, but this pool "
            "supports only http:// proxies (set NO_PROXY for the Nexor host to go direct)",
            sent=False,
        )
    authorization = None
    if url.username is not None:
        pair = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
    return _Proxy(url.hostname, url.port or 80, authorization)

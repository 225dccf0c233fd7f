"""The one interface every Nexor request is sent through, and what its implementations share.

`Sender.send` takes a request relative to the base URL and returns an `Answer`; it never follows a
redirect, never keeps a credential (the caller's headers go on one request only) and fails with one
typed error, `SendFailed`, whose `sent` says whether any byte of the request may have reached Nexor.
Two implementations: `nexor_mcp.outbound.Pool` (a lean HTTP/1.1 keep-alive pool) and
`HttpxSender` here (httpx2, which the SDK brings). `NexorClient` chooses between them in one place;
bench/RESULTS.md has the numbers behind the choice.

What a caller relies on, from either:

- `SendFailed.sent` is False only when nothing of the request can have been written (the connection
  could not be made, the proxy refused the tunnel, a header was invalid). A write that may not be
  idempotent is never retried when it is True.
- Connecting has its own deadline and raises `TimeoutError`; the caller puts a total deadline
  around the exchange.
- `Answer.complete` is False when the body (after decompression) would pass `max_body`: nothing
  more is read or inflated, so neither a large body nor a decompression bomb can take memory.
"""

from __future__ import annotations

import errno
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx2

IDLE_SECONDS = 5.0
"""How long an idle connection is kept (httpx2's default keep-alive expiry)."""
REFUSED = "connection refused or host unreachable"
CLOSED = "the connection was closed mid-response"
RESET = "the connection was reset"
RESET_SENDING = "the connection was reset while sending"
NOT_HTTP = "the answer was not valid HTTP/1.1"
UNTRUSTED = "its TLS certificate could not be verified"
BAD_HEADER = "a request header held a line break or a non-ASCII character"
OUT_OF_FILES = (
    "nexor-mcp has run out of file descriptors (too many open files), so no connection could be "
    "opened; this is not a network problem: restart the server or raise its open-file limit"
)
_FORBIDDEN_IN_HEADERS = frozenset("\r\n\0")
_PATH_SAFE = "/!$&'()*+,;=:@-._~%"


class SendFailed(Exception):
    """An exchange that failed without an answer. `reason` is for people (it holds no header value);
    `sent` is False only when nothing of the request can have reached the server."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    """Lower-case names; a repeated header's values joined with ", "."""
    body: bytes
    complete: bool
    """False: the body (decompressed) is larger than `max_body`, and `body` is empty."""


class Sender(Protocol):
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
        ...

    async def aclose(self) -> None: ...


def target(prefix: str, path: str, query: Mapping[str, str] | None) -> str:
    """`prefix` + the path percent-encoded (a line break cannot leave the request line) + the query,
    form-encoded byte for byte as httpx2 encodes params."""
    url = prefix + quote(path, safe=_PATH_SAFE)
    return url + "?" + urlencode(query) if query else url


def check_headers(headers: Mapping[str, str]) -> None:
    """A line break in a header would let it write its own headers: refused before sending."""
    for name, value in headers.items():
        if not _FORBIDDEN_IN_HEADERS.isdisjoint(name + value) or not (name + value).isascii():
            raise SendFailed(BAD_HEADER, sent=False)


def decoded(raw: bytes, encoding: str, max_body: int) -> tuple[bytes, bool]:
    """The body with gzip/deflate undone (innermost last), never inflated past `max_body` bytes.
    Codings we did not ask for are left as they are, as httpx2 leaves them."""
    for coding in reversed([token.strip().lower() for token in encoding.split(",") if token.strip()]):
        if coding in ("gzip", "x-gzip"):
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif coding == "deflate":  # zlib-wrapped as the spec says, or raw as some servers send it
            inflater = zlib.decompressobj(zlib.MAX_WBITS if raw[:1] == b"\x78" else -zlib.MAX_WBITS)
        else:
            continue
        raw = inflater.decompress(raw, max_body + 1)
        if len(raw) > max_body or inflater.unconsumed_tail:
            return b"", False
    return raw, True


class HttpxSender:
    """`Sender` on an `httpx2.AsyncClient`: proxies from the environment (http, https and, with
    socksio, socks5), `SSL_CERT_FILE`/`SSL_CERT_DIR`, `NO_PROXY`, as httpx2 reads them.

    The body is read raw (undecoded) and decompressed here, by the same capped inflater as the
    pool's, so a bomb is never inflated past the cap. `transport` answers instead of the network
    (`httpx2.MockTransport` in unit tests)."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str],
        connect_timeout: float,
        max_connections: int = 200,
        max_idle: int = 100,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        check_headers(headers)
        self._prefix = base_url.rstrip("/") + "/"
        try:
            self._client = httpx2.AsyncClient(
                headers=dict(headers),
                timeout=httpx2.Timeout(None, connect=connect_timeout),
                limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_idle,
                                     keepalive_expiry=IDLE_SECONDS),
                follow_redirects=False,
                transport=transport,
            )
        except (ImportError, ValueError) as exc:  # a socks5:// proxy without socksio, an unknown scheme
            why = "SOCKS needs the socksio package" if isinstance(exc, ImportError) else "its scheme is not supported"
            raise SendFailed(
                f"ProxyError: the proxy set in the environment cannot be used ({why}); set NO_PROXY for "
                "the Nexor host to go direct", sent=False,
            ) from None

    def __repr__(self) -> str:
        return f"HttpxSender({self._prefix!r})"

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
        check_headers(headers)
        request = self._client.build_request(method, target(self._prefix, path, query), headers=headers,
                                             content=body)
        try:
            response = await self._client.send(request, stream=True)
            try:
                answer_headers = {name.lower(): value for name, value in response.headers.items()}
                raw = await _raw_body(response, method, max_body)
            finally:
                await response.aclose()
        except httpx2.TimeoutException:
            raise TimeoutError from None
        except httpx2.TransportError as exc:
            raise _failed(exc) from None
        if raw is None:
            return Answer(response.status_code, answer_headers, b"", False)
        content, complete = decoded(raw, answer_headers.get("content-encoding", ""), max_body)
        return Answer(response.status_code, answer_headers, content, complete)

    async def aclose(self) -> None:
        await self._client.aclose()


async def _raw_body(response: httpx2.Response, method: str, max_body: int) -> bytes | None:
    """The body as it came (no decoding), or None past `max_body`. Read from the stream itself, not
    `aiter_raw()`, which refuses a MockTransport's answer (read already)."""
    if method == "HEAD" or response.status_code in (204, 304):
        return b""  # no body, whatever follows the head (as h11 reads a socket)
    stream = response.stream
    if not isinstance(stream, httpx2.AsyncByteStream):
        raise TypeError("httpx2 gave a synchronous stream to an async client")
    raw = bytearray()
    async for chunk in stream:
        raw += chunk
        if len(raw) > max_body:
            return None
    return bytes(raw)


def _failed(exc: httpx2.TransportError) -> SendFailed:
    """httpx2's error as `SendFailed`: its own text (which may quote a header) is never kept."""
    if isinstance(exc, httpx2.ProxyError):
        return SendFailed("ProxyError: the proxy from the environment refused the connection", sent=False)
    if isinstance(exc, httpx2.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return SendFailed(UNTRUSTED, sent=False)
            if isinstance(cause, OSError) and cause.errno in (errno.EMFILE, errno.ENFILE):
                return SendFailed(OUT_OF_FILES, sent=False)
            cause = cause.__cause__ or cause.__context__
        return SendFailed(REFUSED, sent=False)
    if isinstance(exc, httpx2.LocalProtocolError | httpx2.UnsupportedProtocol):
        return SendFailed(f"the request could not be written ({type(exc).__name__})", sent=False)
    reason = {
        httpx2.RemoteProtocolError: CLOSED,
        httpx2.ReadError: RESET,
        httpx2.WriteError: RESET_SENDING,
    }.get(type(exc), type(exc).__name__)
    return SendFailed(reason, sent=True)

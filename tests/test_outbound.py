"""The two `Sender`s (`nexor_mcp.outbound.Pool`, the lean HTTP/1.1 keep-alive pool, and
`nexor_mcp.sender.HttpxSender`) against real sockets on loopback: framing (length, chunked, to the
close), the body cap and decompression bombs, keep-alive reuse and when a connection must not be
reused, "was it sent" on every failure, timeouts, no redirects, TLS with verification, proxies from
the environment, and no key in any text. The contract both keep is tested on both."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import importlib.util
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nexor_mcp import client as client_module
from nexor_mcp import endpoints, outbound, sender
from nexor_mcp.client import NexorClient
from nexor_mcp.config import Secret, Settings
from nexor_mcp.errors import ApiConnectionError, ApiStatusError, ApiTimeout
from nexor_mcp.outbound import Pool
from nexor_mcp.sender import HttpxSender, Sender, SendFailed

pytestmark = pytest.mark.anyio

KEY = "nxr_live_outbound_5b1e9d"
CAP = 4096
LEAD = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@dataclass
class Request:
    head: str
    body: bytes

    @property
    def line(self) -> str:
        return self.head.split("\r\n", 1)[0]

    def header(self, name: str) -> str | None:
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


Answer = Callable[[Request], Awaitable[bytes | None]]
"""Raw bytes to send back for a request; None: close the connection without answering."""


@dataclass
class Server:
    """A raw HTTP/1.1 server: each connection reads requests and writes what `answer` returns."""

    answer: Answer
    port: int = 0
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    tls: ssl.SSLContext | None = None
    close: bool = False
    """Close each connection after its first answer (a body that runs to the close)."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                request = Request(head, b"")
                length = int(request.header("content-length") or 0)
                request.body = await reader.readexactly(length)
                self.requests.append(request)
                raw = await self.answer(request)
                if raw is None:
                    break
                writer.write(raw)
                await writer.drain()
                if self.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serving(answer: Answer, tls: ssl.SSLContext | None = None, close: bool = False) -> AsyncIterator[Server]:
    server = Server(answer, tls=tls, close=close)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


def response(status: int = 200, body: bytes = b'{"ok":true}', *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def fixed(raw: bytes | None) -> Answer:
    async def answer(request: Request) -> bytes | None:
        return raw

    return answer


def pool_for(server: Server, scheme: str = "http", host: str = "127.0.0.1", **kwargs: float) -> Pool:
    return Pool(f"{scheme}://{host}:{server.port}/api/public", headers={"User-Agent": "t"},
                connect_timeout=kwargs.pop("connect_timeout", 5.0), **kwargs)  # type: ignore[arg-type]


SenderFor = Callable[..., Sender]


@pytest.fixture(params=["pool", "httpx"])
def sender_for(request: pytest.FixtureRequest) -> SenderFor:
    """Each `Sender` for a test of the contract both keep: `sender_for(server, scheme, host)`."""
    if request.param == "pool":
        return pool_for

    def httpx_for(server: Server, scheme: str = "http", host: str = "127.0.0.1") -> Sender:
        return HttpxSender(f"{scheme}://{host}:{server.port}/api/public", headers={"User-Agent": "t"},
                           connect_timeout=5.0)

    return httpx_for


async def get(pool: Sender, path: str = "leads/1", method: str = "GET", body: bytes | None = None) -> sender.Answer:
    return await pool.send(method, path, headers={"X-API-Key": KEY}, body=body, max_body=CAP)


# --- requests and framing -------------------------------------------------------------------------


async def test_the_request_on_the_wire(sender_for: SenderFor) -> None:
    async with serving(fixed(response())) as server:
        pool = sender_for(server)
        headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
        query = {"channel": "whatsapp,email", "q": "a b/c"}
        await pool.send("PATCH", f"leads/{LEAD}", query=query, headers=headers, body=b'{"a":1}', max_body=CAP)
        await pool.aclose()
    (request,) = server.requests
    assert request.line == f"PATCH /api/public/leads/{LEAD}?channel=whatsapp%2Cemail&q=a+b%2Fc HTTP/1.1"
    assert request.header("host") == f"127.0.0.1:{server.port}"
    assert request.header("x-api-key") == KEY
    assert request.header("user-agent") == "t"
    assert request.header("content-length") == "7"
    assert request.body == b'{"a":1}'


async def test_a_path_cannot_leave_its_line(sender_for: SenderFor) -> None:
    async with serving(fixed(response())) as server:
        pool = sender_for(server)
        await get(pool, "leads/a b\r\nX-Injected: 1")
        await pool.aclose()
    assert server.requests[0].line == "GET /api/public/leads/a%20b%0D%0AX-Injected:%201 HTTP/1.1"
    assert server.requests[0].header("x-injected") is None


async def test_a_header_with_a_line_break_is_refused_before_sending(sender_for: SenderFor) -> None:
    async with serving(fixed(response())) as server:
        pool = sender_for(server)
        with pytest.raises(SendFailed) as info:
            await pool.send("GET", "x", headers={"X-API-Key": KEY + "\r\nX-Evil: 1"}, body=None, max_body=CAP)
        await pool.aclose()
    assert info.value.sent is False
    assert KEY not in str(info.value)
    assert server.connections == 0


@pytest.mark.parametrize(
    "raw",
    [
        response(200, b'{"a":1}'),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nX-Trailer: y\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response(200, b'{"a":1}'),
        response(200, gzip.compress(b'{"a":1}'), "Content-Encoding: gzip"),
        response(200, zlib.compress(b'{"a":1}'), "Content-Encoding: deflate"),
    ],
    ids=["length", "chunked", "interim", "gzip", "deflate"],
)
async def test_bodies_by_length_chunks_and_encodings(raw: bytes, sender_for: SenderFor) -> None:
    async with serving(fixed(raw)) as server:
        pool = sender_for(server)
        answers = [await get(pool), await get(pool)]
        await pool.aclose()
    assert [(a.status, a.body, a.complete) for a in answers] == [(200, b'{"a":1}', True)] * 2
    assert server.connections == 1  # and the connection was reused


async def test_a_body_that_runs_to_the_close_is_read_and_the_connection_not_reused(sender_for: SenderFor) -> None:
    async with serving(fixed(b"HTTP/1.1 200 OK\r\n\r\n{}"), close=True) as server:
        pool = sender_for(server)
        first = await get(pool)
        await get(pool)
        await pool.aclose()
    assert (first.body, first.complete) == (b"{}", True)
    assert server.connections == 2


# --- the body cap ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        response(200, b"x" * (CAP + 1)),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"800\r\n" + b"x" * 2048 + b"\r\n") * 3 + b"0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * (CAP + 1),
        response(200, gzip.compress(b"[" + b" " * (CAP * 1000) + b"]"), "Content-Encoding: gzip"),  # a bomb
        response(200, zlib.compress(b" " * (CAP + 1)), "Content-Encoding: deflate"),
    ],
    ids=["length", "chunked", "to-close", "gzip-bomb", "deflate"],
)
async def test_a_body_over_the_cap_is_not_read(raw: bytes, sender_for: SenderFor) -> None:
    async with serving(fixed(raw), close=True) as server:
        pool = sender_for(server)
        answer = await get(pool)
        await pool.aclose()
    assert (answer.status, answer.body, answer.complete) == (200, b"", False)


async def test_a_bomb_is_never_inflated_past_the_cap(monkeypatch: pytest.MonkeyPatch, sender_for: SenderFor) -> None:
    inflated: list[int] = []
    real = zlib.decompressobj

    class Measured:
        def __init__(self, wbits: int) -> None:
            self._inflater = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            out = self._inflater.decompress(data, max_length)
            inflated.append(len(out))
            return out

        @property
        def unconsumed_tail(self) -> bytes:
            return self._inflater.unconsumed_tail

    bomb = gzip.compress(b" " * (CAP * 500))  # 2 MB of spaces in ~2 kB, under the cap
    assert len(bomb) < CAP
    monkeypatch.setattr(zlib, "decompressobj", Measured)
    async with serving(fixed(response(200, bomb, "Content-Encoding: gzip"))) as server:
        pool = sender_for(server)
        answer = await get(pool)
        await pool.aclose()
    assert answer.complete is False
    assert inflated and max(inflated) <= CAP + 1


async def test_a_body_at_the_cap_is_read(sender_for: SenderFor) -> None:
    async with serving(fixed(response(200, gzip.compress(b"y" * CAP), "Content-Encoding: gzip"))) as server:
        pool = sender_for(server)
        answer = await get(pool)
        await pool.aclose()
    assert (len(answer.body), answer.complete) == (CAP, True)


# --- keep-alive -----------------------------------------------------------------------------------


async def test_concurrent_calls_reuse_as_many_connections_as_run_at_once(sender_for: SenderFor) -> None:
    async def slow(request: Request) -> bytes | None:
        await asyncio.sleep(0.01)
        return response()

    async with serving(slow) as server:
        pool = sender_for(server)
        for _ in range(5):
            await asyncio.gather(*(get(pool) for _ in range(64)))
        await pool.aclose()
    assert len(server.requests) == 320
    assert server.connections == 64


@pytest.mark.parametrize(
    "raw",
    [
        response(200, b"{}", "Connection: close"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nextra",  # bytes that would start the next answer
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    ],
    ids=["close", "http-1.0", "204-with-body", "length-and-chunked"],
)
async def test_connections_that_must_not_be_reused(raw: bytes) -> None:
    async with serving(fixed(raw)) as server:
        pool = pool_for(server)
        await get(pool)
        await get(pool)
        await pool.aclose()
    assert server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response(200, b"{}"))
        await writer.drain()
        writer.close()  # the server's idle timeout, right after answering

    connections: list[int] = []
    listener = await asyncio.start_server(answer_then_close, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    pool = Pool(f"http://127.0.0.1:{port}", headers={}, connect_timeout=5)
    await get(pool)
    await asyncio.sleep(0.05)  # the close reaches us
    answer = await get(pool)  # would fail "closed mid-response" on the dead connection
    await pool.aclose()
    listener.close()
    assert answer.status == 200
    assert len(connections) == 2


async def test_a_connection_with_bytes_that_arrived_while_idle_is_not_used() -> None:
    async def answer_then_408(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response(200, b"{}") + response(408, b"late"))  # then it idles out, unasked
        await writer.drain()
        await asyncio.sleep(1)
        writer.close()

    connections: list[int] = []
    listener = await asyncio.start_server(answer_then_408, "127.0.0.1", 0)
    pool = Pool(f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}", headers={}, connect_timeout=5)
    await get(pool)
    await asyncio.sleep(0.05)
    second = await get(pool)
    await pool.aclose()
    listener.close()
    assert (second.status, len(connections)) == (200, 2)


async def test_idle_connections_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbound, "IDLE_SECONDS", 0.05)
    async with serving(fixed(response())) as server:
        pool = pool_for(server)
        await get(pool)
        await asyncio.sleep(0.1)
        await get(pool)
        await pool.aclose()
    assert server.connections == 2


# --- failures: was it sent? -----------------------------------------------------------------------


async def test_connection_refused_was_not_sent() -> None:
    async with serving(fixed(response())) as server:
        port = server.port
    pool = Pool(f"http://127.0.0.1:{port}", headers={}, connect_timeout=5)
    with pytest.raises(SendFailed) as info:
        await get(pool)
    assert (info.value.sent, info.value.reason) == (False, sender.REFUSED)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, sender.CLOSED),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", sender.CLOSED),
        (b"SSH-2.0-OpenSSH\r\n\r\n", sender.NOT_HTTP),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}", sender.NOT_HTTP),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n", sender.NOT_HTTP),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", sender.NOT_HTTP),
    ],
    ids=["no-answer", "short-body", "not-http", "two-lengths", "folded", "bad-chunk"],
)
async def test_failures_after_the_request_left_may_have_been_sent(
    raw: bytes | None, reason: str, sender_for: SenderFor
) -> None:
    async with serving(fixed(raw), close=True) as server:
        pool = sender_for(server)
        with pytest.raises(SendFailed) as info:
            await get(pool, method="POST", body=b"{}")
        await pool.aclose()
    assert info.value.sent is True
    # httpx2 says "closed mid-response" for an answer that is not HTTP too (h11 tells them apart no better)
    assert info.value.reason == reason if isinstance(pool, Pool) else info.value.reason in (reason, sender.CLOSED)
    assert KEY not in info.value.reason
    assert server.requests  # it did arrive


async def test_a_head_over_64_kib_is_not_http_to_the_pool() -> None:
    """(httpx2's limit, httpcore2's, is 100 kB.)"""
    async with serving(fixed(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"), close=True) as server:
        pool = pool_for(server)
        with pytest.raises(SendFailed) as info:
            await get(pool, method="POST", body=b"{}")
        await pool.aclose()
    assert (info.value.sent, info.value.reason) == (True, sender.NOT_HTTP)


async def test_a_reset_after_sending_may_have_been_sent() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        # SO_LINGER 0: closing sends a reset instead of a FIN
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    listener = await asyncio.start_server(reset, "127.0.0.1", 0)
    pool = Pool(f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}", headers={}, connect_timeout=5)
    with pytest.raises(SendFailed) as info:
        await get(pool, method="POST", body=b"{}")
    listener.close()
    assert info.value.sent is True
    assert info.value.reason in (sender.RESET, sender.CLOSED)


async def test_connect_timeout_is_a_timeout() -> None:
    async def never_connects(host: str, port: int) -> tuple[outbound.Reader, outbound.Writer]:
        await asyncio.sleep(10)  # a SYN nobody answers
        raise AssertionError

    pool = Pool("http://api.nexor.test", headers={}, connect_timeout=0.05, opener=never_connects)
    with pytest.raises(TimeoutError):
        await get(pool)


async def test_a_cancelled_exchange_closes_its_connection() -> None:
    async def never(request: Request) -> bytes | None:
        await asyncio.sleep(10)
        return None

    async with serving(never) as server:
        pool = pool_for(server)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await get(pool)
        assert repr(pool).endswith("idle=0)")
        await pool.aclose()


# --- through NexorClient: mapping, redirects, the key ---------------------------------------------


@pytest.fixture(params=["pool", "httpx"])
def each_sender(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """`NexorClient` on each sender (`nexor_mcp.client.SENDER`)."""
    monkeypatch.setattr(client_module, "SENDER", request.param)
    return str(request.param)


def client_for(port: int, scheme: str = "http", host: str = "127.0.0.1", timeout: float = 5.0) -> NexorClient:
    settings = Settings(api_key=Secret(KEY), base_url=f"{scheme}://{host}:{port}/api/public",
                        timeout_seconds=timeout, max_retries=0)
    return NexorClient(settings)


async def test_a_redirect_is_not_followed(each_sender: str) -> None:
    async with serving(fixed(response(302, b"", "Location: http://elsewhere.test/steal"))) as server:
        client = client_for(server.port)
        with pytest.raises(ApiStatusError) as info:
            await client.call(endpoints.get_lead(LEAD))
        await client.aclose()
    assert info.value.status == 302
    assert len(server.requests) == 1


async def test_a_write_cut_off_mid_answer_is_an_unknown_outcome_and_never_retried(each_sender: str) -> None:
    async with serving(fixed(None)) as server:
        settings = Settings(api_key=Secret(KEY), base_url=f"http://127.0.0.1:{server.port}/api/public", max_retries=3)
        client = NexorClient(settings)
        with pytest.raises(ApiConnectionError) as info:
            await client.call(endpoints.create_lead({"first_name": "Ana"}))
        await client.aclose()
    assert len(server.requests) == 1
    assert "closed mid-response" in str(info.value)
    assert "NEXOR_BASE_URL" not in str(info.value)
    assert KEY not in str(info.value)


async def test_refused_is_nothing_sent_and_a_timeout_is_api_timeout(each_sender: str) -> None:
    async with serving(fixed(response())) as server:
        port = server.port
    client = client_for(port)
    with pytest.raises(ApiConnectionError) as refused:
        await client.call(endpoints.create_lead({"first_name": "Ana"}))
    assert "connection refused" in str(refused.value)
    assert "NEXOR_BASE_URL" in str(refused.value)

    async def never(request: Request) -> bytes | None:
        await asyncio.sleep(10)
        return None

    async with serving(never) as server:
        client = client_for(server.port, timeout=0.1)
        with pytest.raises(ApiTimeout):
            await client.call(endpoints.get_lead(LEAD))
        await client.aclose()


async def test_the_key_is_in_no_repr(each_sender: str) -> None:
    async with serving(fixed(response(200, b'{"id":"' + LEAD.encode() + b'"}'))) as server:
        client = client_for(server.port)
        await client.call(endpoints.get_lead(LEAD))
        shared = client._outbound.get()
        assert type(shared) is (Pool if each_sender == "pool" else HttpxSender)
        assert KEY not in repr(client) + repr(shared) + repr(shared.__dict__)
        await client.aclose()


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


async def test_tls_refuses_an_untrusted_certificate(certificate: tuple[Path, Path], sender_for: SenderFor) -> None:
    async with serving(fixed(response()), tls=tls_server_context(certificate)) as server:
        pool = sender_for(server, "https", "localhost")
        with pytest.raises(SendFailed) as info:
            await get(pool)
    assert (info.value.sent, info.value.reason) == (False, sender.UNTRUSTED)
    assert server.requests == []


async def test_tls_with_a_trusted_certificate_and_its_host_name(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, sender_for: SenderFor
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # honoured as httpx2 honours it
    async with serving(fixed(response()), tls=tls_server_context(certificate)) as server:
        pool = sender_for(server, "https", "localhost")
        answers = [await get(pool), await get(pool)]
        await pool.aclose()
        wrong_name = sender_for(server, "https", "127.0.0.1")  # the certificate does not name it
        with pytest.raises(SendFailed) as info:
            await get(wrong_name)
    assert [answer.status for answer in answers] == [200, 200]
    assert server.connections == 1
    assert info.value.reason == sender.UNTRUSTED


# --- proxies from the environment -----------------------------------------------------------------


async def test_an_http_proxy_gets_the_absolute_form_and_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving(fixed(response())) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
        pool = Pool("http://api.nexor.test/api/public", headers={}, connect_timeout=5)
        await get(pool)
        await get(pool)
        await pool.aclose()
    assert proxy.requests[0].line == "GET http://api.nexor.test/api/public/leads/1 HTTP/1.1"
    assert proxy.requests[0].header("proxy-authorization") == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert proxy.connections == 1


@asynccontextmanager
async def tunnelling_proxy(status: int = 200) -> AsyncIterator[list[str]]:
    """An HTTP proxy that answers CONNECT by piping to the asked port on 127.0.0.1; yields the
    CONNECT heads it got (its port is the first item)."""
    seen: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        seen.append(head)
        if status != 200:
            writer.write(f"HTTP/1.1 {status} No\r\nContent-Length: 0\r\n\r\n".encode())
            writer.close()
            return
        port = int(head.split(" ")[1].rsplit(":", 1)[1])
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    seen.append(str(listener.sockets[0].getsockname()[1]))
    try:
        yield seen
    finally:
        listener.close()


async def test_https_goes_through_a_connect_tunnel_with_tls_to_nexor(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, sender_for: SenderFor
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with serving(fixed(response()), tls=tls_server_context(certificate)) as server, tunnelling_proxy() as seen:
        scheme = "" if sender_for is pool_for else "http://"  # the pool also takes a bare host:port
        monkeypatch.setenv("HTTPS_PROXY", f"{scheme}127.0.0.1:{seen[0]}")
        pool = sender_for(server, "https", "localhost")
        await get(pool)
        await get(pool)
        await pool.aclose()
    assert seen[1].startswith(f"CONNECT localhost:{server.port} HTTP/1.1\r\n")
    assert len(seen) == 2  # one tunnel, reused
    assert server.requests[0].line == "GET /api/public/leads/1 HTTP/1.1"  # origin form inside the tunnel


async def test_a_refused_tunnel_was_not_sent(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    async with tunnelling_proxy(status=407) as seen:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{seen[0]}")
        pool = Pool("https://api.nexor.test", headers={}, connect_timeout=5)
        with pytest.raises(SendFailed) as info:
            await get(pool, method="POST", body=b"{}")
    assert info.value.sent is False
    assert "HTTP 407" in info.value.reason


async def test_no_proxy_and_unsupported_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving(fixed(response())) as server:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        pool = pool_for(server)
        assert (await get(pool)).status == 200
        await pool.aclose()
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    monkeypatch.delenv("HTTP_PROXY")
    with pytest.raises(SendFailed) as info:
        Pool("http://api.nexor.test", headers={}, connect_timeout=5)
    assert info.value.sent is False
    assert "only http:// proxies" in info.value.reason


# --- httpx2's proxies: what the pool does not support -----------------------------------------------


async def test_httpx2_sends_to_an_http_proxy_with_its_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving(fixed(response())) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
        http = HttpxSender("http://api.nexor.test/api/public", headers={}, connect_timeout=5)
        answers = [await get(http), await get(http)]
        await http.aclose()
    assert [answer.status for answer in answers] == [200, 200]
    assert proxy.requests[0].line == "GET http://api.nexor.test/api/public/leads/1 HTTP/1.1"
    assert proxy.requests[0].header("proxy-authorization") == "Basic dXNlcjpwQHNz"
    assert proxy.connections == 1


async def test_httpx2_through_a_refused_tunnel_was_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    async with tunnelling_proxy(status=407) as seen:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{seen[0]}")
        http = HttpxSender("https://api.nexor.test", headers={}, connect_timeout=5)
        with pytest.raises(SendFailed) as info:
            await get(http, method="POST", body=b"{}")
        await http.aclose()
    assert info.value.sent is False
    assert "ProxyError" in info.value.reason


def test_httpx2_with_a_socks_proxy_but_no_socksio_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    if importlib.util.find_spec("socksio") is None:
        with pytest.raises(SendFailed) as info:
            HttpxSender("http://api.nexor.test", headers={}, connect_timeout=5)
        assert info.value.sent is False
        assert "socksio" in info.value.reason and "NO_PROXY" in info.value.reason
    else:
        HttpxSender("http://api.nexor.test", headers={}, connect_timeout=5)  # socksio makes it work


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY"])
@pytest.mark.parametrize("address", ["https://proxy.corp.test:8443", "socks5://proxy.corp.test:1080"])
def test_a_proxy_the_pool_cannot_speak_gets_httpx2(
    variable: str, address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pool as the sender, an https:// or socks5:// proxy in the environment makes the
    client send through httpx2 instead of failing every call."""
    monkeypatch.setattr(client_module, "SENDER", "pool")
    monkeypatch.setenv(variable, address)
    client = NexorClient(Settings(api_key=Secret(KEY), base_url="http://api.nexor.test/api/public"))
    if address.startswith("socks5") and importlib.util.find_spec("socksio") is None:
        with pytest.raises(SendFailed) as info:  # httpx2 needs socksio for SOCKS, and says so
            client._outbound.get()
        assert "socksio" in info.value.reason and info.value.sent is False
    else:
        assert type(client._outbound.get()) is HttpxSender
    monkeypatch.delenv(variable)
    assert type(NexorClient(Settings(api_key=Secret(KEY)))._outbound.get()) is Pool

"""Shared fixtures: a real sandbox API on loopback and real `nexor-mcp` subprocesses over stdio."""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import CallToolResult

from nexor_mcp.sandbox import DEMO_LEAD_IDS, SandboxApi, SandboxServer
from tests.postgres import PostgresCluster, PostgresUnavailable, start_cluster

ANA, JOHN, MARIA = DEMO_LEAD_IDS
TEST_KEY = "nxr_live_test_key_5f0e9c1a"
MISSING_LEAD = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox for the whole run; tests reset it through the `api` fixture."""
    with SandboxServer(SandboxApi(api_key=TEST_KEY)) as server:
        yield server


@pytest.fixture
def api(sandbox_server: SandboxServer) -> SandboxApi:
    sandbox_server.api.reset()
    return sandbox_server.api


@dataclass
class McpProcess:
    """A running `python -m nexor_mcp` subprocess and the SDK session talking to it."""

    session: ClientSession
    stderr: TextIO

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        return await self.session.call_tool(tool, arguments)

    def stderr_text(self) -> str:
        return read_log(self.stderr)


@contextmanager
def child_log() -> Iterator[TextIO]:
    """A temporary file for a child process's stderr.

    The child and this process share the file's offset. Opened for appending, the child's writes
    always land at the end, so nothing here (a seek, a read) can make it overwrite earlier lines.
    `TemporaryFile("a+")` alone is not enough: on a descriptor it already opened, it only seeks to
    the end and never sets O_APPEND, so that flag is set here.
    """
    with tempfile.TemporaryFile("w+", encoding="utf-8") as file:
        fcntl.fcntl(file.fileno(), fcntl.F_SETFL, fcntl.fcntl(file.fileno(), fcntl.F_GETFL) | os.O_APPEND)
        yield file


def read_log(file: IO[str]) -> str:
    """Everything written to `file` so far, read without moving the offset the child shares."""
    chunks: list[bytes] = []
    while chunk := os.pread(file.fileno(), 1 << 16, sum(map(len, chunks))):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


@asynccontextmanager
async def spawn_server(env: dict[str, str], args: tuple[str, ...] = ()) -> AsyncIterator[McpProcess]:
    """Start the server exactly as an MCP host would: a subprocess speaking JSON-RPC on stdio."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "nexor_mcp", *args], env=env)
    with child_log() as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield McpProcess(session, errlog)


def server_env(base_url: str, **extra: str) -> dict[str, str]:
    return {"NEXOR_BASE_URL": base_url, "NEXOR_API_KEY": TEST_KEY, **extra}


def text_of(result: CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert block.type == "text"
    return block.text


# --- databases (NEXOR_DATABASE_URL): a real SQLite file and a real PostgreSQL ----------------------


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the run (see tests/postgres.py). Never skipped: when PostgreSQL is
    missing and cannot be installed here, every test that needs it fails, saying how to install it.
    `postgres_cluster.stopped()` takes it down for a `with` block; `postgres_url` starts it again
    should a test have left it stopped."""
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        pytest.fail(f"\n{'!' * 100}\n{exc}\n{'!' * 100}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database of its own for this test, its URL with a password in it (trust
    authentication accepts any): `postgresql://postgres:s3cret@127.0.0.1:PORT/test_...`."""
    postgres_cluster.start()
    return postgres_cluster.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file of this test's own (not created yet): `sqlite:////tmp/.../state.db`."""
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs twice: on a SQLite file and on a PostgreSQL database."""
    url: str = request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "postgres_url"}[request.param])
    return url

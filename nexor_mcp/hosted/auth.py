"""Who may call this server and with which tools: decided once per request, from its headers.

- **Multi-tenant** (no key configured): each request brings its own Nexor key (`X-API-Key`, or
  `Authorization: Bearer nxr_live_…`), checked for a Nexor key's shape.
- **Single-tenant** (`NEXOR_API_KEY` configured): clients present an access token from
  `NEXOR_MCP_ACCESS_TOKENS` instead (`Authorization: Bearer …`), compared in constant time.

The operator's tool selection is an upper bound; `X-Nexor-Tools` can only narrow it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from nexor_mcp.config import KEY_PREFIX, Secret, Settings
from nexor_mcp.hosted.settings import HostedSettings
from nexor_mcp.tools import ToolSpec, UnknownToolName, select_tools

TOOLS_HEADER = "x-nexor-tools"

# Bearer only where a bearer token is what is missing (single-tenant access tokens). A Bearer
# challenge tells MCP clients to try OAuth (discovery, dynamic client registration), which this
# server does not offer; a key per request is an API key, so its 401 names that scheme instead.
ACCESS_TOKEN_CHALLENGE = 'Bearer realm="nexor-mcp"'
API_KEY_CHALLENGE = 'ApiKey realm="nexor-mcp", header="X-API-Key"'
KEY_HELP = (
    f"Nexor API keys start with {KEY_PREFIX} and are one word of printable ASCII: copy yours from the "
    "Nexor dashboard (profile → Integrations) into the X-API-Key header"
)


class RefusedRequest(Exception):
    """A request refused before any tool runs: an HTTP status and a JSON-RPC error message."""

    def __init__(self, status: int, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge
        """The `WWW-Authenticate` value of a 401."""


@dataclass(frozen=True)
class Admission:
    """What one request was let in with: built by `Authenticator.admit`, read by each call's scope."""

    key: Secret | None
    """The request's own Nexor key (multi-tenant); None: the server's configured key."""
    tools: tuple[ToolSpec[Any], ...]
    """The tools it may use, in declaration order."""
    narrowed: bool
    """Whether its `X-Nexor-Tools` header narrowed the operator's selection."""


def bearer_token(headers: Any) -> str | None:
    """The token of an `Authorization: Bearer …` header; None if there is none."""
    scheme, _, token = str(headers.get("authorization", "")).partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def request_key(headers: Any) -> str | None:
    """The Nexor key a request carries, from `X-API-Key` or `Authorization: Bearer`; None if absent."""
    return str(headers.get("x-api-key", "")).strip() or bearer_token(headers)


def looks_like_a_nexor_key(key: str) -> bool:
    """The documented shape (nexor-api.md §3): the `nxr_live_` prefix, then one printable ASCII
    word. Anything else cannot work, so it is refused here with what a key looks like, instead of
    reaching Nexor (or being taken for an OAuth token)."""
    return (
        key.startswith(KEY_PREFIX) and len(key) > len(KEY_PREFIX)
        and key.isascii() and key.isprintable() and " " not in key
    )


class Authenticator:
    """Decides, from a request's headers, whether it may use this server, with which key and tools."""

    def __init__(self, settings: Settings, hosted: HostedSettings) -> None:
        self._single_tenant = settings.api_key is not None
        self._access_tokens = hosted.access_tokens
        self._base = select_tools(settings.tools, read_only=settings.read_only)

    def admit(self, headers: Any) -> Admission:
        """The request's `Admission`; raises `RefusedRequest` (401, or 400 for a bad tools header)."""
        key = None
        if self._single_tenant:
            self._check_access_token(headers)
        else:
            key = Secret(self._tenant_key(headers))
        tools_header = headers.get(TOOLS_HEADER)
        return Admission(key, self._narrowed(tools_header), narrowed=tools_header is not None)

    def _check_access_token(self, headers: Any) -> None:
        if not self._access_tokens:
            return  # loopback only: refused at start otherwise
        presented = bearer_token(headers)
        if presented is None or not any(
            hmac.compare_digest(presented.encode(), token.reveal().encode()) for token in self._access_tokens
        ):
            raise RefusedRequest(
                401, "this server needs an access token: send Authorization: Bearer <token>",
                challenge=ACCESS_TOKEN_CHALLENGE,
            )

    @staticmethod
    def _tenant_key(headers: Any) -> str:
        key = request_key(headers)
        if key is None:
            raise RefusedRequest(
                401,
                f"no Nexor API key: send your key in the X-API-Key header (or Authorization: Bearer {KEY_PREFIX}…)",
                challenge=API_KEY_CHALLENGE,
            )
        if not looks_like_a_nexor_key(key):
            raise RefusedRequest(
                401, f"the API key in the request does not look like a Nexor API key. {KEY_HELP}",
                challenge=API_KEY_CHALLENGE,
            )
        return key

    def _narrowed(self, tools_header: str | None) -> tuple[ToolSpec[Any], ...]:
        """The operator's tools, narrowed by a request's `X-Nexor-Tools` (never widened)."""
        if tools_header is None:
            return self._base
        try:
            asked = {spec.name for spec in select_tools(tools_header.split(","))}
        except UnknownToolName as exc:
            raise RefusedRequest(400, f"X-Nexor-Tools: {exc}") from None
        return tuple(spec for spec in self._base if spec.name in asked)

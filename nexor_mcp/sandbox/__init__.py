"""An embedded, in-memory stand-in for the Nexor API: try the server and run every test offline."""

from nexor_mcp.sandbox.api import (
    CAMPAIGNS,
    DEMO_LEAD_IDS,
    SANDBOX_API_KEY,
    Fault,
    RecordedRequest,
    RequestLog,
    SandboxApi,
)
from nexor_mcp.sandbox.runner import SandboxServer

__all__ = [
    "CAMPAIGNS",
    "DEMO_LEAD_IDS",
    "SANDBOX_API_KEY",
    "Fault",
    "RecordedRequest",
    "RequestLog",
    "SandboxApi",
    "SandboxServer",
]

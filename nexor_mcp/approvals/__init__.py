"""The approval page: a person approves a confirmed write in their own browser, out of the model's
sight, so the yes cannot be forged by the model or by a prompt injected into a lead's data.

- `registry`: `ApprovalStore`, the approval methods of `nexor_mcp.store.Store`, and
  `MemoryApprovals`, the same in memory for a stdio server without a database;
- `page`: the HTML of the page in each state (pure functions, every value escaped);
- `routes`: the Starlette routes that serve it (GET shows, only a POST from the page decides);
- `local`: `LocalApprovalServer`, those routes on a loopback port for a stdio server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nexor_mcp.approvals.registry import ApprovalStore, MemoryApprovals

if TYPE_CHECKING:  # the names, for the type checker; at run time they load on first use (below)
    from nexor_mcp.approvals.local import LocalApprovalServer
    from nexor_mcp.approvals.routes import DECIDED_BY, OnDecided, approval_routes, approval_token

_LAZY = {
    "LocalApprovalServer": "nexor_mcp.approvals.local",
    "DECIDED_BY": "nexor_mcp.approvals.routes",
    "OnDecided": "nexor_mcp.approvals.routes",
    "approval_routes": "nexor_mcp.approvals.routes",
    "approval_token": "nexor_mcp.approvals.routes",
}
"""Loaded on first use: a stdio server needs the registry at start, and the page (uvicorn, the
HTML) only when a call first asks a person."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DECIDED_BY",
    "ApprovalStore",
    "LocalApprovalServer",
    "MemoryApprovals",
    "OnDecided",
    "approval_routes",
    "approval_token",
]

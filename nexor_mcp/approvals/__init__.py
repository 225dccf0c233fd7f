"""The approval page: a person approves a confirmed write in their own browser, out of the model's
sight, so the yes cannot be forged by the model or by a prompt injected into a lead's data.

- `registry`: `ApprovalStore`, the approval methods of `nexor_mcp.store.Store`, and
  `MemoryApprovals`, the same in memory for a stdio server without a database;
- `page`: the HTML of the page in each state (pure functions, every value escaped);
- `routes`: the Starlette routes that serve it (GET shows, only a POST from the page decides);
- `local`: `LocalApprovalServer`, those routes on a loopback port for a stdio server.
"""

from __future__ import annotations

from nexor_mcp.approvals.local import LocalApprovalServer
from nexor_mcp.approvals.registry import ApprovalStore, MemoryApprovals
from nexor_mcp.approvals.routes import DECIDED_BY, OnDecided, approval_routes, approval_token

__all__ = [
    "DECIDED_BY",
    "ApprovalStore",
    "LocalApprovalServer",
    "MemoryApprovals",
    "OnDecided",
    "approval_routes",
    "approval_token",
]

"""Write safety: the ordered steps every write passes through (see `chain`)."""

from nexor_mcp.safety.chain import WriteSafety, through
from nexor_mcp.safety.confirmation import Confirmation, confirmation_binding, pending_text
from nexor_mcp.safety.dry_run import DryRun, dry_run_reply
from nexor_mcp.safety.guard import LeadMemory, StaleGuard, lead_changes
from nexor_mcp.safety.journaling import Journaling
from nexor_mcp.safety.write import Call, Reply, Step, Write, request_view

__all__ = [
    "Call", "Confirmation", "DryRun", "Journaling", "LeadMemory", "Reply", "StaleGuard", "Step", "Write",
    "WriteSafety", "confirmation_binding", "dry_run_reply", "lead_changes", "pending_text", "request_view",
    "through",
]

"""The tools/list an agent receives, frozen: any change to names, descriptions, schemas or
annotations must show up as a reviewed diff of tests/snapshots/tools_list.json.

Regenerate deliberately with `NEXOR_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_snapshot.py`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import spawn_server

pytestmark = pytest.mark.anyio

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"


async def test_tools_list_matches_the_snapshot() -> None:
    # Every tool, whatever group: what any configuration can show an agent is frozen here.
    async with spawn_server({"NEXOR_TOOLS": "read,write,automation,outreach"}) as process:
        listed = await process.session.list_tools()
    seen = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed.tools]
    rendered = json.dumps(seen, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("NEXOR_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(rendered, encoding="utf-8")
    assert SNAPSHOT.exists(), "no snapshot yet: run with NEXOR_UPDATE_SNAPSHOTS=1 and review it"
    assert rendered == SNAPSHOT.read_text(encoding="utf-8")

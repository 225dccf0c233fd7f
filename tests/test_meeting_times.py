"""Issue 14: a meeting's absolute instant, worked out from Nexor's `starts_at` and the meeting's
`timezone` (the e2e tests in test_e2e_leads_and_meetings.py cover the tools); and the timezone argument."""

from __future__ import annotations

from typing import Any

import pytest

from nexor_mcp.tools import TOOLS_BY_NAME, fields
from nexor_mcp.tools.arguments import InvalidArguments
from nexor_mcp.tools.history import utc_instant


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        ("2026-12-01T10:00:00", "America/Santiago", "2026-12-01T13:00:00Z"),  # southern summer, UTC-3
        ("2026-07-01T10:00:00", "America/Santiago", "2026-07-01T14:00:00Z"),  # southern winter, UTC-4
        ("2026-03-29T03:30:00", "Europe/Madrid", "2026-03-29T01:30:00Z"),  # just after the spring change
        ("2026-03-29T01:30:00", "Europe/Madrid", "2026-03-29T00:30:00Z"),  # just before it
        ("2026-12-01T10:00:00.250", None, "2026-12-01T10:00:00.250Z"),  # no zone: UTC, Nexor's default
        ("2026-12-01T10:00:00", "UTC", "2026-12-01T10:00:00Z"),
        ("2026-12-01T10:00:00-05:00", "America/Santiago", "2026-12-01T15:00:00Z"),  # an offset is the instant
        ("2026-12-01T10:00:00.000Z", "Asia/Tokyo", "2026-12-01T10:00:00Z"),
    ],
)
def test_the_instant_of_a_meeting_time(moment: str, zone: str | None, expected: str) -> None:
    assert utc_instant(moment, zone) == expected


@pytest.mark.parametrize(
    ("moment", "zone"),
    [("soon", "UTC"), (None, "UTC"), (1733050800, "UTC"), ("2026-12-01T10:00:00", "Mars/Base"),
     ("2026-12-01T10:00:00", "../../etc/passwd"), ("2026-12-01T10:00:00", 7), ("2026-12-01T10:00:00", "a\x00b")],
)
def test_what_cannot_be_read_is_null_never_a_guess(moment: Any, zone: Any) -> None:
    assert utc_instant(moment, zone) is None


ARGUMENTS = {"lead_id": "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b", "title": "Demo", "starts_at": "2026-12-01T10:00:00",
             "duration_minutes": 30}


def test_a_timezone_is_checked_against_the_iana_database() -> None:
    spec = TOOLS_BY_NAME["record_meeting"]
    assert spec.parse({**ARGUMENTS, "timezone": "America/Santiago"}).timezone == "America/Santiago"
    with pytest.raises(InvalidArguments) as info:
        spec.parse({**ARGUMENTS, "timezone": "Santiago"})
    assert 'timezone: expected an IANA time zone name like "America/Santiago", got string "Santiago"' in str(info.value)


def test_without_a_time_zone_database_the_name_is_left_to_nexor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows without the tzdata package knows no zone: refusing every name would refuse good ones."""
    monkeypatch.setattr(fields, "_zone_database", lambda: False)
    assert TOOLS_BY_NAME["record_meeting"].parse({**ARGUMENTS, "timezone": "Santiago"}).timezone == "Santiago"

"""Operational metrics: calls by tool and outcome, their latency, Nexor's answers, retries, calls in
flight. Served as Prometheus text at `/metrics` in hosted mode.

The recorder is a no-op until `enable_prometheus()` swaps in the real one, so stdio pays neither the
import of prometheus-client (~40 ms) nor a counter per call. With `--workers N` each worker keeps
its own numbers; scale by replicas (one process each) to scrape one series per process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Recorder:
    """What the server and the client report. This base records nothing."""

    @contextmanager
    def call(self, tool: str) -> Iterator[dict[str, str]]:
        """Wraps one tool call; the caller sets `outcome` in the yielded dict."""
        yield {}

    def nexor_answer(self, status: str) -> None:
        """One answer from Nexor: its HTTP status, or `timeout` / `connection_error`."""

    def retry(self) -> None:
        """One automatic retry."""

    def exposition(self) -> tuple[bytes, str]:
        return b"", "text/plain"


class PrometheusRecorder(Recorder):
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._registry = CollectorRegistry()
        self._calls = Counter(
            "nexor_mcp_tool_calls", "Tool calls by tool and outcome", ["tool", "outcome"], registry=self._registry
        )
        self._seconds = Histogram(
            "nexor_mcp_tool_call_seconds", "Tool call latency", ["tool"], registry=self._registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self._in_flight = Gauge("nexor_mcp_tool_calls_in_flight", "Tool calls running now", registry=self._registry)
        self._answers = Counter(
            "nexor_mcp_nexor_responses", "Answers from the Nexor API by HTTP status", ["status"],
            registry=self._registry,
        )
        self._retries = Counter(
            "nexor_mcp_nexor_retries", "Automatic retries of Nexor requests", registry=self._registry
        )

    @contextmanager
    def call(self, tool: str) -> Iterator[dict[str, str]]:
        outcome = {"outcome": "crashed"}
        started = time.perf_counter()
        self._in_flight.inc()
        try:
            yield outcome
        finally:
            self._in_flight.dec()
            self._seconds.labels(tool).observe(time.perf_counter() - started)
            self._calls.labels(tool, outcome["outcome"]).inc()

    def nexor_answer(self, status: str) -> None:
        self._answers.labels(status).inc()

    def retry(self) -> None:
        self._retries.inc()

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self._registry), CONTENT_TYPE_LATEST


current: Recorder = Recorder()


def enable_prometheus() -> Recorder:
    """Switch the process to recording metrics (hosted mode); returns the recorder."""
    global current
    if not isinstance(current, PrometheusRecorder):
        current = PrometheusRecorder()
    return current


def reset(recorder: Any = None) -> None:
    """Back to recording nothing (tests)."""
    global current
    current = recorder or Recorder()

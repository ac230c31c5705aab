"""Data-quality gate: Great Expectations suites generated from the data contracts (see gate.py, suites.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from jobs.quality.gate import GateReport, Outcome, QualityGateError, layer_tables, run_gate, write_results
from jobs.quality.suites import ExpectationSpec, Suite, suite_for
from storylake.settings import Settings

__all__ = [
    "ExpectationSpec",
    "GateReport",
    "Outcome",
    "QualityGateError",
    "Suite",
    "gate_hook",
    "layer_tables",
    "run_gate",
    "suite_for",
    "write_results",
]


def gate_hook(run_id: str | None = None) -> Callable[[Any, Settings, str], GateReport]:
    """A `gate` for pipeline.run.run_pipeline: `run_pipeline(settings, as_of, gate=gate_hook())`.

    The hook ignores the Spark session (the gate reads Delta through delta-rs) and raises QualityGateError on a
    critical failure, which stops the pipeline before publish. Without a run_id, one is made per hook.
    """
    import uuid
    from datetime import UTC, datetime

    rid = run_id or f"gate-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"

    def gate(_spark: Any, settings: Settings, layer: str, as_of: datetime | None = None) -> GateReport:
        return run_gate(settings, layer, rid, as_of=as_of)

    return gate

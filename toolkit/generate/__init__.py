"""Deterministic synthetic landing-event generator for the Stories product.

    from toolkit.generate import generate, FaultRates
    report = generate(Path("landing"), users=1_000, days=2, seed=7)

Modules: world (users, social graph, relationship changes), stories (posting), events (viewing sessions,
stickers, engagement), faults (fault injection), volume (volume calibration), render (JSON lines),
writer (landing files), generator (the hour-by-hour driver).
"""

from .faults import FAULT_KINDS, FaultRates
from .generator import DEFAULT_START, GenerateReport, generate
from .schema import EVENT_TYPES, FIELDS

__all__ = [
    "DEFAULT_START",
    "EVENT_TYPES",
    "FAULT_KINDS",
    "FIELDS",
    "FaultRates",
    "GenerateReport",
    "generate",
]

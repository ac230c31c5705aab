"""The audience rules of storylake/rules/audience.py as a truth table, for vectorised evaluation.

ALLOWED_SQL is a function of the fixed flag set audience.FLAGS only (seven booleans and the segment's
audience). DuckDB evaluates ALLOWED_SQL itself once for every combination (2^7 x audiences); the tray
then looks each (author, audience) up in that table with numpy instead of planning a SQL statement per
request. Nothing is restated here: change a rule in audience.py and the table follows.
"""

from __future__ import annotations

import functools
import itertools

import duckdb
import numpy as np

from storylake import contracts
from storylake.rules import audience
from storylake.rules.audience import ALLOWED_SQL, BOOL_FLAGS, DENIAL_REASON_SQL

AUDIENCES: tuple[str, ...] = tuple(contracts.get("silver.segments").column("audience").enum or ())


@functools.cache
def allowed_table() -> np.ndarray:
    """bool array indexed [audience_index, *BOOL_FLAGS as 0/1] -> ALLOWED_SQL."""
    return _table(ALLOWED_SQL, bool)


@functools.cache
def denial_table() -> np.ndarray:
    """object array with the same indexing -> DENIAL_REASON_SQL (None when allowed)."""
    return _table(DENIAL_REASON_SQL, object)


def _table(expr: str, dtype: type) -> np.ndarray:
    combos = list(itertools.product(range(len(AUDIENCES)), *([(0, 1)] * len(BOOL_FLAGS))))
    cols = ", ".join(f"c[{i + 2}]::BOOLEAN AS {name}" for i, name in enumerate(BOOL_FLAGS))
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT c, {expr} FROM (SELECT c, $aud[c[1] + 1] AS audience, {cols} FROM unnest($combos) AS t(c))",  # noqa: S608
            {"aud": list(AUDIENCES), "combos": [list(c) for c in combos]},
        ).fetchall()
    finally:
        con.close()
    out = np.empty((len(AUDIENCES),) + (2,) * len(BOOL_FLAGS), dtype=dtype)
    if len(rows) != len(combos):
        raise AssertionError("audience truth table is incomplete")
    for combo, value in rows:
        out[tuple(combo)] = value
    return out


# viewer_pairs.flag_code indexes PAIR_FLAGS: the relationship flags of audience.RELATION_FLAGS plus
# 'author_private' (the author's private intervals, joined onto follow edges at publish).
PAIR_FLAGS: tuple[str, ...] = (*audience.PAIR_FLAGS, audience.PRIVATE_FLAG)


def pair_flag_column(flag: str) -> int:
    """Index in BOOL_FLAGS that a viewer_pairs flag sets (audience.DERIVED_FLAGS: both blocked_* set 'blocked')."""
    return BOOL_FLAGS.index(audience.audience_flag(flag))

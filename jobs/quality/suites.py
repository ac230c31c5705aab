"""Expectation suites generated from the data contracts (never hand-written).

`suite_for(contract)` turns a contract into a list of `ExpectationSpec`s: plain data (type + kwargs), so the
generation is testable without Great Expectations; `gate.py` turns each spec into a GX 1.x expectation.

Per column:  required -> expect_column_values_to_not_be_null; unique -> expect_column_values_to_be_unique;
enum -> expect_column_values_to_be_in_set; minimum/maximum/exclusiveMaximum -> expect_column_values_to_be_between;
maxLength -> expect_column_value_lengths_to_be_between; pattern -> expect_column_values_to_match_regex.
sameInEveryRow (customProperties) -> expect_column_unique_value_count_to_be_between (at most one value).
Per table:   primaryKey -> expect_column_values_to_be_unique (one column) or expect_compound_columns_to_be_unique;
the contract's `quality` rules that `TABLE_RULES` knows how to express (see there). Nested (array/struct)
columns only get the null check. Every generated expectation is critical (a failure blocks publishing);
a contract rule can opt out with `critical: false`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from storylake.contracts import Contract
from storylake.rules.lifetimes import SEGMENT_LIFETIME

# A derived column: (input columns, pandas DataFrame -> Series). Derived names start with "_" so they can
# never clash with contract columns.
Derivation = tuple[tuple[str, ...], Callable[[Any], Any]]


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation of a generated suite: the GX expectation type (snake_case) and its kwargs."""

    type: str
    kwargs: dict[str, Any]
    critical: bool = True
    source: str = ""  # contract element it came from, e.g. "column completion_pct: maximum"
    derived: tuple[str, ...] = ()  # derived columns (see DERIVED) the expectation reads

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the expectation reads, in kwargs order."""
        kw = self.kwargs
        if "column" in kw:
            return (kw["column"],)
        if "column_list" in kw:
            return tuple(kw["column_list"])
        return tuple(kw[k] for k in ("column_A", "column_B") if k in kw)

    @property
    def name(self) -> str:
        """Stable, human-readable id, unique within a table's suite: `type(col1,col2)`."""
        return f"{self.type}({','.join(self.columns)})"


@dataclass(frozen=True)
class TableRule:
    """How a contract `quality` rule is expressed as an expectation (derived columns computed first)."""

    type: str
    kwargs: dict[str, Any]
    derived: dict[str, Derivation] = field(default_factory=dict)


def _plus(column: str, delta: timedelta) -> Derivation:
    return (column,), lambda df: df[column] + delta


def _sum(a: str, b: str) -> Derivation:
    return (a, b), lambda df: df[a] + df[b]


# Contract rule name -> expectation. A rule missing here is reported as "not expressible" by suite_for()
# (tests require every silver/gold rule to be expressible).
TABLE_RULES: dict[str, TableRule] = {
    "reach_le_impressions": TableRule(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "impressions", "column_B": "reach", "or_equal": True},
    ),
    "exit_viewers_le_reach": TableRule(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "reach", "column_B": "exit_viewers", "or_equal": True},
    ),
    "completed_views_le_story_views": TableRule(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "story_views", "column_B": "completed_views", "or_equal": True},
    ),
    "latest_day_before_before_day": TableRule(
        "expect_column_pair_values_a_to_be_greater_than_b",
        {"column_A": "before_day", "column_B": "latest_day", "or_equal": False},
    ),
    "expires_after_24h": TableRule(
        "expect_column_pair_values_to_be_equal",
        {"column_A": "expires_at", "column_B": "_created_at_plus_24h"},
        {"_created_at_plus_24h": _plus("created_at", SEGMENT_LIFETIME)},
    ),
    "lines_balance": TableRule(
        "expect_column_pair_values_to_be_equal",
        {"column_A": "lines", "column_B": "_rows_valid_plus_quarantined"},
        {"_rows_valid_plus_quarantined": _sum("rows_valid", "rows_quarantined")},
    ),
}


@dataclass(frozen=True)
class Suite:
    """The generated suite of one table: expectations + the contract rules that could not be expressed."""

    table: str  # "<layer>.<name>"
    expectations: tuple[ExpectationSpec, ...]
    key_columns: tuple[str, ...]  # primary key: identifies offending rows in reports
    derived: dict[str, Derivation] = field(default_factory=dict)
    not_expressible: tuple[str, ...] = ()
    same_in_every_row: tuple[str, ...] = ()  # columns holding one value in every row (a state table's bounds)

    def input_columns(self) -> list[str]:
        """Contract columns to load: those the expectations read, derivations' inputs and the key."""
        wanted: list[str] = []
        for spec in self.expectations:
            for c in spec.columns:
                wanted.extend(self.derived[c][0] if c in self.derived else (c,))
        wanted.extend(self.key_columns)
        return list(dict.fromkeys(wanted))


def _column_specs(contract: Contract) -> list[ExpectationSpec]:
    specs: list[ExpectationSpec] = []
    for col in contract.columns:
        c = col.name
        if col.required:
            specs.append(ExpectationSpec("expect_column_values_to_not_be_null", {"column": c},
                                         source=f"column {c}: required"))
        if col.physical_type in ("array", "struct"):
            continue
        if col.same_in_every_row:
            specs.append(ExpectationSpec("expect_column_unique_value_count_to_be_between",
                                         {"column": c, "min_value": None, "max_value": 1},
                                         source=f"column {c}: sameInEveryRow"))
        if col.unique:
            specs.append(ExpectationSpec("expect_column_values_to_be_unique", {"column": c},
                                         source=f"column {c}: unique"))
        if col.enum is not None:
            specs.append(ExpectationSpec("expect_column_values_to_be_in_set",
                                         {"column": c, "value_set": list(col.enum)}, source=f"column {c}: enum"))
        if col.minimum is not None or col.maximum is not None or col.exclusive_maximum is not None:
            kw: dict[str, Any] = {"column": c, "min_value": col.minimum, "max_value": col.maximum}
            if col.exclusive_maximum is not None and col.maximum is None:
                kw.update(max_value=col.exclusive_maximum, strict_max=True)
            bounds = [k for k, v in (("minimum", col.minimum), ("maximum", col.maximum),
                                     ("exclusiveMaximum", col.exclusive_maximum)) if v is not None]
            specs.append(ExpectationSpec("expect_column_values_to_be_between", kw,
                                         source=f"column {c}: {'/'.join(bounds)}"))
        if col.max_length is not None:
            specs.append(ExpectationSpec("expect_column_value_lengths_to_be_between",
                                         {"column": c, "min_value": None, "max_value": col.max_length},
                                         source=f"column {c}: maxLength"))
        if col.pattern is not None:
            specs.append(ExpectationSpec("expect_column_values_to_match_regex", {"column": c, "regex": col.pattern},
                                         source=f"column {c}: pattern"))
    return specs


def suite_for(contract: Contract) -> Suite:
    """The expectation suite of a contract's table (see the module docstring for the mapping)."""
    specs = _column_specs(contract)
    pk = contract.primary_key
    if len(pk) == 1:
        specs.append(ExpectationSpec("expect_column_values_to_be_unique", {"column": pk[0]}, source="primaryKey"))
    elif pk:
        specs.append(ExpectationSpec("expect_compound_columns_to_be_unique", {"column_list": list(pk)},
                                     source="primaryKey"))
    derived: dict[str, Derivation] = {}
    skipped: list[str] = []
    for rule in contract.critical_rules:
        name = str(rule["rule"])
        how = TABLE_RULES.get(name)
        if how is None:
            skipped.append(name)
            continue
        specs.append(ExpectationSpec(how.type, dict(how.kwargs), critical=bool(rule.get("critical", True)),
                                     source=f"rule {name}: {rule['description']}", derived=tuple(how.derived)))
        derived.update(how.derived)
    unique: dict[str, ExpectationSpec] = {}
    for spec in specs:  # unique: true on the primary key column gives the same expectation twice
        unique.setdefault(spec.name, spec)
    return Suite(
        table=f"{contract.layer}.{contract.name}",
        expectations=tuple(unique.values()),
        key_columns=pk,
        derived=derived,
        not_expressible=tuple(skipped),
        same_in_every_row=tuple(c.name for c in contract.columns if c.same_in_every_row),
    )

"""Silver and gold tables whose stored schema differs from their contract (a contract changed in an upgrade).

An incremental run replaces slices of a table under its stored schema, so a table whose contract gained, lost or
retyped a column cannot take the next run's slice. `conform_stored_schemas` rewrites each such table once in its
contract's schema (kept columns cast, new ones null, dropped ones removed: one Delta commit per table, through
delta-rs), and the run that found them (or a table the upgrade added) becomes a full refresh, which recomputes
every row bronze still holds the inputs of with the new definitions (rows older than the bronze retention floor
keep their values, new columns null).
"""

from __future__ import annotations

import logging

import pyarrow as pa
from deltalake import write_deltalake

from storylake import contracts, lake, merge_on_read
from storylake.settings import Settings

log = logging.getLogger(__name__)
LAYERS = ("silver", "gold")


def schema_drift(settings: Settings) -> dict[str, str]:
    """The silver and gold tables a run cannot replace slices of: {table: "schema"} when its stored columns (names
    and order) differ from its contract's, {table: "missing"} when a lake that has silver lacks it (a table an
    upgrade added: a slice would leave its older rows out)."""
    if settings.storage != "delta" or not lake.exists(settings.table_path("silver", "segments")):
        return {}
    from jobs.gold import GOLD_TABLES, REBUILT_WHEN_MISSING  # the gold tables a run builds (the ranking export is
    # built by its own DAG)

    out = {}
    for key, contract in sorted(contracts.load_all().items()):
        if contract.layer not in LAYERS or (contract.layer == "gold" and contract.name not in GOLD_TABLES):
            continue
        table = lake.open_table(settings.table_path(contract.layer, contract.name))
        if table is None:
            # a missing changes table of a merge-on-read table reads as none: its base is the whole table
            if (contract.layer != "gold" or contract.name not in REBUILT_WHEN_MISSING) \
                    and key not in merge_on_read.CHANGES_TABLES:
                out[key] = "missing"
        elif [f.name for f in table.schema().fields] != [c.name for c in contract.columns]:
            out[key] = "schema"
    return out


def conform_stored_schema(settings: Settings, key: str) -> dict[str, list[str]]:
    """Rewrite table `key` in its contract's schema; the columns added and dropped."""
    contract = contracts.get(key)
    path = settings.table_path(contract.layer, contract.name)
    dt = lake.open_table(path)
    assert dt is not None, key
    data = dt.to_pyarrow_table()
    schema = contract.arrow_schema()
    columns = [data.column(f.name).cast(f.type) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
               for f in schema]
    write_deltalake(str(path), pa.Table.from_arrays(columns, schema=schema), mode="overwrite",
                    schema_mode="overwrite")
    change = {"added": [f.name for f in schema if f.name not in data.column_names],
              "dropped": [n for n in data.column_names if n not in schema.names]}
    log.warning("%s rewritten in its contract's schema (%d rows): added %s, dropped %s", key, data.num_rows,
                change["added"] or "none", change["dropped"] or "none")
    return change


def conform_stored_schemas(settings: Settings) -> dict[str, str]:
    """Conform every silver/gold table stored in another schema; every drift found (a run after it must be a full
    refresh, which also creates the missing tables whole)."""
    drifted = schema_drift(settings)
    for key, kind in drifted.items():
        if kind == "schema":
            conform_stored_schema(settings, key)
    return drifted

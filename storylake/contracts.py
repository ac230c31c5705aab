"""Data contracts (ODCS-style YAML in data_contracts/): loading, linting and Arrow schemas.

The YAML files are the single source of truth: Arrow schemas (Delta/serving) are derived here; Spark schemas in
jobs/spark_schemas.py, msgspec validators in jobs/ingest/validate.py and Great Expectations suites in
jobs/quality/suites.py, all from the Contract objects loaded here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from storylake.errors import StorylakeError

# libyaml's safe loader when PyYAML was built with it (9x faster: every process parses the contracts), else PyYAML's
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "data_contracts"
SCALAR_TYPES = ("bigint", "int", "double", "string", "boolean", "timestamp", "date")
NESTED_TYPES = ("array", "struct")
LAYERS = ("landing", "bronze", "silver", "gold", "ops")
CLASSIFICATIONS = ("public", "internal", "pii", "sensitive")
# column customProperties the platform reads (ODCS v3 property-level customProperties: [{property, value}])
CUSTOM_PROPERTIES = ("sameInEveryRow",)
# The column of a gold row holding the as_of of the run that last changed it (the contracts' as_of descriptions):
# jobs/gold/touched.py stamps it, serving/recent_part.py scopes its patch by it.
CHANGED_AT = "as_of"
# Columns every bronze table adds to its landing event's columns.
BRONZE_METADATA = (
    ("_source_file", "string", "Landing file the line came from (relative to the landing root)."),
    ("_line", "bigint", "1-based line number within _source_file."),
    ("_ingested_at", "timestamp", "When the ingest batch committed (UTC)."),
    ("_batch_id", "string", "Ingest batch that wrote the row."),
)


class ContractError(StorylakeError, ValueError):
    """A contract file is invalid; the message names the file and the offending key/value."""


@dataclass(frozen=True)
class Column:
    name: str
    physical_type: str
    required: bool = False
    unique: bool = False
    description: str = ""
    unit: str | None = None
    classification: str = "internal"
    minimum: float | None = None
    maximum: float | None = None
    exclusive_maximum: float | None = None
    max_length: int | None = None
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    items: Column | None = None
    fields: tuple[Column, ...] = ()
    # a state table's bound (e.g. the day it is summed before): one value in every row (customProperties
    # sameInEveryRow); the gate checks that over the whole table and compares rows without it
    same_in_every_row: bool = False

    @property
    def is_pii(self) -> bool:
        return self.classification in ("pii", "sensitive")


@dataclass(frozen=True)
class Contract:
    id: str
    name: str
    layer: str
    description: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    partitioned_by: tuple[str, ...] = ()
    freshness_hours: float | None = None
    retention_days: float | None = None
    # the column whose age the retention is counted from (ODCS slaProperties `element`), None: not enforced by age
    retention_column: str | None = None
    critical_rules: tuple[dict[str, Any], ...] = ()
    path: Path | None = field(default=None, compare=False)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"contract {self.name!r} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of the table. Columns are nullable in storage (required-ness is checked by the
        contract gate), so schema evolution never meets Sail's non-nullable-column divergence."""
        return pa.schema([pa.field(c.name, arrow_type(c), nullable=True) for c in self.columns])


# --- type mapping ------------------------------------------------------------------------------

_ARROW_SCALARS: dict[str, pa.DataType] = {
    "bigint": pa.int64(),
    "int": pa.int32(),
    "double": pa.float64(),
    "string": pa.string(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
}


def arrow_type(c: Column) -> pa.DataType:
    if c.physical_type == "array":
        assert c.items is not None
        return pa.list_(pa.field("element", arrow_type(c.items), nullable=True))
    if c.physical_type == "struct":
        return pa.struct([pa.field(f.name, arrow_type(f), nullable=True) for f in c.fields])
    return _ARROW_SCALARS[c.physical_type]


# --- loading -----------------------------------------------------------------------------------


def _parse_column(raw: dict[str, Any], where: str) -> Column:
    if not isinstance(raw, dict) or "name" not in raw:
        raise ContractError(f"{where}: every property needs a 'name'")
    name = raw["name"]
    where = f"{where}.{name}"
    ptype = raw.get("physicalType")
    if ptype not in SCALAR_TYPES + NESTED_TYPES:
        raise ContractError(
            f"{where}: physicalType {ptype!r} is not one of {', '.join(SCALAR_TYPES + NESTED_TYPES)}"
        )
    opts = raw.get("logicalTypeOptions") or {}
    unknown = set(opts) - {"minimum", "maximum", "exclusiveMaximum", "maxLength", "enum", "pattern"}
    if unknown:
        raise ContractError(f"{where}: unknown logicalTypeOptions {sorted(unknown)}")
    classification = raw.get("classification", "internal")
    if classification not in CLASSIFICATIONS:
        raise ContractError(f"{where}: classification {classification!r} not in {CLASSIFICATIONS}")
    items = _parse_column({"name": "element", **raw["items"]}, where) if ptype == "array" else None
    if ptype == "array" and items is None:
        raise ContractError(f"{where}: an array needs 'items'")
    fields = tuple(_parse_column(f, where) for f in raw.get("properties") or ())
    custom = {}
    for entry in raw.get("customProperties") or ():
        if not isinstance(entry, dict) or set(entry) != {"property", "value"}:
            raise ContractError(f"{where}: each customProperties entry needs exactly 'property' and 'value'")
        if entry["property"] not in CUSTOM_PROPERTIES:
            raise ContractError(f"{where}: customProperties property {entry['property']!r} is not one of "
                                f"{', '.join(CUSTOM_PROPERTIES)}")
        if not isinstance(entry["value"], bool):
            raise ContractError(f"{where}: customProperties {entry['property']} must be true or false, "
                                f"got {entry['value']!r}")
        custom[entry["property"]] = entry["value"]
    if ptype == "struct" and not fields:
        raise ContractError(f"{where}: a struct needs 'properties'")
    enum = opts.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise ContractError(f"{where}: enum must be a non-empty list")
    for bound in ("minimum", "maximum", "exclusiveMaximum"):
        if bound in opts and ptype not in ("bigint", "int", "double"):
            raise ContractError(f"{where}: {bound} applies to numeric columns, not {ptype}")
    return Column(
        name=name,
        physical_type=ptype,
        required=bool(raw.get("required", False)),
        unique=bool(raw.get("unique", False)),
        description=str(raw.get("description", "")).strip(),
        unit=raw.get("unit"),
        classification=classification,
        minimum=opts.get("minimum"),
        maximum=opts.get("maximum"),
        exclusive_maximum=opts.get("exclusiveMaximum"),
        max_length=opts.get("maxLength"),
        enum=tuple(enum) if enum else None,
        pattern=opts.get("pattern"),
        items=items,
        fields=fields,
        same_in_every_row=custom.get("sameInEveryRow", False),
    )


def _sla(doc: dict[str, Any], prop: str, unit: str, where: str) -> float | None:
    for entry in doc.get("slaProperties") or ():
        if entry.get("property") == prop:
            if entry.get("unit") != unit:
                raise ContractError(f"{where}: slaProperties {prop} must be expressed in {unit!r}")
            return float(entry["value"])
    return None


def _sla_element(doc: dict[str, Any], prop: str, name: str, where: str) -> str | None:
    """The column an SLA property applies to: its ODCS `element` ("<table>.<column>"), None when not given."""
    for entry in doc.get("slaProperties") or ():
        if entry.get("property") == prop and entry.get("element"):
            table, _, column = str(entry["element"]).rpartition(".")
            if table != name or not column:
                raise ContractError(f"{where}: slaProperties {prop} element must be '{name}.<column>', "
                                    f"got {entry['element']!r}")
            return column
    return None


def parse_contract(path: Path, envelope: tuple[Column, ...] = ()) -> Contract:
    where = path.name
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ContractError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ContractError(f"{where}: top level must be a mapping")
    for key in ("apiVersion", "kind", "id", "name", "schema"):
        if key not in doc:
            raise ContractError(f"{where}: missing required key {key!r}")
    if doc["kind"] != "DataContract":
        raise ContractError(f"{where}: kind must be 'DataContract', got {doc['kind']!r}")
    layer = doc.get("dataProduct")
    if layer not in LAYERS:
        raise ContractError(f"{where}: dataProduct (layer) {layer!r} not in {LAYERS}")
    schema = doc["schema"]
    if not isinstance(schema, list) or len(schema) != 1:
        raise ContractError(f"{where}: schema must hold exactly one object")
    obj = schema[0]
    if obj.get("name") != doc["name"]:
        raise ContractError(f"{where}: schema[0].name {obj.get('name')!r} must equal name {doc['name']!r}")
    own = tuple(_parse_column(p, where) for p in obj.get("properties") or ())
    columns = (envelope if doc.get("extends") == "envelope" else ()) + own
    names = [c.name for c in columns]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractError(f"{where}: duplicate columns {dupes}")
    pk = tuple(obj.get("primaryKey") or ())
    part = tuple(obj.get("partitionedBy") or ())
    for key in pk + part:
        if key not in names:
            raise ContractError(f"{where}: key column {key!r} is not a property")
    rules = tuple(obj.get("quality") or ())
    for rule in rules:
        if "rule" not in rule or "description" not in rule:
            raise ContractError(f"{where}: each quality rule needs 'rule' and 'description'")
    return Contract(
        id=doc["id"],
        name=doc["name"],
        layer=layer,
        description=str((doc.get("description") or {}).get("purpose", "")).strip(),
        columns=columns,
        primary_key=pk,
        partitioned_by=part,
        freshness_hours=_sla(doc, "freshness", "h", where),
        retention_days=_sla(doc, "retention", "d", where),
        retention_column=_retention_column(doc, columns, where),
        critical_rules=rules,
        path=path,
    )


def _retention_column(doc: dict[str, Any], columns: tuple[Column, ...], where: str) -> str | None:
    column = _sla_element(doc, "retention", str(doc["name"]), where)
    if column is None:
        return None
    found = next((c for c in columns if c.name == column), None)
    if found is None or found.physical_type not in ("timestamp", "date"):
        raise ContractError(f"{where}: the retention element {column!r} must be a timestamp or date column")
    return column


def load_all(root: Path = CONTRACTS_DIR) -> dict[str, Contract]:
    """Every contract by '<layer>.<name>' (bronze contracts are derived from the landing ones); parsed once per
    process and folder (load_all() and load_all(CONTRACTS_DIR) share it)."""
    return _load_all(root.resolve())


@functools.cache
def _load_all(root: Path) -> dict[str, Contract]:
    env_path = root / "events" / "_envelope.yaml"
    envelope = parse_contract(env_path).columns if env_path.exists() else ()
    out: dict[str, Contract] = {}
    for path in sorted(root.rglob("*.yaml")):
        if path.name.startswith("_"):
            continue
        c = parse_contract(path, envelope)
        key = f"{c.layer}.{c.name}"
        if key in out:
            raise ContractError(f"{path.name}: contract {key} is defined twice")
        out[key] = c
        if c.layer == "landing":
            out[f"bronze.{c.name}"] = bronze_contract(c)
    return out


def bronze_contract(event: Contract) -> Contract:
    meta = tuple(
        Column(name=n, physical_type=t, required=True, description=d) for n, t, d in BRONZE_METADATA
    )
    cols = tuple(
        Column(**{**c.__dict__, "physical_type": "timestamp", "pattern": None})
        if c.name == "event_time"
        else c
        for c in event.columns
    )
    return Contract(
        id=event.id.replace(":landing:", ":bronze:"),
        name=event.name,
        layer="bronze",
        description=f"Typed, contract-valid {event.name} events as landed (duplicates kept). {event.description}",
        columns=cols + meta,
        primary_key=("_source_file", "_line"),
        freshness_hours=event.freshness_hours,
        retention_days=event.retention_days,
        retention_column="event_time",  # bronze ages by the event's time (the retention job also waits for the
        # rows to be aggregated and past the lateness window)
        critical_rules=event.critical_rules,
        path=event.path,
    )


def event_types(root: Path = CONTRACTS_DIR) -> tuple[str, ...]:
    return tuple(sorted(c.name for c in load_all(root).values() if c.layer == "landing"))


def get(key: str, root: Path = CONTRACTS_DIR) -> Contract:
    contracts = load_all(root)
    if key not in contracts:
        raise ContractError(f"no contract {key!r}; known: {', '.join(sorted(contracts))}")
    return contracts[key]


def lint(root: Path = CONTRACTS_DIR) -> list[str]:
    """Validate every contract; return human-readable problems (empty list = clean)."""
    _load_all.cache_clear()
    try:
        contracts = load_all(root)
    except ContractError as exc:
        return [str(exc)]
    problems: list[str] = []
    for key, c in sorted(contracts.items()):
        if not c.description:
            problems.append(f"{key}: description.purpose is empty")
        if c.layer != "bronze" and c.retention_days is None:
            problems.append(f"{key}: slaProperties needs a retention (unit d)")
        if c.layer in ("landing", "silver", "gold") and c.freshness_hours is None:
            problems.append(f"{key}: slaProperties needs a freshness (unit h)")
        for col in c.columns:
            if not col.description:
                problems.append(f"{key}.{col.name}: description is empty")
        if c.layer in ("silver", "gold") and not c.primary_key:
            problems.append(f"{key}: primaryKey is required for silver and gold tables")
    return problems

"""Ranking export: point-in-time tray training examples (DESIGN §5) as one Parquet file + a manifest.

One example per (viewer, author story) for every story whose 24 h window ended by as_of (story_end <= as_of)
and every viewer eligible at story_start: follows the author at story_start and the audience rules
(storylake.rules.audience.ALLOWED_SQL, flags at story_start) allow at least one of the story's segments; never the
author. label = the viewer has a counted view of the story. Features = ring_features_at(t = story_start):
events strictly before story_start only.

The silver inputs are pinned to the Delta versions recorded in the manifest (versionAsOf), so the manifest
names exactly the snapshot that produced the rows; each row carries as_of, feature_version and snapshot_id.
The rows are also written to gold.tray_training_set (whole-table overwrite), from which the Parquet file is
streamed in key order through DuckDB (bounded memory, one file: `pl.read_parquet(path)` / `pd.read_parquet`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import spark_io
from jobs.engine_workarounds import any_true
from jobs.gold import activity
from jobs.gold.output import write_gold
from jobs.gold.ring_features import FEATURE_VERSION, FEATURES, WINDOW_DAYS, ring_features_at
from jobs.gold.story_insights import stories
from jobs.relation_flags import relation_edges, relation_flags_at
from jobs.spark_schemas import spark_ddl_type
from storylake import audit, contracts, lake, merge_on_read
from storylake.clock import iso
from storylake.rules.audience import ALLOWED_SQL, BOOL_FLAGS, holds_at_sql
from storylake.settings import Settings

NAME = "tray_training_set"
DATA_FILE = f"{NAME}.parquet"
MANIFEST_FILE = "manifest.json"
SOURCES = ("segments", "view_events", "engagements", "relationships")
EXAMPLE_FEATURES = ("is_close_friends_story", *FEATURES)
ORDER = ("story_start", "story_id", "viewer_id")
_BATCH_ROWS = 64 * 1024


@dataclass(frozen=True)
class ExportManifest:
    """What an export produced and from what: written next to the data as manifest.json."""

    dataset: str
    data_file: str
    as_of: str
    rows: int
    positives: int
    label_rate: float | None
    feature_version: str
    snapshot_id: str
    point_in_time: str
    keys: list[str]
    label: dict[str, str]
    features: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    sources: dict[str, dict[str, Any]]
    gold_table: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


# --- pure transforms ---------------------------------------------------------------------------


def ended_stories(segments: DataFrame, as_of: datetime) -> DataFrame:
    """Stories whose 24 h window ended by as_of: story_id, author_id, story_start, story_end."""
    return (
        stories(segments, as_of)
        .filter(F.col("story_end") <= activity.instant(as_of))
        .select("story_id", "author_id", "story_start", "story_end")
    )


def eligible_viewers(segments: DataFrame, relationships: DataFrame, ended: DataFrame) -> DataFrame:
    """(viewer_id, story_id, ...) for every follower of the author at story_start (not the author) whom the
    audience rules allow, at story_start, to see at least one segment of the story; with is_close_friends_story
    = such an allowed segment is a close_friends one."""
    follows = relation_edges(relationships, ["follows"])
    candidates = (
        ended.alias("p")
        .join(
            follows.alias("r"),
            (F.col("author_id") == F.col("author_key")) & F.expr(holds_at_sql("r", "p.story_start")),
        )
        .filter(F.col("viewer_key") != F.col("author_id"))
        .select(
            F.col("viewer_key").alias("viewer_id"),
            "author_id",
            "story_id",
            "story_start",
            "story_end",
            F.col("story_start").alias("t"),
        )
        .distinct()
    )
    flags = relation_flags_at(relationships, candidates, BOOL_FLAGS)
    audiences = segments.select("story_id", "audience")
    allowed = (
        candidates.join(flags, ["viewer_id", "author_id", "t"])
        .join(audiences, "story_id")
        .withColumn("_allowed", F.expr(ALLOWED_SQL))
    )
    return (
        allowed.groupBy("viewer_id", "author_id", "story_id", "story_start", "story_end")
        .agg(
            any_true("_allowed").alias("_eligible"),
            any_true(F.col("_allowed") & (F.col("audience") == "close_friends")).alias("is_close_friends_story"),
        )
        .filter(F.col("_eligible"))
        .drop("_eligible")
    )


def training_examples(
    segments: DataFrame,
    view_events: DataFrame,
    engagements: DataFrame,
    relationships: DataFrame,
    as_of: datetime,
    snapshot_id: str = "",
) -> DataFrame:
    """The tray_training_set rows (contract columns) as of `as_of`."""
    segs = activity.known_segments(segments, as_of)
    examples = eligible_viewers(segs, relationships, ended_stories(segs, as_of))
    seen = (
        activity.with_story(activity.views_before(view_events, segs, as_of), segs)
        .select("viewer_id", "story_id")
        .distinct()
        .withColumn("label", F.lit(True))
    )
    points = examples.select("viewer_id", "author_id", F.col("story_start").alias("t"))
    features = ring_features_at(engagements, view_events, relationships, points).withColumnRenamed("t", "story_start")
    return (
        examples.join(features, ["viewer_id", "author_id", "story_start"], "left")
        .join(seen, ["viewer_id", "story_id"], "left")
        .withColumns(
            {
                "label": F.coalesce(F.col("label"), F.lit(False)),
                "as_of": activity.instant(as_of),
                "snapshot_id": F.lit(snapshot_id),
            }
        )
    )


# --- export ------------------------------------------------------------------------------------


def _read_pinned(spark: SparkSession, settings: Settings, name: str, versions: dict[str, int | None]) -> DataFrame:
    """silver.<name> at its Delta version in `versions` (the contract's empty frame when the table does not exist); a
    table stored merge-on-read from its base and its changes at theirs."""
    stored = merge_on_read.merged(f"silver.{name}")
    if stored is not None and settings.storage == "delta":
        changes = stored.changes.split(".")[1]
        return spark_io.read_merged(spark, settings, stored, (versions[name], versions.get(changes)))
    if versions[name] is None:
        return spark_io.read_table(spark, settings, "silver", name)
    return spark_io.read_version(spark, settings, "silver", name, versions[name])


def _pinned_versions(settings: Settings) -> dict[str, int | None]:
    """The versions of the silver sources consumers may read (storylake.audit), by table name, with the changes
    table of each source stored merge-on-read that the lake has."""
    keys = [f"silver.{name}" for name in SOURCES]
    for name in SOURCES:
        stored = merge_on_read.merged(f"silver.{name}")
        if stored is not None and lake.exists(stored.path(settings, changes=True)):
            keys.append(stored.changes)
    audited = audit.consumer_versions(settings, keys)
    return {key.split(".")[1]: version for key, version in audited.items()}


def snapshot_id_of(as_of: datetime, versions: dict[str, int | None]) -> str:
    """Deterministic id of (as_of, feature definitions, silver versions)."""
    key = json.dumps({"as_of": iso(as_of), "feature_version": FEATURE_VERSION, "sources": versions}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _write_parquet(table_path: Path, version: int, out: Path) -> None:
    """Stream the gold table (at `version`) into one Parquet file in key order, atomically."""
    import duckdb
    import pyarrow.parquet as pq

    dt = lake.open_table(table_path)
    assert dt is not None
    dt.load_as_version(version)
    schema = contracts.get(f"gold.{NAME}").arrow_schema()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("examples", dt.to_pyarrow_dataset())
        cols = ", ".join(f'"{name}"' for name in schema.names)
        reader = con.sql(f"SELECT {cols} FROM examples ORDER BY {', '.join(ORDER)}").fetch_record_batch(_BATCH_ROWS)  # noqa: S608
        tmp = out.with_name(out.name + ".tmp")
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in reader:
                writer.write_batch(batch.cast(schema))
        os.replace(tmp, out)
    finally:
        con.close()


def _feature_entry(contract: contracts.Contract, name: str) -> dict[str, Any]:
    col = contract.column(name)
    return {"name": name, "type": col.physical_type, "unit": col.unit, "definition": col.description}


def export_features(spark: SparkSession, settings: Settings, as_of: datetime, out_dir: Path | str) -> ExportManifest:
    """Build the training set as of `as_of` and write out_dir/tray_training_set.parquet + out_dir/manifest.json."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # the silver versions that passed their gate (storylake.audit), never a build that failed it
    versions = _pinned_versions(settings)
    snapshot_id = snapshot_id_of(as_of, versions)
    silver = {name: _read_pinned(spark, settings, name, versions) for name in SOURCES}
    df = training_examples(**silver, as_of=as_of, snapshot_id=snapshot_id)
    write_gold(df, settings, NAME)
    table_path = settings.table_path("gold", NAME)
    gold_version = lake.version(table_path)
    assert gold_version is not None
    data_path = out_dir / DATA_FILE
    _write_parquet(table_path, gold_version, data_path)

    labels = pq.read_table(data_path, columns=["label"]).column("label")
    rows, positives = labels.length(), int(pc.sum(labels.cast("int64")).as_py() or 0)
    contract = contracts.get(f"gold.{NAME}")
    manifest = ExportManifest(
        dataset=NAME,
        data_file=DATA_FILE,
        as_of=iso(as_of),
        rows=rows,
        positives=positives,
        label_rate=positives / rows if rows else None,
        feature_version=FEATURE_VERSION,
        snapshot_id=snapshot_id,
        point_in_time=(
            f"features of a row use only events strictly before its story_start (counts over [t - {WINDOW_DAYS} d, t),"
            " relationship state after every relationship event before t)"
        ),
        keys=list(contract.primary_key),
        label={"name": "label", "definition": contract.column("label").description},
        features=[_feature_entry(contract, name) for name in EXAMPLE_FEATURES],
        columns=[
            {"name": c.name, "type": spark_ddl_type(c), "description": c.description}
            for c in contract.columns
        ],
        sources={  # with the changes table of each source stored merge-on-read
            f"silver.{name}": {"path": str(settings.table_path("silver", name)), "delta_version": version}
            for name, version in versions.items()
        },
        gold_table={"name": f"gold.{NAME}", "path": str(table_path), "delta_version": gold_version},
    )
    tmp = out_dir / (MANIFEST_FILE + ".tmp")
    tmp.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(tmp, out_dir / MANIFEST_FILE)
    return manifest

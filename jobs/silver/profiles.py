"""silver.profiles: each user's latest public profile (seed: the Seen By list's `batch_get_profiles`).

The latest profile_updated event per user wins: greatest event_time, ties by the greatest event_id (a redelivery
repeats the event, so duplicates cannot change the result). A full refresh reads every bronze profile event before
as_of; an incremental run merges only the run's new bronze profile events (jobs.horizon.new_bronze) into the
profiles it already holds, which gives the same table because "latest per user" is associative: the cost is the
new events plus one pass over the users, never the profile history; only the users the new events name are folded
(merge), the others' rows are copied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobs import horizon as horizons
from jobs import spark_io
from jobs.horizon import Horizon
from storylake import increments, lake
from storylake.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EVENT = "profile_updated"


def latest(candidates: DataFrame) -> DataFrame:
    """One row per user_id from (user_id, username, profile_picture_media_id, updated_at, event_id) candidates:
    the greatest (updated_at, event_id)."""
    from pyspark.sql import functions as F

    best = F.max(F.struct("updated_at", "event_id", "username", "profile_picture_media_id")).alias("p")
    return candidates.groupBy("user_id").agg(best).select(
        "user_id", "p.username", "p.profile_picture_media_id", "p.updated_at", "p.event_id"
    )


def from_bronze(events: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return events.select("user_id", "username", "profile_picture_media_id",  # COLUMNS, in order
                         F.col("event_time").alias("updated_at"), "event_id")


def run(spark: SparkSession, settings: Settings, horizon: Horizon) -> dict[str, int]:
    path = settings.table_path("silver", "profiles")
    previous = increments.last(settings)
    # a run planned for a later as_of since the last good one may have folded in later profile events, which a merge
    # cannot take back: the profiles are then folded again from bronze cut at as_of
    if (horizon.full or previous is None or not lake.exists(path)
            or increments.attempt_after(settings, horizon.as_of) is not None):
        events = horizons.read_bronze(spark, settings, EVENT, horizons.full(horizon.as_of, horizon.upto_batch))
        out = latest(from_bronze(events))
        return {"profiles": spark_io.write_table(out, settings, "silver", "profiles")}
    new = horizons.new_bronze(spark, settings, EVENT, previous, horizon.as_of, horizon.upto_batch)
    with spark_io.scratch(settings) as materialize:
        new_rows = materialize(from_bronze(new), "new_profiles")
        return {"profiles": spark_io.overwrite_from_current(
            spark, settings, "silver", "profiles", lambda held: merge(held.select(*COLUMNS), new_rows), materialize)}


def merge(held: DataFrame, new: DataFrame) -> DataFrame:
    """latest() of `held` (one row per user) and `new` (candidates), folding only the users `new` names: the other
    users' rows pass through as they are (one row each already), so an hour's few updates do not aggregate every
    profile (the struct aggregate costs ~5 s over 500k profiles on Sail)."""
    from pyspark.sql import functions as F

    from jobs.engine_workarounds import lookup

    touched = new.select(F.col("user_id").alias("_t_uid")).distinct().withColumn("_t_hit", F.lit(True))
    marked = lookup(held, touched, F.col("user_id").eqNullSafe(F.col("_t_uid")))
    kept = marked.filter(F.col("_t_hit").isNull()).select(*COLUMNS)
    folded = latest(new.select(*COLUMNS).unionByName(marked.filter(F.col("_t_hit")).select(*COLUMNS)))
    return kept.unionByName(folded)


COLUMNS = ("user_id", "username", "profile_picture_media_id", "updated_at", "event_id")

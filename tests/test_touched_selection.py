"""jobs.silver.touched.touched_receipts: the receipts of an incremental run's touched keys, found from the deliveries
of the events those keys' rows name, equal the touched keys' receipts among all rows deduplicated."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.silver import touched as touch
from jobs.silver.dedupe import dedupe_event_id
from jobs.silver.view_events import RETRY_DEDUPE
from tests.bronze_builders import T0, H, bronze

GROUP = RETRY_DEDUPE[0]  # (segment_id, idempotency_key, viewer_id)


def keys_of(spark: Any, views: Any, groups: list[tuple], segments: list[int], pairs: list[tuple]) -> touch.Touched:
    """Touched keys: the retry groups `groups` (hashed as touched() hashes them), the segments and (segment, viewer)
    pairs."""
    from pyspark.sql import functions as F

    wanted = spark.createDataFrame(groups, "_g_seg bigint, _g_key string, _g_viewer bigint")
    on = ((F.col("segment_id") == F.col("_g_seg")) & F.col("idempotency_key").eqNullSafe(F.col("_g_key"))
          & (F.col("viewer_id") == F.col("_g_viewer")))
    hashes = views.join(wanted, on, "inner").select(F.xxhash64(*GROUP).alias("_k_group")).distinct()
    return touch.Touched(
        table="view_events", group=list(GROUP), viewer="viewer_id",
        segments=spark.createDataFrame([(s,) for s in segments], "_k_segment bigint"),
        pairs=spark.createDataFrame(pairs, "_k_psegment bigint, _k_pviewer bigint"),
        groups=hashes, good_version=0)


def lineage(df: Any) -> list[tuple]:
    return sorted((r["event_id"], r["_source_file"], r["_line"]) for r in df.collect())


def view(event_id: str, seg: int, viewer: int, key: str, source: str, line: int) -> dict[str, Any]:
    return {"event_id": event_id, "segment_id": seg, "viewer_id": viewer, "idempotency_key": key,
            "event_time": T0 + H, "_source_file": source, "_line": line}


def test_an_event_counts_in_the_group_of_its_first_delivery_only(spark: Any) -> None:
    """e1 was first delivered in an untouched group (segment 2) and again in a touched segment (1): no receipt of
    segment 1. e2's deliveries are in a touched group (its first) and an untouched one: the first is the receipt.
    e3 is the touched pair's own; e4 touches nothing."""
    views = bronze(spark, "segment_view", [
        view("e1", 2, 10, "k1", "a.jsonl", 1), view("e1", 1, 10, "k1", "b.jsonl", 1),
        view("e2", 3, 11, "k2", "a.jsonl", 2), view("e2", 4, 11, "k2", "b.jsonl", 2),
        view("e3", 5, 12, "k3", "a.jsonl", 3), view("e4", 6, 13, "k4", "a.jsonl", 4),
    ])
    keys = keys_of(spark, views, groups=[(3, "k2", 11)], segments=[1], pairs=[(5, 12)])
    got = lineage(touch.touched_receipts(views, keys))
    assert got == [("e2", "a.jsonl", 2), ("e3", "a.jsonl", 3)]
    assert got == lineage(touch.select(dedupe_event_id(views), keys))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.tuples(st.sampled_from(["e0", "e1", "e2", "e3", "e4"]), st.integers(1, 3), st.integers(1, 2),
                       st.sampled_from(["k0", "k1"]), st.sampled_from(["a.jsonl", "b.jsonl"])), max_size=10),
    st.lists(st.tuples(st.integers(1, 3), st.sampled_from(["k0", "k1"]), st.integers(1, 2)), max_size=3),
    st.lists(st.integers(1, 3), max_size=2),
    st.lists(st.tuples(st.integers(1, 3), st.integers(1, 2)), max_size=2),
)
def test_property_touched_receipts_equal_the_touched_keys_of_all_receipts(
        spark: Any, deliveries: list[tuple], groups: list[tuple], segments: list[int], pairs: list[tuple]) -> None:
    views = bronze(spark, "segment_view", [view(e, seg, viewer, key, source, line)
                                           for line, (e, seg, viewer, key, source) in enumerate(deliveries)])
    keys = keys_of(spark, views, groups, segments, pairs)
    assert lineage(touch.touched_receipts(views, keys)) == lineage(touch.select(dedupe_event_id(views), keys))

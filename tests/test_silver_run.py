"""build_silver end to end through Delta in a temp lake: counts, as_of cut, quarantine stages, rerun idempotency."""

from __future__ import annotations

from datetime import UTC, datetime

from jobs import spark_io
from jobs.silver import build_silver
from jobs.spark_schemas import spark_schema
from storylake import contracts, lake, merge_on_read
from tests.bronze_builders import MS, T0, H, bronze, sticker

AS_OF = T0 + 60 * H
SILVER = ("segments", "relationships", "view_events", "segment_viewers", "navigation", "sticker_responses",
          "engagements")


def seed_lake(spark, settings):
    data = {
        "segment_created": [
            {"event_id": "c1", "event_time": T0, "segment_id": 1, "author_id": 1, "audience": "close_friends",
             "stickers": [sticker(10, "poll", ["a", "b"])]},
            {"event_id": "c2", "event_time": T0 + H, "segment_id": 2, "author_id": 1},
            {"event_id": "c9", "event_time": AS_OF, "segment_id": 9, "author_id": 1},  # not before as_of: ignored
        ],
        "segment_deleted": [{"event_id": "d1", "event_time": T0 + 2 * H, "segment_id": 2, "author_id": 5}],
        "segment_archived": [],
        "relationship": [
            {"event_id": "r1", "event_time": T0 - H, "kind": "close_friend_add", "user_id": 1, "other_user_id": 2},
            {"event_id": "r2", "event_time": T0 - H, "kind": "follow", "user_id": 2, "other_user_id": 1},
        ],
        "segment_view": [
            {"event_id": "v1", "event_time": T0 + H, "segment_id": 1, "viewer_id": 2},
            {"event_id": "v1", "event_time": T0 + H, "segment_id": 1, "viewer_id": 2},
            {"event_id": "v2", "event_time": T0 + H, "segment_id": 1, "viewer_id": 3},  # not a close friend
            {"event_id": "v3", "event_time": T0 + 25 * H + MS, "segment_id": 2, "viewer_id": 2},  # expired
            {"event_id": "v4", "event_time": AS_OF - H, "segment_id": 77, "viewer_id": 2},  # unknown segment
        ],
        "navigation": [{"event_id": "n1", "event_time": T0 + H, "segment_id": 1, "viewer_id": 2}],
        "sticker_interaction": [
            {"event_id": "s1", "event_time": T0 + H, "sticker_id": 10, "segment_id": 1, "user_id": 2,
             "sticker_type": "poll", "option_index": 1},
            {"event_id": "s2", "event_time": T0 + H, "sticker_id": 10, "segment_id": 1, "user_id": 3,
             "sticker_type": "poll", "option_index": 5},
        ],
        "engagement": [{"event_id": "g1", "event_time": T0 + H, "kind": "reply", "actor_id": 2, "target_user_id": 1,
                        "segment_id": 1}],
    }
    for event, rows in data.items():
        spark_io.write_table(bronze(spark, event, rows), settings, "bronze", event)
    ingest_row = [("ingest", "landing.segment_view", "f.jsonl", 3, None, "malformed_json", "$", "bad json", "{",
                   "batch-1", T0, None)]
    spark_io.write_table(
        spark.createDataFrame(ingest_row, spark_schema(contracts.get("ops.quarantine"))), settings, "ops", "quarantine"
    )


def snapshot(settings):
    """Every silver table (as its readers see it) and the quarantine as sorted Python rows, read with delta-rs (no
    Spark)."""
    out = {}
    for name in SILVER:
        out[name] = sorted(map(repr, merge_on_read.read_table(settings, f"silver.{name}").to_pylist()))
    out["quarantine"] = sorted(map(repr, lake.read_arrow(settings.table_path("ops", "quarantine")).to_pylist()))
    return out


def test_build_silver_counts_and_rerun_is_idempotent(spark, settings):
    seed_lake(spark, settings)
    first = build_silver(spark, settings, AS_OF)
    assert first == {
        "segments": 2, "quarantine.segments": 1, "relationships": 2, "relationships_changes": 0, "profiles": 0,
        "view_events": 1,
        "quarantine.view_events": 3, "segment_viewers": 1, "navigation": 1, "sticker_responses": 1,
        "quarantine.sticker_responses": 1, "engagements": 1,
    } | {"quarantine.navigation": 0, "quarantine.engagements": 0}
    snap = snapshot(settings)
    second = build_silver(spark, settings, AS_OF)
    assert second == first
    assert snapshot(settings) == snap
    # each stage replaced only its own quarantine rows: no duplicates after the rerun, ingest's row untouched
    q = lake.read_arrow(settings.table_path("ops", "quarantine")).to_pylist()
    got = sorted((r["stage"], r["event_id"], r["rule"]) for r in q)
    assert got == [
        ("ingest", None, "malformed_json"),
        ("silver.segments", "d1", "delete_not_by_author"),
        ("silver.sticker_responses", "s2", "not_close_friend"),  # the audience is checked before the sticker
        ("silver.view_events", "v2", "not_close_friend"),
        ("silver.view_events", "v3", "outside_lifetime"),
        ("silver.view_events", "v4", "unknown_segment"),
    ]
    silver_rows = [r for r in q if r["stage"] != "ingest"]
    assert {r["batch_id"] for r in silver_rows} == {"silver@2026-11-03T22:00:00Z"}
    assert {r["quarantined_at"] for r in silver_rows} == {datetime(2026, 11, 3, 22, tzinfo=UTC)}


def test_later_run_releases_the_receipt_of_a_late_segment(spark, settings):
    seed_lake(spark, settings)
    build_silver(spark, settings, AS_OF)
    # the late segment_created for segment 77 lands: the next run turns the quarantined receipt into a view
    late = bronze(spark, "segment_created", [{"event_id": "c77", "event_time": AS_OF - 2 * H, "segment_id": 77,
                                              "author_id": 4}])
    late.write.format("delta").mode("append").save(str(settings.table_path("bronze", "segment_created")))
    counts = build_silver(spark, settings, AS_OF + H)
    assert counts["view_events"] == 2
    views = lake.read_arrow(settings.table_path("silver", "view_events")).to_pylist()
    assert sorted(v["event_id"] for v in views) == ["v1", "v4"]
    q = lake.read_arrow(settings.table_path("ops", "quarantine")).to_pylist()
    assert "v4" not in {r["event_id"] for r in q}

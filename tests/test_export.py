"""Ranking export: eligibility at story_start, labels, point-in-time features, Parquet + manifest."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pytest

from jobs import spark_io
from jobs.export import DATA_FILE, MANIFEST_FILE, export_features, training_examples
from jobs.gold.ring_features import FEATURE_VERSION, FEATURES
from storylake import contracts, lake
from tests.test_gold_builders import T0, US, D, H, collect, engagement, frames, relation, segment, view

AUTHOR = 1
CF, FOLLOWER, BLOCKED, STRANGER, HIDDEN, PRIVATE_FAN = 10, 11, 12, 13, 14, 15
A_START = T0 + 40 * D
B_START = A_START + 3 * D
# Story A: a public frame then a close-friends frame. Story B: close friends only. Story C: still live.
A1 = segment(100, AUTHOR, A_START, story_id=100, frame_index=1)
A2 = segment(101, AUTHOR, A_START + H, story_id=100, frame_index=2, story_start=A_START, audience="close_friends")
B1 = segment(300, AUTHOR, B_START, story_id=300, audience="close_friends")
AS_OF = B_START + 30 * H
C1 = segment(500, AUTHOR, AS_OF - 2 * H, story_id=500)
SEGMENTS = [A1, A2, B1, C1]

LONG_AGO = T0
RELATIONSHIPS = [
    *[relation("follow", v, AUTHOR, LONG_AGO) for v in (CF, FOLLOWER, BLOCKED, HIDDEN)],
    relation("follow", AUTHOR, AUTHOR, LONG_AGO),  # a self edge must not make the author a candidate
    relation("close_friend", AUTHOR, CF, LONG_AGO),
    relation("block", AUTHOR, BLOCKED, LONG_AGO),
    relation("hide", AUTHOR, HIDDEN, LONG_AGO),
    relation("follow", STRANGER, 2, LONG_AGO),  # follows somebody else
]
ENGAGEMENTS = [
    engagement("dm_sent", CF, AUTHOR, A_START - H),  # before story A: in A's features
    engagement("dm_sent", CF, AUTHOR, A_START),  # at story_start: not in A's features
    engagement("dm_sent", CF, AUTHOR, A_START + H),  # after: not in A's, in B's
    engagement("like", FOLLOWER, AUTHOR, A_START - 2 * D),
]
VIEWS = [
    view(A2, CF, A_START + 2 * H),  # CF saw story A (its second frame)
    view(A1, CF, A_START - 0 * H + 3 * H, completion=0.5),
    view(B1, CF, B_START + H),
]


@pytest.fixture(scope="module")
def silver(spark):
    return frames(spark, segments=SEGMENTS, view_events=VIEWS, engagements=ENGAGEMENTS, relationships=RELATIONSHIPS)


def examples(silver, **overrides):
    args = {k: silver[k] for k in ("segments", "view_events", "engagements", "relationships")}
    return collect(training_examples(**{**args, **overrides}, as_of=AS_OF), ["viewer_id", "story_id"])


@pytest.fixture(scope="module")
def rows(silver):
    return examples(silver)


def test_export_one_row_per_eligible_viewer_and_ended_story(rows):
    # story A: close friend + plain follower; blocked, hidden, stranger, the author absent. Story B: close friend
    # only. Story C has not ended by as_of.
    assert sorted(rows) == [(CF, 100), (CF, 300), (FOLLOWER, 100)]


def test_export_close_friends_story_excludes_a_follower_not_on_the_list(rows):
    assert (FOLLOWER, 300) not in rows
    assert rows[(CF, 300)]["is_close_friends_story"] is True
    assert rows[(CF, 100)]["is_close_friends_story"] is True  # A2 is close friends and CF may see it
    assert rows[(FOLLOWER, 100)]["is_close_friends_story"] is False


def test_export_label_is_a_view_of_any_segment_of_the_story(rows):
    assert (rows[(CF, 100)]["label"], rows[(CF, 300)]["label"], rows[(FOLLOWER, 100)]["label"]) == (True, True, False)


def test_export_features_are_as_of_story_start(rows):
    a, b = rows[(CF, 100)], rows[(CF, 300)]
    assert (a["story_start"], a["story_end"]) == (A_START.replace(tzinfo=None), (A_START + 25 * H).replace(tzinfo=None))
    assert (a["dm_count_30d"], a["story_views_30d"], a["is_close_friend"], a["follows"]) == (1, 0, True, True)
    # before story B: all three DMs; story A's two views (one completed)
    assert (b["dm_count_30d"], b["story_views_30d"], b["completion_rate_30d"]) == (3, 2, 0.5)
    assert rows[(FOLLOWER, 100)]["likes_given_30d"] == 1
    assert {r["feature_version"] for r in rows.values()} == {FEATURE_VERSION}


def test_export_no_leakage_engagement_at_or_after_story_start_changes_nothing(spark, silver, rows):
    late = [
        engagement(kind, v, AUTHOR, A_START + dt)
        for v in (CF, FOLLOWER)
        for kind in ("dm_sent", "like", "comment", "reply", "profile_visit")
        for dt in (0 * H, US, 5 * H)
    ]
    late_views = [view(A1, FOLLOWER, A_START)]  # a view exactly at story_start: label yes, features no
    more = examples(
        silver,
        engagements=silver["engagements"].unionByName(frames(spark, engagements=late)["engagements"]),
        view_events=silver["view_events"].unionByName(frames(spark, view_events=late_views)["view_events"]),
    )
    for key in ((CF, 100), (FOLLOWER, 100)):
        assert {f: more[key][f] for f in FEATURES} == {f: rows[key][f] for f in FEATURES}
    assert more[(FOLLOWER, 100)]["label"] is True


def test_export_eligibility_uses_relationships_at_story_start(spark, silver):
    later = frames(
        spark,
        relationships=[
            relation("follow", STRANGER, AUTHOR, A_START + H),  # follows only after story A started
            relation("follow", PRIVATE_FAN, AUTHOR, LONG_AGO),
            relation("private", AUTHOR, 0, A_START - D, A_START + D),  # private at A's start, public again by B
            relation("approved", AUTHOR, CF, LONG_AGO),
        ],
    )["relationships"]
    got = examples(silver, relationships=silver["relationships"].unionByName(later))
    # private at A's start: only the approved close friend remains; STRANGER followed too late for A, and B is
    # close friends only
    assert sorted(got) == [(CF, 100), (CF, 300)]


def test_export_writes_parquet_and_manifest(spark, settings, silver, tmp_path):
    for name in ("segments", "view_events", "engagements", "relationships"):
        spark_io.write_table(silver[name], settings, "silver", name)
    spark_io.write_table(silver["engagements"], settings, "silver", "engagements")  # version 1
    out = tmp_path / "out"
    manifest = export_features(spark, settings, AS_OF, out)

    df = pl.read_parquet(out / DATA_FILE)
    assert df.height == 3 == len(pd.read_parquet(out / DATA_FILE))
    assert df.columns == list(contracts.get("gold.tray_training_set").column_names)
    assert df.select("viewer_id", "story_id").rows() == [(CF, 100), (FOLLOWER, 100), (CF, 300)]  # story_start order
    assert df["snapshot_id"].unique().to_list() == [manifest.snapshot_id]

    doc = json.loads((out / MANIFEST_FILE).read_text())
    assert doc["as_of"] == AS_OF.isoformat().replace("+00:00", "Z")
    assert (doc["rows"], doc["positives"], doc["label_rate"]) == (3, 2, pytest.approx(2 / 3))
    assert doc["feature_version"] == FEATURE_VERSION and doc["data_file"] == DATA_FILE
    contract = contracts.get("gold.tray_training_set")
    assert [f["name"] for f in doc["features"]] == ["is_close_friends_story", *FEATURES]
    assert all(f["definition"] == contract.column(f["name"]).description for f in doc["features"])
    versions = {k: v["delta_version"] for k, v in doc["sources"].items()}
    assert versions == {"silver.segments": 0, "silver.view_events": 0, "silver.engagements": 1,
                        "silver.relationships": 0}  # fmt: skip
    assert doc["gold_table"]["delta_version"] == lake.version(settings.table_path("gold", "tray_training_set"))
    assert doc == json.loads(manifest.to_json())


def test_export_rerun_gives_identical_file_and_snapshot(spark, settings, silver, tmp_path):
    for name in ("segments", "view_events", "engagements", "relationships"):
        spark_io.write_table(silver[name], settings, "silver", name)
    first = export_features(spark, settings, AS_OF, tmp_path / "a")
    second = export_features(spark, settings, AS_OF, tmp_path / "b")
    assert first.snapshot_id == second.snapshot_id
    assert pl.read_parquet(tmp_path / "a" / DATA_FILE).equals(pl.read_parquet(tmp_path / "b" / DATA_FILE))


def test_export_with_no_silver_tables_writes_an_empty_set(spark, settings, tmp_path):
    manifest = export_features(spark, settings, AS_OF, tmp_path)
    assert (manifest.rows, manifest.label_rate) == (0, None)
    assert pl.read_parquet(tmp_path / DATA_FILE).height == 0

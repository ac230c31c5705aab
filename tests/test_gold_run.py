"""build_gold through real Delta tables: every gold table written in its contract schema, reruns identical."""

from __future__ import annotations

import pytest

from jobs import spark_io
from jobs.gold import GOLD_TABLES, build_gold
from storylake import contracts, lake
from tests.test_gold_builders import SILVER, T0, H, engagement, frames, nav, relation, response, segment, view

AS_OF = T0 + 30 * H
SEG = segment(1, 7, T0, stickers=[{"sticker_id": 50, "type": "poll", "options": ["a", "b"]}])
SEG2 = segment(2, 7, T0 + H, story_id=1, frame_index=2, story_start=T0)
ROWS = {
    "segments": [SEG, SEG2],
    "view_events": [view(SEG, 9, T0 + H), view(SEG2, 9, T0 + 2 * H), view(SEG, 8, T0 + H, completion=0.4)],
    "navigation": [nav(SEG, 9, "tap_forward", T0 + H)],
    "engagements": [engagement("reply", 9, 7, T0 + H, SEG), engagement("dm_sent", 9, 7, T0)],
    "sticker_responses": [response(SEG, 50, 9, T0 + H, option_index=1)],
    "relationships": [relation("follow", 9, 7, T0 - H), relation("follow", 8, 7, T0 - H)],
}


def _sorted_table(settings, name):
    table = lake.read_arrow(settings.table_path("gold", name))
    assert table is not None
    return table.sort_by([(c, "ascending") for c in contracts.get(f"gold.{name}").primary_key])


@pytest.fixture()
def lake_with_silver(spark, settings):
    for name, df in frames(spark, **ROWS).items():
        spark_io.write_table(df, settings, "silver", name)
    return settings


def test_build_gold_writes_every_table_in_its_contract_schema(spark, lake_with_silver):
    settings = lake_with_silver
    rows = build_gold(spark, settings, AS_OF)
    # 2 segments, 1 story, 1 author-day with 2 viewers, 2 author-hours (T0 + 1 h, T0 + 2 h), 1 sticker, pairs (9, 7)
    # and (8, 7), each with signals on one day; no view or signal before the day of as_of - 48 h, which the
    # pairs' latest days and signal sums are sealed before; a first run writes the ring features' base, no changes
    assert rows == {"segment_insights": 2, "story_insights": 1, "author_daily_insights": 1, "author_viewer_days": 2,
                    "author_viewer_latest": 0, "author_hourly_insights": 2, "sticker_results": 1, "ring_signal_days": 2,
                    "ring_signal_sums": 0, "ring_features": 2, "ring_features_changes": 0}  # fmt: skip
    for name in GOLD_TABLES:
        table = lake.read_arrow(settings.table_path("gold", name))
        assert table is not None and table.schema == contracts.get(f"gold.{name}").arrow_schema(), name
    story = lake.read_arrow(settings.table_path("gold", "story_insights")).to_pylist()[0]
    assert (story["reach"], story["impressions"], story["completed_viewers"], story["replies"]) == (2, 3, 1, 1)


def test_build_gold_rerun_gives_identical_contents(spark, lake_with_silver):
    settings = lake_with_silver
    build_gold(spark, settings, AS_OF)
    first = {name: _sorted_table(settings, name) for name in GOLD_TABLES}
    build_gold(spark, settings, AS_OF)
    for name in GOLD_TABLES:
        assert _sorted_table(settings, name).equals(first[name]), name


def test_build_gold_on_an_empty_lake_writes_empty_tables(spark, settings):
    assert build_gold(spark, settings, AS_OF) == dict.fromkeys(GOLD_TABLES, 0)
    assert all(lake.exists(settings.table_path("gold", name)) for name in GOLD_TABLES)
    assert set(SILVER) >= {"segments", "view_events"}

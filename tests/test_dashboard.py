"""Streamlit dashboards (dashboards/app.py) under streamlit.testing.v1.AppTest, on a small real lake and
published snapshot (tests/sample_lake.py: creators 1001 "A" and 2002 "B" with disjoint ids and figures).

Smoke tests for every page, interaction tests asserting that what renders equals the serving API's values,
sign-in (dev mode and OIDC through st.user/secrets) and authorization: signed in as A, nothing rendered
anywhere belongs to B, also after B used the app in the same process (cache isolation).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import cached, launch, signin
from serving import api
from serving import dashboard_queries as q
from storylake.errors import NotFoundError
from storylake.settings import Settings
from tests import sample_lake
from tests.sample_lake import AS_OF, AUTHOR_A, AUTHOR_B

APP = Path(__file__).resolve().parent.parent / "dashboards" / "app.py"
CREATOR_PAGES = {
    "creator/overview.py": "Overview",
    "creator/story.py": "Story detail",
    "creator/seen_by.py": "Seen By",
    "creator/stickers.py": "Stickers",
}
OPS_PAGE = "ops/health.py"
NEW_CREATOR = 9999  # mapped in OIDC, no segment in the snapshot yet
AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "test-cookie-secret",
    "client_id": "storylake-test",
    "client_secret": "test-secret",
    "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration",
}
OIDC_SECRETS = {
    "auth": AUTH,
    "storylake": {
        "operators": ["ops@example.com"],
        "users": {"a@example.com": AUTHOR_A, "sub-of-b": AUTHOR_B, "new@example.com": NEW_CREATOR},
    },
}
OIDC_USERS = {
    AUTHOR_A: {"is_logged_in": True, "email": "a@example.com", "sub": "sub-of-a", "email_verified": True},
    AUTHOR_B: {"is_logged_in": True, "email": "b@example.com", "sub": "sub-of-b", "email_verified": True},
}


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(lake=tmp_path_factory.mktemp("dashboard") / "lake")
    sample_lake.build(settings)
    return settings


@pytest.fixture()
def env(lake: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("STORYLAKE_LAKE", str(lake.lake))
    for var in ("STORYLAKE_NOW", "STORYLAKE_REQUIRE_AUTH"):
        monkeypatch.delenv(var, raising=False)
    return lake


@pytest.fixture()
def snap(lake: Settings) -> api.Snapshot:
    return api.open_current(lake)


def new_app(secrets: dict[str, Any] | None = None, user: dict[str, Any] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.secrets = secrets or {"storylake": {}}  # hermetic: never the developer's own secrets.toml
    if user is not None:
        at.user = user
    return at


def dev_app(user_id: int) -> AppTest:
    at = new_app().run()
    at.selectbox(key=signin.DEV_USER_KEY).set_value(user_id).run()
    assert_ok(at)
    return at


def oidc_app(user_id: int) -> AppTest:
    return new_app(OIDC_SECRETS, OIDC_USERS[user_id]).run()


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert_ok(at)
    return at


def table(block: Any, *columns: str) -> pd.DataFrame:
    """The first dataframe on the page with all these columns."""
    for df in block.dataframe:
        if set(columns) <= set(df.value.columns):
            return df.value
    raise KeyError(f"no dataframe with columns {columns}")


def metrics(block: Any) -> dict[str, str]:
    return {m.label: m.value for m in block.metric}


def texts(block: Any) -> list[str]:
    return [e.value for kind in ("markdown", "caption", "info", "warning", "title") for e in getattr(block, kind)]


# --- what a page shows, as text (for the authorization checks) ----------------------------------------


def _arrow_frames(proto: Any) -> Iterator[pd.DataFrame]:
    for ds in proto.datasets:
        if ds.data.data:
            yield pa.ipc.open_stream(ds.data.data).read_all().to_pandas()
    if proto.HasField("data") and proto.data.data:
        yield pa.ipc.open_stream(proto.data.data).read_all().to_pandas()


def chart_frames(at: AppTest) -> list[pd.DataFrame]:
    return [df for chart in at.get("vega_lite_chart") for df in _arrow_frames(chart.proto)]


def rendered(at: AppTest, skip_keys: tuple[str, ...] = ()) -> str:
    """Every text, label, option, metric, table cell and chart datum on the page (main and sidebar)."""
    parts = []
    for root in (at.main, at.sidebar):
        for node in root:
            if getattr(node, "key", None) in skip_keys:
                continue
            proto = getattr(node, "proto", None)
            if proto is None:
                continue
            kind = getattr(node, "type", "")
            if kind == "dataframe":
                parts.append(node.value.to_csv(index=False))
                proto = type(proto)()  # the cells are in the CSV; drop the Arrow bytes
            elif kind == "vega_lite_chart":
                parts.append(proto.spec)
                parts.extend(df.to_csv(index=False) for df in _arrow_frames(proto))
                continue
            parts.append(str(proto))
    return "\n".join(parts)


def b_tokens(snap: api.Snapshot) -> list[str]:
    """Ids, texts and (distinctive) figures that belong to creator B only."""
    data = api.insights(snap, AUTHOR_B, AUTHOR_B, AS_OF)
    ids = {AUTHOR_B, *(s["segment_id"] for s in data["segments"]), *(s["story_id"] for s in data["stories"]),
           *(s["sticker_id"] for s in data["stickers"])}
    ids |= {v for f in sample_lake.frames() if f.author_id == AUTHOR_B for v in f.viewers}
    figures = {r[m] for r in data["daily"] for m in q.ADDITIVE + ("reach", "reach_7d", "reach_28d") if r[m] >= 1000}
    overview = q.overview(snap, AUTHOR_B, AS_OF)
    figures |= {v for p in overview.periods for v in p.values.values() if v >= 1000}
    words = {str(i) for i in ids} | {f"{f:,}" for f in figures} | {str(f) for f in figures}
    words |= {"B-SECRET-ANSWER", "B-only-left", "B-only-right"}
    return sorted(words)


def leaked(text: str, tokens: list[str], snapshot_id: str) -> list[str]:
    """Tokens found in the text: numbers not inside a longer number (errs towards reporting), texts anywhere."""
    text = text.replace(snapshot_id, "")  # the snapshot id is random hex and digits
    return [
        t for t in tokens
        if (re.search(rf"(?<!\d){re.escape(t)}(?!\d)", text) if t[0].isdigit() else t in text)
    ]


# --- smoke ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", list(CREATOR_PAGES))
def test_every_creator_page_renders_for_a_signed_in_creator(env: Settings, page: str) -> None:
    at = open_page(dev_app(AUTHOR_A), page)
    assert at.title[0].value == CREATOR_PAGES[page]
    assert signin.DEV_MODE_LABEL in [w.value for w in at.sidebar.warning]


def test_ops_page_renders_for_an_operator(env: Settings) -> None:
    at = new_app().run()
    at.radio(key=signin.DEV_ROLE_KEY).set_value(signin.ROLE_OPERATOR).run()
    assert_ok(at)
    assert at.title[0].value == "Ops"  # the operator's only page is the default one
    m = metrics(at)
    assert m["Quarantined rows"] == "5" and m["Expectations"] == "3" and m["Failed"] == "1"
    assert m["Critical failures"] == "0" and m["Stale tables"] == "0"
    freshness = table(at, "table", "last_commit")
    assert set(freshness["table"]) >= {"silver.segments", "gold.segment_insights", "ops.pipeline_runs",
                                       "bronze.segment_view"}
    assert freshness.set_index("table").loc["silver.segment_viewers", "rows"] == 72
    runs = table(at, "run_id", "wall_s")
    assert runs["run_id"].tolist() == ["run-sample-2", "run-sample-1"]
    assert runs["status"].tolist() == ["success", "failed"]
    by_rule = table(at, "stage", "rule", "first_at")
    assert dict(zip(by_rule["rule"], by_rule["rows"], strict=True)) == {
        "malformed_json": 2, "not_close_friend": 2, "out_of_range": 1}


def test_display_helpers() -> None:
    from dashboards.display import count_of, rows_height

    assert [count_of(n, "vote") for n in (0, 1, 2, 1204)] == ["0 votes", "1 vote", "2 votes", "1,204 votes"]
    assert rows_height(3) == 4 * 35 + 3 and rows_height(0) == 2 * 35 + 3 and rows_height(500) == 26 * 35 + 3


def test_ops_page_links_the_data_docs(env: Settings) -> None:
    from jobs.quality.data_docs import render

    docs = env.lake / "quality" / "data_docs"
    docs.mkdir(parents=True, exist_ok=True)
    index = render(docs)
    try:
        at = new_app().run()
        at.radio(key=signin.DEV_ROLE_KEY).set_value(signin.ROLE_OPERATOR).run()
        assert_ok(at)
        assert any("**Data Docs**" in m.value and str(index.resolve()) in m.value for m in at.markdown)
        assert [e.label for e in at.expander if e.label == "Data Docs"] == ["Data Docs"]
    finally:
        index.unlink()


def test_creators_have_no_ops_page_and_operators_no_creator_pages(env: Settings) -> None:
    at = dev_app(AUTHOR_A)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(OPS_PAGE)
    at.radio(key=signin.DEV_ROLE_KEY).set_value(signin.ROLE_OPERATOR).run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("creator/overview.py")


def test_missing_snapshot_explains_how_to_publish_one(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORYLAKE_LAKE", str(tmp_path / "empty-lake"))
    at = new_app().run()
    assert not at.exception
    assert "storylake demo" in at.error[0].value


# --- Overview --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("author", [AUTHOR_A, AUTHOR_B])
def test_overview_kpis_and_active_stories_equal_the_api(env: Settings, snap: api.Snapshot, author: int) -> None:
    at = open_page(dev_app(author), "creator/overview.py")
    daily = {r["day"]: r for r in api.insights(snap, author, author, AS_OF)["daily"]}
    today = AS_OF.date()
    last7 = [r for d, r in daily.items() if today - timedelta(days=6) <= d <= today]
    last28 = [r for d, r in daily.items() if today - timedelta(days=27) <= d <= today]
    expected = {
        "kpi-today": {m: daily[today][m] for m, _ in q.KPIS},
        "kpi-7d": {m: sum(r[m] for r in last7) for m in q.ADDITIVE} | {"reach": daily[today]["reach_7d"]},
        "kpi-28d": {m: sum(r[m] for r in last28) for m in q.ADDITIVE} | {"reach": daily[today]["reach_28d"]},
    }
    for key, values in expected.items():
        shown = metrics(at.get_by_key(key))
        assert shown == {label: f"{values[m]:,}" for m, label in q.KPIS}, key
    # compared with yesterday until the same hour (12:00), not with all of yesterday
    hourly = api.insights(snap, author, author, AS_OF)["hourly"]
    cut = AS_OF - timedelta(days=1)
    yesterday = [r for r in hourly if r["day"] == today - timedelta(days=1) and r["hour"] < cut]
    assert len(yesterday) == 12 and len([r for r in hourly if r["day"] == today - timedelta(days=1)]) == 24
    today_deltas = {m.label: m.delta for m in at.get_by_key("kpi-today").metric}
    assert today_deltas["Impressions"] == f"{daily[today]['impressions'] - sum(r['impressions'] for r in yesterday):+,}"
    assert today_deltas["Reach"] == f"{daily[today]['reach'] - sum(r['new_viewers'] for r in yesterday):+,}"
    assert any("**Today so far** · Nov 02 until 12:00 UTC" in t for t in texts(at.get_by_key("kpi-today")))

    stories = table(at, "story_id", "story_reach")
    api_stories = {s["story_id"]: s for s in api.insights(snap, author, author, AS_OF)["stories"]}
    live = sorted({f.story_id for f in sample_lake.frames() if f.author_id == author and not f.is_deleted
                   and f.created_at > AS_OF - timedelta(days=1)})
    assert stories["story_id"].tolist() == live
    assert stories["story_reach"].tolist() == [api_stories[s]["reach"] for s in live]
    ring = api.tray(snap, author, AS_OF, limit=1).rings[0]
    assert ring.is_own
    ring_text = {"gradient": "Gradient ring", "green": "Green ring"}[ring.ring_state]
    assert any(ring_text in t for t in texts(at))  # st.badge renders as markdown
    assert metrics(at)["Live frames"] == str(ring.segment_count)
    chart = next(df for df in chart_frames(at) if "impressions" in df.columns)
    assert len(chart) == q.TREND_DAYS and chart["impressions"].iloc[-1] == daily[today]["impressions"]
    # every trend's time axis ends at now (no axis or bar runs into tomorrow)
    ends = [json.loads(c.proto.spec)["encoding"]["x"]["scale"]["domain"][1] for c in at.get("vega_lite_chart")]
    assert ends == [{"year": 2026, "month": 11, "date": 2, "hours": 12, "minutes": 0, "utc": True}] * 3


def test_overview_numbers_for_creator_a(snap: api.Snapshot) -> None:
    """Hand-computed from sample_lake.daily_rows: impressions 50 + (13 d mod 37), reach 20 + (7 d mod 19), ..."""
    o = q.overview(snap, AUTHOR_A, AS_OF)
    today, last7, last28 = o.periods
    assert today.values == {"reach": 20, "impressions": 50, "exits": 5, "replies": 0, "shares": 0,
                            "profile_visits": 2, "link_clicks": 0}
    assert today.until == AS_OF
    # yesterday's daily row (reach 27, impressions 63, exits 6, replies 1, shares 1, profile visits 3, link clicks
    # 1) spread over 24 hours with weights 1, 2, 3, 4, ... (sample_lake.hourly_rows): its hours before 12:00 hold
    # 30 of the 60 weights; each hour holds floor(total * w / 60)
    def until_noon(total: int) -> int:
        return sum(total * (1 + h % 4) // 60 for h in range(12))

    assert today.previous == {"reach": until_noon(27), "impressions": until_noon(63), "exits": until_noon(6),
                              "replies": 0, "shares": 0, "profile_visits": until_noon(3), "link_clicks": 0}
    assert (until_noon(27), until_noon(63), until_noon(6), until_noon(3)) == (6, 30, 0, 0)
    assert (last7.start, last7.end) == (date(2026, 10, 27), date(2026, 11, 2))
    assert last7.values["impressions"] == 50 + 63 + 76 + 52 + 78 + 54  # day 4 has no row
    assert last7.values["reach"] == 45 and last7.reach_day == date(2026, 11, 2)
    assert o.ring.state == "gradient" and o.ring.segment_count == 3
    assert o.daily["day"].iloc[-1] == pd.Timestamp(2026, 11, 2) and len(o.daily) == 28
    assert pd.isna(o.daily["reach_7d"].iloc[-5])  # 2026-10-29 (d = 4): no activity, no trailing reach


def test_period_reach_uses_the_last_day_with_activity(snap: api.Snapshot) -> None:
    later = AS_OF + timedelta(days=2)  # no daily rows for Nov 3 and Nov 4
    today, last7, _ = q.overview(snap, AUTHOR_A, later).periods
    assert today.values["reach"] == 0 and today.reach_day is None and today.values["impressions"] == 0
    assert last7.values["reach"] == 45 and last7.reach_day == date(2026, 11, 2)


def test_now_can_be_overridden(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYLAKE_NOW", "2026-11-03T13:00:00Z")
    at = open_page(dev_app(AUTHOR_A), "creator/overview.py")
    assert any("No active story" in t for t in texts(at))
    assert "Now 2026-11-03 13:00 UTC" in at.sidebar.caption[-1].value
    at = open_page(at, "creator/story.py")
    frames = table(at, "frame_index", "expires_in")
    assert frames["expires_in"].tolist() == ["expired 7h 0m ago", "expired 6h 0m ago", "expired 5h 0m ago"]


# --- Story detail ------------------------------------------------------------------------------------------


def test_story_detail_shows_the_funnel_of_the_picked_story(env: Settings, snap: api.Snapshot) -> None:
    at = open_page(dev_app(AUTHOR_A), "creator/story.py")
    picker = at.selectbox(key=f"story_pick_{AUTHOR_A}")
    assert picker.options == [q.stories(snap, AUTHOR_A, AS_OF)["label"][i] for i in range(2)]
    assert picker.value == 5101  # newest first

    data = api.insights(snap, AUTHOR_A, AUTHOR_A, AS_OF)
    story = next(s for s in data["stories"] if s["story_id"] == 5101)
    segs = sorted((s for s in data["segments"] if s["story_id"] == 5101), key=lambda s: s["frame_index"])
    assert metrics(at.get_by_key("story-kpis")) == {
        "Reach": f"{story['reach']:,}", "Impressions": f"{story['impressions']:,}",
        "Completion rate": f"{story['completion_rate'] * 100:.1f}%", "Avg view time": "4.2 s", "Frames": "3",
    }
    frames = table(at, "frame_index", "expires_in")
    assert frames["segment_id"].tolist() == [s["segment_id"] for s in segs] == [5101, 5102, 5103]
    assert frames["reach"].tolist() == [s["reach"] for s in segs] == [23, 15, 9]
    assert frames["expires_in"].tolist() == ["18h 0m left", "19h 0m left", "20h 0m left"]
    viewing = table(at, "frame_index", "drop_off")
    assert viewing["reach"].tolist() == [23, 15, 9]
    # sequential drop-off, on the way to the next frame (the sample's viewers of frame n+1 are among frame n's)
    assert viewing["viewers_lost"].tolist()[:2] == [8, 6] and pd.isna(viewing["viewers_lost"].tolist()[2])
    assert viewing["drop_off"].tolist()[:2] == pytest.approx([1 - 15 / 23, 1 - 9 / 15])
    assert pd.isna(viewing["drop_off"].tolist()[2])  # the last frame has no next one
    assert viewing["exit_rate"].tolist() == pytest.approx([s["exit_viewers"] / s["reach"] for s in segs])
    assert viewing["taps_forward"].tolist() == [s["taps_forward"] for s in segs]
    # one unit for view time: seconds, as on the card
    assert viewing["avg_view_s"].tolist() == pytest.approx([s["avg_view_ms"] / 1000 for s in segs])
    assert "avg_view_ms" not in viewing.columns
    nav = next(df for df in chart_frames(at) if "action" in df.columns and len(df) == 4)
    assert dict(zip(nav["action"], nav["count"], strict=True)) == {
        "Forward": story["taps_forward"], "Back": story["taps_back"], "Exit": story["exits"],
        "Next story": story["swipe_forward"]}

    picker.set_value(5001).run()
    assert_ok(at)
    frames = table(at, "frame_index", "expires_in")
    assert frames["segment_id"].tolist() == [5001, 5002, 5003]
    assert frames["status"].tolist() == ["expired", "expired", "deleted"]
    assert frames["expires_in"].tolist()[:2] == ["expired 2d 0h ago", "expired 1d 23h ago"]
    assert metrics(at.get_by_key("story-kpis"))["Reach"] == "4"


def test_story_of_another_creator_is_not_found(snap: api.Snapshot) -> None:
    with pytest.raises(NotFoundError, match="not one of the stories of user 1001"):
        q.story_detail(snap, AUTHOR_A, AS_OF, 6101)


# --- Seen By ------------------------------------------------------------------------------------------------


def test_seen_by_pages_newest_first_like_the_api(env: Settings, snap: api.Snapshot) -> None:
    at = open_page(dev_app(AUTHOR_A), "creator/seen_by.py")
    at.selectbox(key=f"seen_by_segment_{AUTHOR_A}").set_value(5101).run()
    at.selectbox(key=f"seen_by_limit_{AUTHOR_A}").set_value(10).run()
    assert_ok(at)
    assert metrics(at)["Viewers"] == "23"

    api_pages, cursor = [], None
    while True:
        page = api.seen_by(snap, 5101, AUTHOR_A, AS_OF, limit=10, cursor=cursor)
        api_pages.append([v.viewer_id for v in page.viewers])
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert api_pages == [list(range(3023, 3013, -1)), list(range(3013, 3003, -1)), [3003, 3002, 3001]]

    shown = []
    for i, expected in enumerate(api_pages):
        viewers = table(at, "viewer_id", "view_source")
        shown.append(viewers["viewer_id"].tolist())
        assert shown[-1] == expected
        assert at.button(key="seen_by_previous").disabled == (i == 0)
        assert at.button(key="seen_by_next").disabled == (i == len(api_pages) - 1)
        assert any(f"Page {i + 1} · viewers {10 * i + 1}–{10 * i + len(expected)} of 23" in t for t in texts(at))
        if i < len(api_pages) - 1:
            at.button(key="seen_by_next").click().run()
            assert_ok(at)
    first = api.seen_by(snap, 5101, AUTHOR_A, AS_OF, limit=10).viewers[0]
    assert viewers.shape[1] == 4
    at.button(key="seen_by_previous").click().run()
    assert table(at, "viewer_id", "view_source")["viewer_id"].tolist() == api_pages[1]
    at.button(key="seen_by_previous").click().run()
    row = table(at, "viewer_id", "view_source").iloc[0]
    assert (row["viewer_id"], row["view_source"], row["completion_pct"]) == (
        first.viewer_id, first.view_source, first.completion_pct)


def test_seen_by_after_48_hours_is_no_longer_available(env: Settings) -> None:
    at = open_page(dev_app(AUTHOR_A), "creator/seen_by.py")
    picker = at.selectbox(key=f"seen_by_segment_{AUTHOR_A}")
    assert 5003 not in picker.options and "Seen By expired" in picker.format_func(5001)  # deleted: not listed
    picker.set_value(5001).run()
    assert not at.exception
    warning = at.main.warning[0].value
    assert "no longer available" in warning and "expired at 2026-11-01T12:00:00Z" in warning
    assert not at.dataframe


def test_seen_by_of_another_creator_is_refused(snap: api.Snapshot) -> None:
    with pytest.raises(PermissionError, match="only its author can"):
        q.seen_by_page(snap, AUTHOR_A, AS_OF, 6101)


# --- Stickers ----------------------------------------------------------------------------------------------


def test_stickers_show_every_result_of_the_creator(env: Settings, snap: api.Snapshot) -> None:
    at = open_page(dev_app(AUTHOR_A), "creator/stickers.py")
    data = api.insights(snap, AUTHOR_A, AUTHOR_A, AS_OF)
    by_id = {s["sticker_id"]: s for s in data["stickers"]}
    # every tab counts stickers: one question sticker (7004) with two answers
    assert [t.label for t in at.tabs] == ["Polls (1)", "Quizzes (1)", "Sliders (1)", "Questions (1)",
                                          "Countdowns (1)", "Other (2)"]
    poll = next(df for df in chart_frames(at) if "option" in df.columns and "Beach" in df["option"].tolist())
    assert poll["votes"].tolist() == by_id[7001]["option_counts"] == [14, 6]
    assert poll["label"].tolist() == ["14 · 70%", "6 · 30%"]
    quiz = next(df for df in chart_frames(at) if "option" in df.columns and "1969" in df["option"].tolist())
    assert quiz["kind"].tolist() == ["correct answer", "other answers", "other answers"]  # with a legend
    slider = next(df for df in chart_frames(at) if "lower" in df.columns)
    assert slider["count"].tolist() == by_id[7003]["slider_histogram"]
    m = metrics(at)
    assert m["Correct rate"] == f"{by_id[7002]['correct_rate'] * 100:.1f}%" == "66.7%"
    assert m["Mean"] == f"{by_id[7003]['slider_mean']:.2f}" and m["Opt-ins"] == "5"
    inbox = table(at, "text", "responded_at")
    assert inbox["text"].tolist() == [r["text"] for r in data["question_responses"]] == [
        "Take me with you!", "Where is this beach?"]
    others = table(at, "sticker_type", "taps")
    assert dict(zip(others["sticker_type"], others["taps"] + others["add_yours_reshares"], strict=True)) == {
        "link": 4, "add_yours": 3}

    at.selectbox(key=f"stickers_story_{AUTHOR_A}").set_value(5001).run()
    assert_ok(at)
    assert [t.label for t in at.tabs][:4] == ["Polls (0)", "Quizzes (0)", "Sliders (0)", "Questions (0)"]


# --- sign-in and authorization ---------------------------------------------------------------------------


def test_switching_creator_in_dev_mode_shows_the_other_creators_data(env: Settings, snap: api.Snapshot) -> None:
    at = open_page(dev_app(AUTHOR_A), "creator/overview.py")
    assert metrics(at.get_by_key("kpi-today"))["Impressions"] == "50"
    at.selectbox(key=signin.DEV_USER_KEY).set_value(AUTHOR_B).run()
    assert_ok(at)
    b_today = next(r for r in api.insights(snap, AUTHOR_B, AUTHOR_B, AS_OF)["daily"] if r["day"] == AS_OF.date())
    assert metrics(at.get_by_key("kpi-today"))["Impressions"] == f"{b_today['impressions']:,}" == "9,173"
    assert any("Green ring" in t for t in texts(at))  # B's live story is for close friends
    assert at.caption[0].value.startswith(f"Creator {AUTHOR_B}")


def _visit_everything(at: AppTest, snap: api.Snapshot, uid: int) -> Iterator[str]:
    """Every creator page, every option of its pickers, every Seen By page: the rendered text of each."""
    story_ids = q.stories(snap, uid, AS_OF)["story_id"].tolist()
    pickers = {
        f"story_pick_{uid}": story_ids,
        f"seen_by_segment_{uid}": q.seen_by_segments(snap, uid, AS_OF)["segment_id"].tolist(),
        f"stickers_story_{uid}": [0, *story_ids],
    }
    for page in CREATOR_PAGES:
        open_page(at, page)
        yield rendered(at, skip_keys=(signin.DEV_USER_KEY,))
        for box in [b for b in at.selectbox if b.key in pickers]:
            for value in pickers[box.key]:
                at.selectbox(key=box.key).set_value(value).run()
                assert not at.exception
                yield rendered(at, skip_keys=(signin.DEV_USER_KEY,))
                while any(b.key == "seen_by_next" and not b.disabled for b in at.button):
                    at.button(key="seen_by_next").click().run()
                    yield rendered(at, skip_keys=(signin.DEV_USER_KEY,))


@pytest.mark.parametrize("mode", ["oidc", "dev"])
def test_a_creator_never_sees_another_creators_data(env: Settings, snap: api.Snapshot, mode: str) -> None:
    tokens = b_tokens(snap)
    assert {"2002", "6101", "4012", "8001", "9,173", "B-SECRET-ANSWER"} <= set(tokens)
    own = {"1001", "5101", "3023", "7001", "Where is this beach?"}

    if mode == "oidc":
        b_app = oidc_app(AUTHOR_B)  # B uses the app first, in this process: B's entries fill the caches
        b_text = "\n".join(_visit_everything(b_app, snap, AUTHOR_B))
        assert not leaked(b_text, sorted(own), snap.snapshot_id)
        assert "B-SECRET-ANSWER" in b_text
        at = oidc_app(AUTHOR_A)
    else:  # the same browser session switches from B to A
        at = dev_app(AUTHOR_B)
        assert "B-SECRET-ANSWER" in "\n".join(_visit_everything(at, snap, AUTHOR_B))
        at.selectbox(key=signin.DEV_USER_KEY).set_value(AUTHOR_A).run()
    a_text = "\n".join(_visit_everything(at, snap, AUTHOR_A))
    assert_ok(at)
    assert leaked(a_text, tokens, snap.snapshot_id) == []
    assert leaked(a_text, sorted(own), snap.snapshot_id) == sorted(own)  # the scan does see A's own data


def test_oidc_sign_in_maps_the_subject_or_email_to_a_user(env: Settings) -> None:
    at = oidc_app(AUTHOR_A)
    assert_ok(at)
    assert at.title[0].value == "Overview" and at.caption[0].value.startswith(f"Creator {AUTHOR_A}")
    assert signin.DEV_MODE_LABEL not in rendered(at)
    assert any("a@example.com" in t for t in texts(at.sidebar))
    assert at.button(key="logout")
    at = oidc_app(AUTHOR_B)  # mapped by its OIDC subject
    assert at.caption[0].value.startswith(f"Creator {AUTHOR_B}")


def test_a_creator_without_stories_gets_empty_pages(env: Settings) -> None:
    at = new_app(OIDC_SECRETS, {"is_logged_in": True, "email": "new@example.com", "sub": "new"}).run()
    assert_ok(at)
    assert any("No active story" in t for t in texts(at))
    assert set(metrics(at.get_by_key("kpi-28d")).values()) == {"0"}
    for page, message in (("creator/story.py", "not posted a story yet"), ("creator/seen_by.py", "no segments yet")):
        open_page(at, page)
        assert message in at.info[0].value
    open_page(at, "creator/stickers.py")
    assert [t.label for t in at.tabs][:3] == ["Polls (0)", "Quizzes (0)", "Sliders (0)"]


def test_oidc_logged_out_or_unknown_accounts_see_no_data(env: Settings) -> None:
    at = new_app(OIDC_SECRETS, {"is_logged_in": False}).run()
    assert not at.exception
    assert at.title[0].value == "storylake dashboards" and at.button(key="login").label == "Log in"
    assert not at.metric and not at.dataframe
    at = new_app(OIDC_SECRETS, {"is_logged_in": True, "email": "stranger@example.com", "sub": "x"}).run()
    assert not at.exception and "not linked to a storylake user" in at.error[0].value
    assert not at.metric and not at.dataframe
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("creator/overview.py")


def test_require_auth_refuses_dev_mode(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYLAKE_REQUIRE_AUTH", "1")
    at = new_app().run()
    assert "STORYLAKE_REQUIRE_AUTH" in at.error[0].value and not at.metric
    assert signin.DEV_MODE_LABEL not in rendered(at)


@pytest.mark.parametrize("value", ["0", "false", " "])
def test_require_auth_off_values_keep_dev_mode(env: Settings, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("STORYLAKE_REQUIRE_AUTH", value)
    at = new_app().run()
    assert not at.exception and not at.error
    assert signin.DEV_MODE_LABEL in [w.value for w in at.sidebar.warning]


def test_invalid_now_is_a_one_line_configuration_error(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYLAKE_NOW", "yesterday")
    at = new_app().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Configuration error: STORYLAKE_NOW='yesterday' is not an ISO-8601 time (e.g. 2026-11-02T12:00:00Z)"]
    assert not at.metric


def test_oidc_identity_mapping() -> None:
    config = {"users": {"a@example.com": 1, "sub-2": 2}, "operators": ["ops@example.com"]}
    assert signin.oidc_identity({"sub": "sub-2", "email": "a@example.com"}, config).user_id == 2  # subject first
    assert signin.oidc_identity({"sub": "s", "email": "a@example.com"}, config).user_id == 1
    assert signin.oidc_identity({"sub": "s", "email": "a@example.com", "email_verified": False}, config) is None
    ops = signin.oidc_identity({"sub": "s", "email": "ops@example.com"}, config)
    assert ops is not None and ops.operator and ops.user_id is None
    assert signin.oidc_identity({"sub": "s"}, config) is None


def test_every_cached_data_function_is_keyed_by_the_requester(snap: api.Snapshot, lake: Settings) -> None:
    for fn in cached.CREATOR_FUNCTIONS:
        assert "requester_id" in inspect.signature(fn).parameters, fn
    assert "requester" in inspect.signature(cached.ops_report).parameters
    args = (str(lake.lake), snap.snapshot_id)
    b = cached.overview(*args, AUTHOR_B, AS_OF)
    a = cached.overview(*args, AUTHOR_A, AS_OF)  # same lake, snapshot and now: only the requester differs
    assert (a.requester_id, b.requester_id) == (AUTHOR_A, AUTHOR_B)
    assert a.periods[0].values["impressions"] == 50 and b.periods[0].values["impressions"] == 9173
    with pytest.raises(PermissionError):
        cached.seen_by_page(*args, AUTHOR_A, AS_OF, 6101, 50, None)


# --- small pieces ----------------------------------------------------------------------------------------


def test_countdown_and_now() -> None:
    t = datetime(2026, 11, 2, 12, tzinfo=UTC)
    assert q.countdown(t + timedelta(hours=4, minutes=12, seconds=59), t) == "4h 12m left"
    assert q.countdown(t + timedelta(minutes=5), t) == "5m left"
    assert q.countdown(t - timedelta(days=2, hours=3), t) == "expired 2d 3h ago"
    assert q.countdown(t, t) == "expired 0m ago"
    assert q.resolve_now(t, None) == t and q.resolve_now(t, "  ") == t
    assert q.resolve_now(t, "2026-11-03T01:02:03Z") == datetime(2026, 11, 3, 1, 2, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="STORYLAKE_NOW"):
        q.resolve_now(t, "yesterday")


def test_launch_command_passes_the_lake_through_the_environment(tmp_path: Path) -> None:
    cmd = launch.streamlit_command(port=8765, address="127.0.0.1", headless=True)
    assert cmd[1:5] == ["-m", "streamlit", "run", str(APP)]
    assert cmd[cmd.index("--server.port") + 1] == "8765" and cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert cmd[cmd.index("--client.toolbarMode") + 1] == "viewer"  # no Deploy button, from any working directory
    env = launch.dashboard_env(Settings(lake=Path("rel/lake")), datetime(2026, 11, 2, 12, tzinfo=UTC), base={})
    assert env == {"STORYLAKE_LAKE": str(Path("rel/lake").resolve()), "STORYLAKE_NOW": "2026-11-02T12:00:00Z"}
    assert launch.dashboard_env(Settings(lake=Path("/l")), base={"X": "1"}) == {"X": "1", "STORYLAKE_LAKE": "/l"}


def test_launch_passes_the_settings_the_app_resolves_back() -> None:
    settings = Settings(lake=Path("/l"), now=datetime(2026, 11, 2, 12, 30, tzinfo=UTC), require_auth=True)
    env = launch.dashboard_env(settings, base={})
    assert env == {"STORYLAKE_LAKE": "/l", "STORYLAKE_NOW": "2026-11-02T12:30:00Z", "STORYLAKE_REQUIRE_AUTH": "1"}
    assert Settings.from_env(env) == settings
    pinned = launch.dashboard_env(settings, datetime(2026, 11, 5, tzinfo=UTC), base={})  # explicit now wins
    assert pinned["STORYLAKE_NOW"] == "2026-11-05T00:00:00Z"

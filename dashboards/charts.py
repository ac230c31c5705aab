"""Altair charts of the pages (pure: DataFrame in, chart out). Dates are UTC days."""

from __future__ import annotations

from datetime import datetime

import altair as alt
import pandas as pd

from serving.dashboard_queries import KPIS
from storylake.clock import utc

LABELS = dict(KPIS) | {"reach_7d": "Reach (7 days)", "reach_28d": "Reach (28 days)"}
# Pipeline steps in the order they run, each with its own colour on every run of the Ops chart.
STEP_ORDER = ("ingest", "silver", "gate_silver", "gold", "gate_gold", "publish")
STEP_COLORS = ("#8d99ae", "#2a9d8f", "#9bd1c9", "#e9c46a", "#f4e3b1", "#5851db")
STEP_LABELS = {"ingest": "Ingest", "silver": "Silver", "gate_silver": "Silver gate", "gold": "Gold",
               "gate_gold": "Gold gate", "publish": "Publish"}
ACCENT = "#c13584"
COUNT_AXIS = alt.Axis(tickMinStep=1, format="d")
PALETTE = ["#c13584", "#f77737", "#5851db", "#2a9d8f", "#e9c46a", "#8d99ae"]


def utc_days(daily: pd.DataFrame, now: datetime | None = None) -> alt.X:
    """The UTC-day x axis of a daily trend, from the first day to `now` (the newest day's band is cut at now, so
    no bar or axis runs into the future)."""
    scale = alt.Undefined
    if now is not None and len(daily):
        first = pd.Timestamp(daily["day"].min())
        scale = alt.Scale(domain=[_utc(first.to_pydatetime()), _utc(utc(now))])
    return alt.X("utcyearmonthdate(day):T", title=None, axis=alt.Axis(format="%b %d", labelAngle=0), scale=scale)


def _utc(t: datetime) -> alt.DateTime:
    """A Vega-Lite DateTime in UTC (a timestamp's wall clock read as UTC)."""
    return alt.DateTime(year=t.year, month=t.month, date=t.day, hours=t.hour, minutes=t.minute, utc=True)


def _long(daily: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    out = daily.melt(id_vars=["day"], value_vars=metrics, var_name="metric", value_name="value")
    out["metric"] = out["metric"].map(LABELS)
    return out.dropna(subset=["value"])


def reach_trend(daily: pd.DataFrame, now: datetime | None = None) -> alt.Chart:
    """Daily reach with the trailing 7- and 28-day reach (distinct viewers, from gold)."""
    data = _long(daily, ["reach", "reach_7d", "reach_28d"])
    order = [LABELS[m] for m in ("reach", "reach_7d", "reach_28d")]
    return (
        alt.Chart(data, title="Reach")
        .mark_line(point=True, clip=True)
        .encode(
            x=utc_days(daily, now),
            y=alt.Y("value:Q", title="viewers"),
            color=alt.Color("metric:N", sort=order, scale=alt.Scale(range=PALETTE), legend=alt.Legend(title=None,
                                                                                                      orient="top")),
            tooltip=[alt.Tooltip("utcyearmonthdate(day):T", title="day"), "metric:N", "value:Q"],
        )
    )


def impressions_trend(daily: pd.DataFrame, now: datetime | None = None) -> alt.Chart:
    return (
        alt.Chart(daily, title="Impressions")
        .mark_bar(color=ACCENT, clip=True)
        .encode(x=utc_days(daily, now), y=alt.Y("impressions:Q", title="counted views"),
                tooltip=[alt.Tooltip("utcyearmonthdate(day):T", title="day"), "impressions:Q"])
    )


def engagement_trend(daily: pd.DataFrame, now: datetime | None = None) -> alt.Chart:
    metrics = ["exits", "replies", "shares", "profile_visits", "link_clicks"]
    data = _long(daily, metrics)
    return (
        alt.Chart(data, title="Exits and engagement")
        .mark_bar(clip=True)
        .encode(
            x=utc_days(daily, now),
            y=alt.Y("value:Q", title="count", stack=True),
            color=alt.Color("metric:N", sort=[LABELS[m] for m in metrics], scale=alt.Scale(range=PALETTE),
                            legend=alt.Legend(title=None, orient="top")),
            tooltip=[alt.Tooltip("utcyearmonthdate(day):T", title="day"), "metric:N", "value:Q"],
        )
    )


def frame_funnel(frames: pd.DataFrame) -> alt.LayerChart:
    """Reach per frame, labelled with the drop-off on the way to the next frame (gold's sequential definition)."""
    data = frames[["frame_index", "reach", "drop_off"]].copy()
    data["frame"] = "Frame " + data["frame_index"].astype(str)
    data["label"] = [
        f"{r}" if d is None or pd.isna(d) else f"{r} (−{d * 100:.0f}%)"
        for r, d in zip(data["reach"], data["drop_off"], strict=True)
    ]
    base = alt.Chart(data, title="Reach per frame").encode(
        y=alt.Y("frame:N", sort=data["frame"].tolist(), title=None),
        x=alt.X("reach:Q", title="viewers", axis=COUNT_AXIS),
    )
    bars = base.mark_bar(color=ACCENT).encode(tooltip=["frame:N", "reach:Q", alt.Tooltip("drop_off:Q", format=".0%")])
    text = base.mark_text(align="left", dx=4).encode(text="label:N")
    return bars + text


def navigation(nav: pd.DataFrame) -> alt.LayerChart:
    base = alt.Chart(nav, title="Navigation").encode(
        y=alt.Y("action:N", sort=nav["action"].tolist(), title=None),
        x=alt.X("count:Q", title="gestures", axis=COUNT_AXIS),
    )
    return base.mark_bar(color="#5851db") + base.mark_text(align="left", dx=4).encode(text="count:Q")


def choice_bars(options: pd.DataFrame, highlight_correct: bool = False) -> alt.LayerChart:
    """Votes per option with percentages (poll / quiz; the right quiz answer in green)."""
    data = options.copy()
    data["label"] = [
        f"{v} · {'—' if p is None or pd.isna(p) else f'{p * 100:.0f}%'}"
        for v, p in zip(data["votes"], data["pct"], strict=True)
    ]
    data["kind"] = ["correct answer" if (highlight_correct and c) else "other answers" if highlight_correct
                    else "option" for c in data["is_correct"]]
    base = alt.Chart(data).encode(
        y=alt.Y("option:N", sort=data["option"].tolist(), title=None),
        x=alt.X("votes:Q", title="votes", axis=COUNT_AXIS),
    )
    legend = alt.Legend(title=None, orient="top") if highlight_correct else None
    bars = base.mark_bar().encode(
        color=alt.Color("kind:N", scale=alt.Scale(domain=["option", "other answers", "correct answer"],
                                        range=[ACCENT, ACCENT, "#2a9d8f"]),
                        legend=legend),
        tooltip=["option:N", "votes:Q", alt.Tooltip("pct:Q", format=".0%")],
    )
    return (bars + base.mark_text(align="left", dx=4).encode(text="label:N")).properties(height=60 + 36 * len(data))


def slider_histogram(histogram: pd.DataFrame, mean: float | None) -> alt.LayerChart | alt.Chart:
    bars = (
        alt.Chart(histogram)
        .mark_bar(color=ACCENT)
        .encode(
            x=alt.X("lower:Q", bin="binned", scale=alt.Scale(domain=[0, 1]), title="slider value"),
            x2="upper:Q",
            y=alt.Y("count:Q", title="answers", axis=COUNT_AXIS),
            tooltip=["bin:N", "count:Q"],
        )
        .transform_calculate(upper="datum.lower + 0.1")
    )
    if mean is None:
        return bars.properties(height=180)
    rule = alt.Chart(pd.DataFrame({"mean": [mean]})).mark_rule(color="#264653", strokeDash=[4, 3], size=2).encode(
        x="mean:Q", tooltip=[alt.Tooltip("mean:Q", format=".2f")])
    return (bars + rule).properties(height=180)


def step_durations(steps: pd.DataFrame) -> alt.Chart:
    """Seconds per pipeline step, stacked per run in the order the steps run, each step in its fixed colour (failed
    steps outlined in red); steps of other kinds (retention, export, ...) after them in grey."""
    data = steps.copy()
    known = [STEP_LABELS[s] for s in STEP_ORDER]
    data["Step"] = [STEP_LABELS.get(s, s) for s in data["step"]]
    data["order"] = [STEP_ORDER.index(s) if s in STEP_ORDER else len(STEP_ORDER) for s in data["step"]]
    others = sorted(set(data["Step"]) - set(known))
    return (
        alt.Chart(data, title="Step durations per run")
        .mark_bar()
        .encode(
            y=alt.Y("run_id:N", title=None, sort=alt.SortField("started_at", order="descending"),
                    axis=alt.Axis(labelLimit=400)),
            x=alt.X("duration_s:Q", title="seconds", stack=True),
            color=alt.Color("Step:N", scale=alt.Scale(domain=[*known, *others],
                                                      range=[*STEP_COLORS, *["#cccccc"] * len(others)]),
                            legend=alt.Legend(title=None, orient="top")),
            order=alt.Order("order:Q", sort="ascending"),
            stroke=alt.condition("datum.status == 'failed'", alt.value("#d00000"), alt.value(None)),
            tooltip=["run_id:N", "Step:N", alt.Tooltip("duration_s:Q", format=".1f", title="seconds"), "status:N"],
        )
    )

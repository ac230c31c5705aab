"""Altair charts of the pages (pure: DataFrame in, chart out). Dates are UTC days."""

from __future__ import annotations

import altair as alt
import pandas as pd

from serving.dashboard_queries import KPIS

LABELS = dict(KPIS) | {"reach_7d": "Reach (7 days)", "reach_28d": "Reach (28 days)"}
UTC_DAY = alt.X("utcyearmonthdate(day):T", title=None, axis=alt.Axis(format="%b %d", labelAngle=0))
ACCENT = "#c13584"
COUNT_AXIS = alt.Axis(tickMinStep=1, format="d")
PALETTE = ["#c13584", "#f77737", "#5851db", "#2a9d8f", "#e9c46a", "#8d99ae"]


def _long(daily: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    out = daily.melt(id_vars=["day"], value_vars=metrics, var_name="metric", value_name="value")
    out["metric"] = out["metric"].map(LABELS)
    return out.dropna(subset=["value"])


def reach_trend(daily: pd.DataFrame) -> alt.Chart:
    """Daily reach with the trailing 7- and 28-day reach (distinct viewers, from gold)."""
    data = _long(daily, ["reach", "reach_7d", "reach_28d"])
    order = [LABELS[m] for m in ("reach", "reach_7d", "reach_28d")]
    return (
        alt.Chart(data, title="Reach")
        .mark_line(point=True)
        .encode(
            x=UTC_DAY,
            y=alt.Y("value:Q", title="viewers"),
            color=alt.Color("metric:N", sort=order, scale=alt.Scale(range=PALETTE), legend=alt.Legend(title=None,
                                                                                                      orient="top")),
            tooltip=[alt.Tooltip("utcyearmonthdate(day):T", title="day"), "metric:N", "value:Q"],
        )
    )


def impressions_trend(daily: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(daily, title="Impressions")
        .mark_bar(color=ACCENT)
        .encode(x=UTC_DAY, y=alt.Y("impressions:Q", title="counted views"),
                tooltip=[alt.Tooltip("utcyearmonthdate(day):T", title="day"), "impressions:Q"])
    )


def engagement_trend(daily: pd.DataFrame) -> alt.Chart:
    metrics = ["exits", "replies", "shares", "profile_visits", "link_clicks"]
    data = _long(daily, metrics)
    return (
        alt.Chart(data, title="Exits and engagement")
        .mark_bar()
        .encode(
            x=UTC_DAY,
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
    data["kind"] = ["correct" if (highlight_correct and c) else "option" for c in data["is_correct"]]
    base = alt.Chart(data).encode(
        y=alt.Y("option:N", sort=data["option"].tolist(), title=None),
        x=alt.X("votes:Q", title="votes", axis=COUNT_AXIS),
    )
    bars = base.mark_bar().encode(
        color=alt.Color("kind:N", scale=alt.Scale(domain=["option", "correct"], range=[ACCENT, "#2a9d8f"]),
                        legend=None),
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
    """Seconds per pipeline step, stacked per run (failed steps outlined)."""
    return (
        alt.Chart(steps, title="Step durations per run")
        .mark_bar()
        .encode(
            y=alt.Y("run_id:N", title=None, sort=alt.SortField("started_at", order="descending")),
            x=alt.X("duration_s:Q", title="seconds", stack=True),
            color=alt.Color("step:N", scale=alt.Scale(range=PALETTE), legend=alt.Legend(title=None, orient="top")),
            stroke=alt.condition("datum.status == 'failed'", alt.value("#d00000"), alt.value(None)),
            tooltip=["run_id:N", "step:N", alt.Tooltip("duration_s:Q", format=".1f"), "status:N"],
        )
    )

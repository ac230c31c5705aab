"""Ops: table freshness (Delta versions and commit times), rows by layer, the serving snapshot, quarantine,
the latest contract-gate results and the last pipeline runs. For operators; not per creator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from dashboards import cached, charts, context
from dashboards.display import number, when

ctx = context.operator()
st.title("Ops")
wall_clock = datetime.now(UTC).replace(second=0, microsecond=0)  # freshness is about the real lake
report = cached.ops_report(ctx.lake, ctx.identity.requester, wall_clock)
st.caption(f"Lake `{ctx.lake}` · checked {when(report.now)} (wall clock; refreshed every minute)")

TIME = "YYYY-MM-DD HH:mm:ss"

st.subheader("Serving snapshot")
snap = report.snapshot
if snap.snapshot_id is None:
    st.warning("No serving snapshot is published (serving/CURRENT is missing).")
else:
    st.markdown(f"CURRENT → `{snap.snapshot_id}` · data as of **{when(snap.as_of)}** · built at {when(snap.built_at)}")
behind = snap.sources[snap.sources["behind"].fillna(0) > 0] if len(snap.sources) else snap.sources
if len(behind):
    st.warning(f"{len(behind)} source table(s) have commits that are not published yet: "
               + ", ".join(behind["source_table"]))
with st.expander("Snapshot sources (Delta version published vs the lake now)"):
    st.dataframe(snap.sources, hide_index=True, key="snapshot_sources")

st.subheader("Tables")
stale = report.freshness[report.freshness["status"] == "stale"]
layer_cols = st.columns(len(report.layers) + 1)
for col, row in zip(layer_cols, report.layers.itertuples(index=False), strict=False):
    col.metric(f"{row.layer} rows", number(row.rows), help=f"{row.tables} tables")
layer_cols[-1].metric("Stale tables", number(len(stale)), help="Last commit older than the contract's freshness SLA.")
st.dataframe(
    report.freshness,
    hide_index=True,
    key="freshness",
    column_config={
        "table": "Table",
        "layer": "Layer",
        "version": st.column_config.NumberColumn("Delta version", format="%d"),
        "last_commit": st.column_config.DatetimeColumn("Last commit (UTC)", format=TIME),
        "operation": "Operation",
        "age_h": st.column_config.NumberColumn("Age (h)", format="%.2f"),
        "freshness_sla_h": st.column_config.NumberColumn("SLA (h)", format="%.0f"),
        "status": "Status",
        "rows": st.column_config.NumberColumn("Rows", format="localized"),
        "files": "Files",
    },
)

st.subheader("Quarantine")
quarantine = report.quarantine
st.metric("Quarantined rows", number(quarantine.total))
if quarantine.total:
    st.dataframe(quarantine.by_rule, hide_index=True, key="quarantine_by_rule", column_config={
        "first_at": st.column_config.DatetimeColumn("First (UTC)", format=TIME),
        "last_at": st.column_config.DatetimeColumn("Last (UTC)", format=TIME),
    })
    with st.expander("Samples (newest per stage and rule)"):
        st.dataframe(quarantine.samples, hide_index=True, key="quarantine_samples", column_config={
            "raw": st.column_config.TextColumn("Raw", width="large"),
            "quarantined_at": st.column_config.DatetimeColumn("Quarantined (UTC)", format=TIME),
        })

st.subheader("Quality gate")
if report.quality is None:
    st.info("ops.quality_results does not exist yet: the contract gate has not run on this lake.")
else:
    failed = report.quality[~report.quality["success"]]
    critical = failed[failed["critical"]]
    cols = st.columns(3)
    cols[0].metric("Expectations", number(len(report.quality)))
    cols[1].metric("Failed", number(len(failed)))
    cols[2].metric("Critical failures", number(len(critical)))
    st.caption(f"Run `{report.quality['run_id'].iloc[0]}` at {when(report.quality['validated_at'].max())}")
    st.dataframe(report.quality, hide_index=True, key="quality_results")
docs_index = Path(ctx.lake).resolve() / "quality" / "data_docs" / "index.html"
if docs_index.is_file():
    docs_html = docs_index.read_text(encoding="utf-8")
    st.markdown(f"**Data Docs**: every layer's latest gate, its suites and results, as one offline page: "
                f"`{docs_index}`")
    st.download_button("Download Data Docs", docs_html, file_name="storylake-data-docs.html", mime="text/html",
                       key="data_docs_download")
    with st.expander("Data Docs"):
        components.html(docs_html, height=640, scrolling=True)

st.subheader("Pipeline runs")
runs = report.runs
if runs.runs.empty:
    st.info("ops.pipeline_runs is empty: no pipeline has run on this lake.")
else:
    st.dataframe(runs.runs, hide_index=True, key="pipeline_runs", column_config={
        "started_at": st.column_config.DatetimeColumn("Started (UTC)", format=TIME),
        "finished_at": st.column_config.DatetimeColumn("Finished (UTC)", format=TIME),
        "as_of": st.column_config.DatetimeColumn("As of (UTC)", format=TIME),
        "duration_s": st.column_config.NumberColumn("Step time (s)", format="%.1f"),
        "wall_s": st.column_config.NumberColumn("Wall time (s)", format="%.1f"),
    })
    st.altair_chart(charts.step_durations(runs.steps), width="stretch")
    with st.expander("Steps"):
        st.dataframe(runs.steps, hide_index=True, key="pipeline_steps")

"""Ops: table freshness (Delta versions and commit times), rows by layer, the serving snapshot, quarantine,
the latest contract-gate results and the last pipeline runs. For operators; not per creator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from dashboards import cached, charts, context
from dashboards.display import number, rows_height, when

ctx = context.operator()
st.title("Ops")
wall_clock = datetime.now(UTC).replace(second=0, microsecond=0)  # freshness is about the real lake
report = cached.ops_report(ctx.lake, ctx.identity.requester, wall_clock)
st.caption(f"Lake `{ctx.lake}` · checked {when(report.now)} (wall clock; refreshed every minute)")

TIME = "YYYY-MM-DD HH:mm:ss"
SHORT_TIME = "MM-DD HH:mm"

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
    st.dataframe(snap.sources, hide_index=True, key="snapshot_sources", height=rows_height(len(snap.sources)),
                 column_config={
                     "source_table": "Source table",
                     "delta_version": st.column_config.NumberColumn("Published version", format="%d"),
                     "lake_version": st.column_config.NumberColumn("Version now", format="%d"),
                     "behind": st.column_config.NumberColumn("Commits behind", format="%d"),
                     "row_count": st.column_config.NumberColumn("Rows published", format="localized"),
                 })

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
    height=rows_height(len(report.freshness), max_rows=60),
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
    st.caption("Quarantine times: the wall clock for ingest rows, the run's as-of (pipeline time) for silver stages.")
    st.dataframe(quarantine.by_rule, hide_index=True, key="quarantine_by_rule",
                 height=rows_height(len(quarantine.by_rule)), column_config={
        "stage": "Stage",
        "contract": "Contract",
        "rule": "Rule",
        "rows": st.column_config.NumberColumn("Rows", format="localized"),
        "first_at": st.column_config.DatetimeColumn("First (UTC)", format=TIME),
        "last_at": st.column_config.DatetimeColumn("Last (UTC)", format=TIME),
    })
    with st.expander("Samples (newest per stage and rule)"):
        st.dataframe(quarantine.samples, hide_index=True, key="quarantine_samples",
                     height=rows_height(len(quarantine.samples)), column_config={
            "stage": "Stage",
            "rule": "Rule",
            "field": "Field",
            "reason": st.column_config.TextColumn("Reason", width="large"),
            "source_file": "Source file",
            "line": st.column_config.NumberColumn("Line", format="%d"),
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
    st.dataframe(report.quality.drop(columns=["run_id", "validated_at"]), hide_index=True, key="quality_results",
                 height=rows_height(len(report.quality)), column_config={
                     "table_name": st.column_config.TextColumn("Table", width=170),
                     "expectation": st.column_config.TextColumn("Expectation", width=330),
                     "critical": st.column_config.CheckboxColumn("Critical", width=60),
                     "success": st.column_config.CheckboxColumn("Passed", width=60),
                     "observed_value": st.column_config.TextColumn("Observed", width=80),
                     "unexpected_count": st.column_config.NumberColumn("Unexpected", format="localized", width=90),
                     "sample_keys": st.column_config.TextColumn("Sample keys", width=110),
                 })
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
    run_columns = ["run_id", "as_of", "started_at", "wall_s", "duration_s", "status", "rows_written", "steps"]
    st.dataframe(runs.runs[run_columns], hide_index=True, key="pipeline_runs", height=rows_height(len(runs.runs)),
                 column_config={
        "run_id": st.column_config.TextColumn("Run", width="medium"),
        "as_of": st.column_config.DatetimeColumn("As of (UTC)", format=SHORT_TIME),
        "started_at": st.column_config.DatetimeColumn("Started (UTC)", format=SHORT_TIME),
        "wall_s": st.column_config.NumberColumn("Wall time (s)", format="%.1f"),
        "duration_s": st.column_config.NumberColumn("Step time (s)", format="%.1f"),
        "status": st.column_config.TextColumn("Status", width="small"),
        "rows_written": st.column_config.NumberColumn("Rows written", format="localized"),
        "steps": st.column_config.TextColumn("Steps", width="medium"),
    })
    st.altair_chart(charts.step_durations(runs.steps), width="stretch")
    with st.expander("Steps"):
        st.dataframe(runs.steps, hide_index=True, key="pipeline_steps", height=rows_height(len(runs.steps)),
                     column_config={
                         "run_id": "Run",
                         "step": "Step",
                         "started_at": st.column_config.DatetimeColumn("Started (UTC)", format=TIME),
                         "finished_at": st.column_config.DatetimeColumn("Finished (UTC)", format=TIME),
                         "duration_s": st.column_config.NumberColumn("Time (s)", format="%.1f"),
                         "status": "Status",
                         "rows_written": st.column_config.NumberColumn("Rows written", format="localized"),
                         "detail": st.column_config.TextColumn("Detail", width="large"),
                     })

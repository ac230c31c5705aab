"""Data Docs: one offline page holding every layer's latest gate (its suites and results).

Each gate writes its layer's record (`LAKE/quality/data_docs/<layer>.json`: the run, the suites generated from the
contracts with every expectation's kwargs, and each expectation's result with sample keys) and re-renders
`index.html` from the records of all layers, so the silver gate's results survive the gold gate's. The page is one
self-contained HTML file (inline CSS, no script, no font or CDN request): it opens from disk with no network.

Why not GX's own Data Docs site: its index lists the validations with JavaScript loaded from CDNs (blank
offline), the site builder re-renders the index over every kept validation on each gate (a cost that grew with the
lake's age: about a second per gate on a week of hourly runs) and wants an absolute base directory. The results
are the same GX validation results, recorded in ops.quality_results too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from jobs.quality.suites import Suite

INDEX = "index.html"
# Folders an older storylake's GX site builder left in the docs folder (removed at the next render).
LEGACY = ("validations", "expectations", "static")
LAYER_ORDER = ("bronze", "silver", "gold", "ops")

_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>storylake Data Docs</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 2rem 3rem;color:#1f2328}
h1{margin:1.2rem 0 .2rem}h2{margin:2rem 0 .3rem;border-bottom:2px solid #d0d7de}h3{margin:1.3rem 0 .3rem}
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}code{font-size:12px;word-break:break-all}
.ok{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:700}.warn{color:#9a6700;font-weight:600}
.meta{color:#59636e}nav a{margin-right:1rem}
</style></head><body>
<h1>storylake Data Docs</h1>
<p class="meta">The latest quality gate of each layer: suites generated from <code>data_contracts/</code>, validated
with Great Expectations. Rendered {{ rendered_at }}. Every result is also in <code>ops.quality_results</code>.</p>
<nav>{% for layer in layers %}<a href="#{{ layer.layer }}">{{ layer.layer }}</a>{% endfor %}</nav>
{% for layer in layers %}
<h2 id="{{ layer.layer }}">{{ layer.layer }}:
{% if layer.failed %}<span class="fail">FAILED ({{ layer.failed }} critical)</span>
{% else %}<span class="ok">passed</span>{% endif %}</h2>
<p class="meta">Run <code>{{ layer.run_id }}</code> · validated {{ layer.validated_at }} · data as of
{{ layer.as_of or "n/a" }} · {{ layer.tables|length }} table(s), {{ layer.expectations }} expectation(s),
{{ layer.warnings }} warning(s){% if layer.missing %} · not in the lake: {{ layer.missing|join(", ") }}{% endif %}</p>
<table><tr><th>Table</th><th>Rows validated</th><th>Expectations</th><th>Failed critical</th><th>Warnings</th></tr>
{% for t in layer.tables %}<tr><td><a href="#{{ t.table }}">{{ t.table }}</a></td><td>{{ "{:,}".format(t.rows) }}</td>
<td>{{ t.results|length }}</td><td class="{{ 'fail' if t.failed else '' }}">{{ t.failed }}</td>
<td class="{{ 'warn' if t.warnings else '' }}">{{ t.warnings }}</td></tr>{% endfor %}
</table>
{% for t in layer.tables %}
<h3 id="{{ t.table }}">{{ t.table }}</h3>
<p class="meta">{{ "{:,}".format(t.rows) }} row(s) validated{% if t.not_expressible %} · contract rules without an
expectation: {{ t.not_expressible|join("; ") }}{% endif %}</p>
<table><tr><th>Status</th><th>Expectation</th><th>Arguments</th><th>From the contract</th><th>Unexpected</th>
<th>Observed</th><th>Sample keys</th></tr>
{% for r in t.results %}<tr>
<td class="{{ r.status }}">{{ r.status_text }}</td><td><code>{{ r.type }}</code></td>
<td><code>{{ r.kwargs }}</code></td>
<td>{{ r.source }}</td><td>{{ "" if r.unexpected_count is none else "{:,}".format(r.unexpected_count) }}</td>
<td><code>{{ r.observed }}</code></td><td><code>{{ r.sample_keys }}</code></td></tr>{% endfor %}
</table>
{% endfor %}
{% else %}
<p>No quality gate has run on this lake yet.</p>
{% endfor %}
</body></html>
""")


def layer_record(report: Any, suites: Mapping[str, Suite], as_of: datetime | None) -> dict[str, Any]:
    """The JSON-able record of one gate (a jobs.quality.gate.GateReport) with its suites."""
    results: dict[str, list[dict[str, Any]]] = {}
    for o in report.outcomes:
        spec = {s.name: s for s in suites[o.table].expectations}.get(o.expectation)
        results.setdefault(o.table, []).append({
            "expectation": o.expectation,
            "type": spec.type if spec else o.expectation,
            "kwargs": spec.kwargs if spec else {},
            "critical": o.critical,
            "success": o.success,
            "unexpected_count": o.unexpected_count,
            "observed_value": o.observed_value,
            "sample_keys": o.sample_keys,
            "source": o.source,
            "error": o.error,
        })
    return {
        "layer": report.layer,
        "run_id": report.run_id,
        "validated_at": report.validated_at.isoformat(),
        "as_of": as_of.isoformat() if as_of else None,
        "rows": dict(report.rows),
        "missing": list(report.missing),
        "not_expressible": dict(report.not_expressible),
        "results": results,
    }


def publish_layer(docs_dir: Path, record: Mapping[str, Any]) -> Path:
    """Store a layer's record and re-render the index from every layer's latest record; returns the index."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    for name in LEGACY:
        shutil.rmtree(docs_dir / name, ignore_errors=True)
    _write_atomic(docs_dir / f"{record['layer']}.json", json.dumps(record, default=str, sort_keys=True, indent=1))
    return render(docs_dir)


def render(docs_dir: Path) -> Path:
    """Render index.html from the stored layer records (a layer whose record is unreadable is skipped)."""
    records = []
    for path in docs_dir.glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    order = {name: i for i, name in enumerate(LAYER_ORDER)}
    records.sort(key=lambda r: (order.get(r.get("layer"), len(order)), str(r.get("layer"))))
    html = _TEMPLATE.render(layers=[_view(r) for r in records],
                            rendered_at=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"))
    index = docs_dir / INDEX
    _write_atomic(index, html)
    return index


def _view(record: Mapping[str, Any]) -> dict[str, Any]:
    tables = []
    for table in sorted(record["rows"]):
        rows = []
        for r in record["results"].get(table, []):
            status = "ok" if r["success"] else ("fail" if r["critical"] else "warn")
            rows.append({
                "status": status,
                "status_text": {"ok": "passed", "fail": "FAILED", "warn": "warning"}[status],
                "type": r["type"],
                "kwargs": json.dumps(r["kwargs"], default=str, sort_keys=True),
                "source": r["source"],
                "unexpected_count": r["unexpected_count"],
                "observed": (f"error: {r['error']}" if r["error"] else
                             "" if r["observed_value"] is None else json.dumps(r["observed_value"], default=str)),
                "sample_keys": json.dumps(r["sample_keys"], default=str) if r["sample_keys"] else "",
            })
        tables.append({
            "table": table, "rows": record["rows"][table], "results": rows,
            "failed": sum(r["status"] == "fail" for r in rows), "warnings": sum(r["status"] == "warn" for r in rows),
            "not_expressible": record["not_expressible"].get(table, []),
        })
    return {
        "layer": record["layer"], "run_id": record["run_id"], "validated_at": record["validated_at"],
        "as_of": record["as_of"], "missing": record["missing"], "tables": tables,
        "expectations": sum(len(t["results"]) for t in tables),
        "failed": sum(t["failed"] for t in tables), "warnings": sum(t["warnings"] for t in tables),
    }


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""The dashboards in a real browser: `streamlit run dashboards/app.py` on a sample lake (tests/sample_lake.py),
driven by Playwright with Debian's Chromium (/usr/bin/chromium; `apt-get install -y chromium`).

Signs in (dev mode), opens every page, asserts key texts and saves screenshots to artifacts/screenshots/<page>.png
(with STORYLAKE_UPDATE_DOCS_IMG=1 the overview and story ones are copied to docs/img/ for the README; a plain
test run never rewrites tracked files).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from dashboards import launch
from storylake.processes import stop
from storylake.settings import Settings
from tests import sample_lake

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "artifacts" / "screenshots"
DOCS_IMG = REPO / "docs" / "img"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WIDTH = 1400
TIMEOUT_MS = 30_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def streamlit_server(work: Path) -> Iterator[str]:
    """`storylake dashboard`'s command on 127.0.0.1:<free port> over a sample lake (hermetic: its own HOME and
    working directory, so no developer config or secrets.toml applies: dev-mode sign-in)."""
    settings = Settings(lake=work / "lake")
    sample_lake.build(settings)
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("STORYLAKE_")} | {"HOME": str(work)}
    log_path = work / "streamlit.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(  # what `storylake dashboard` runs (dashboards/launch.py)
            [*launch.streamlit_command(port=port, address="127.0.0.1", headless=True),
             "--server.fileWatcherType", "none"],
            cwd=work, env=launch.dashboard_env(settings, base=base), stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while not _healthy(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not start (exit {proc.poll()}):\n{log_path.read_text()}")
                time.sleep(0.3)
            yield url
        finally:
            stop(proc)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@contextmanager
def chromium_page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            pg = browser.new_page(viewport={"width": WIDTH, "height": 900})
            pg.set_default_timeout(TIMEOUT_MS)
            yield pg
        finally:
            browser.close()


def settle(pg: Page, charts: int = 0) -> None:
    """Wait until the script run is over and `charts` Vega charts are drawn."""
    pg.wait_for_function(
        "n => !document.querySelector('[data-testid=\"stStatusWidget\"]') && "
        "document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length >= n",
        arg=charts,
    )
    pg.wait_for_timeout(400)


def screenshot(pg: Page, name: str) -> Path:
    """The whole page (Streamlit scrolls inside its main container: grow the viewport to its height)."""
    height = pg.evaluate("document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
    pg.set_viewport_size({"width": WIDTH, "height": max(900, int(height) + 140)})
    pg.wait_for_timeout(600)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path))
    pg.set_viewport_size({"width": WIDTH, "height": 900})
    return path


GRIDS_JS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
  .filter(d => d.offsetParent !== null && !(d.closest('details') && !d.closest('details').open))
  .map(d => {
    const s = d.querySelector('.dvn-scroller');
    const t = d.querySelector('table');
    return {scroll_h: s.scrollHeight, client_h: s.clientHeight, scroll_w: s.scrollWidth, client_w: s.clientWidth,
            rows: Number(t.getAttribute('aria-rowcount')) - 1,
            cells: [...t.rows].map(r => [...r.cells].map(c => c.innerText))};
  })"""


def assert_readable_page(pg: Page) -> list[dict[str, object]]:
    """Every visible table shows all its rows and columns (no inner scrollbar), and the page's text has no doubled
    minus, no raw float axis and no NaN; returns the tables (header + cell texts)."""
    text = pg.inner_text("body")
    for bad in ("−-", "--", "0.000000", "NaN", "nan%"):
        assert bad not in text, bad
    pg.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stDataFrame"]')]
      .filter(d => d.offsetParent !== null && !(d.closest('details') && !d.closest('details').open))
      .every(d => d.querySelector('.dvn-scroller') && d.querySelector('table'))""")
    grids = pg.evaluate(GRIDS_JS)
    for g in grids:
        assert g["scroll_h"] <= g["client_h"] + 1, f"rows cut: {g['cells'][0]} ({g['rows']} rows)"
        assert g["scroll_w"] <= g["client_w"] + 1, f"columns cut: {g['cells'][0]}"
        assert len(g["cells"]) == g["rows"] + 1
    return grids


def grid_with(grids: list[dict[str, object]], header: str) -> list[dict[str, str]]:
    """The rows of the table having this column header, as {header: cell text}."""
    for g in grids:
        head = g["cells"][0]  # type: ignore[index]
        if header in head:
            return [dict(zip(head, row, strict=True)) for row in g["cells"][1:]]  # type: ignore[index]
    raise AssertionError(f"no table with a {header!r} column")


def choose(pg: Page, label: str, option: str) -> None:
    """Pick the option whose text contains `option` in the selectbox labelled `label`."""
    pg.get_by_test_id("stSelectbox").filter(has=pg.get_by_text(label, exact=True)).click()
    pg.get_by_role("option").filter(has_text=option).first.click()


def open_page(pg: Page, title: str) -> None:
    pg.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(pg.get_by_role("heading", name=title, level=1)).to_be_visible()


def test_data_docs_open_offline_in_chromium(tmp_path: Path) -> None:
    """The Data Docs page of a sample lake's silver and gold gates, opened from disk with the network blocked:
    both layers render and the page asks for nothing but itself."""
    from jobs.quality import run_gate

    settings = Settings(lake=tmp_path / "lake")
    sample_lake.build(settings)
    run_gate(settings, "silver", "run-docs-silver", raise_on_failure=False)
    index = run_gate(settings, "gold", "run-docs-gold", raise_on_failure=False).docs_index
    assert index is not None
    requested: list[str] = []
    with chromium_page() as pg:
        pg.context.set_offline(True)
        pg.on("request", lambda r: requested.append(r.url))
        pg.goto(index.as_uri())
        expect(pg.get_by_role("heading", name="storylake Data Docs", level=1)).to_be_visible()
        for layer in ("silver", "gold"):
            expect(pg.locator(f"h2#{layer}")).to_contain_text(layer)
        for table in ("silver.segments", "gold.segment_insights"):
            expect(pg.get_by_role("heading", name=table, level=3)).to_be_visible()
        expect(pg.get_by_role("cell", name="expect_column_values_to_be_between").first).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SCREENSHOTS / "data_docs.png"))
    assert requested == [index.as_uri()]


def test_every_page_in_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser test needs Debian's Chromium "
                    "(apt-get update && apt-get install -y chromium chromium-driver)", pytrace=False)
    with streamlit_server(tmp_path) as url, chromium_page() as pg:
        drive_every_page(pg, url)
    if os.environ.get("STORYLAKE_UPDATE_DOCS_IMG") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCREENSHOTS / "overview.png", DOCS_IMG / "overview.png")
        shutil.copyfile(SCREENSHOTS / "story.png", DOCS_IMG / "story.png")
    assert all((SCREENSHOTS / f"{n}.png").stat().st_size > 10_000
               for n in ("overview", "story", "seen_by", "seen_by_expired", "stickers", "ops"))


def drive_every_page(pg: Page, url: str) -> None:
    pg.goto(url)
    expect(pg.get_by_text("DEV MODE — no authentication")).to_be_visible()
    expect(pg.get_by_role("button", name="Deploy")).to_have_count(0)  # the toolbar in viewer mode

    # Sign in (dev mode): as creator B, then as creator A.
    choose(pg, "Creator (user id)", "2002")
    expect(pg.get_by_text("Creator 2002 · now 2026-11-02 12:00 UTC")).to_be_visible()
    expect(pg.get_by_text("9,173").first).to_be_visible()  # B's impressions today
    expect(pg.get_by_text("Green ring: close friends story live")).to_be_visible()
    choose(pg, "Creator (user id)", "1001")
    expect(pg.get_by_text("Creator 1001 · now 2026-11-02 12:00 UTC")).to_be_visible()

    # Overview
    expect(pg.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(pg.get_by_text("Gradient ring: your story is live")).to_be_visible()  # a badge (with its icon)
    for text in ("Today so far", "Last 7 days", "Last 28 days", "373"):
        expect(pg.get_by_text(text, exact=True).first).to_be_visible()
    expect(pg.get_by_text("9,173")).to_have_count(0)
    settle(pg, charts=3)
    screenshot(pg, "overview")
    expect(pg.get_by_text("Today so far · Nov 02 until 12:00 UTC", exact=False)).to_be_visible()
    assert len(grid_with(assert_readable_page(pg), "Live frames")) == 1  # the active story

    # Story detail
    open_page(pg, "Story detail")
    expect(pg.get_by_text("78.3%")).to_be_visible()
    expect(pg.get_by_text("Reach per frame")).to_be_visible()
    settle(pg, charts=2)
    screenshot(pg, "story")
    viewing = grid_with(assert_readable_page(pg), "Drop-off")
    assert [r["Frame"] for r in viewing] == ["1", "2", "3"]
    rates = [float(r[c]) for r in viewing for c in ("Drop-off", "Exit rate") if r[c] not in ("", "—")]
    assert len(rates) == 5 and all(0 <= x <= 1 for x in rates)  # the last frame has no drop-off

    # Seen By: page through segment 5101 (23 viewers) ten at a time, then an expired segment
    open_page(pg, "Seen By")
    choose(pg, "Segment", "segment 5101 ")
    choose(pg, "Viewers per page", "10")
    expect(pg.get_by_text("Page 1 · viewers 1–10 of 23", exact=False)).to_be_visible()
    pg.get_by_role("button", name="Next page").click()
    expect(pg.get_by_text("Page 2 · viewers 11–20 of 23", exact=False)).to_be_visible()
    settle(pg)
    screenshot(pg, "seen_by")
    assert len(grid_with(assert_readable_page(pg), "Viewer")) == 10
    choose(pg, "Segment", "segment 5001 ")
    expect(pg.get_by_text("is no longer available", exact=False)).to_be_visible()
    screenshot(pg, "seen_by_expired")

    # Stickers
    open_page(pg, "Stickers")
    expect(pg.get_by_text("sticker 7001 · segment 5101", exact=False)).to_be_visible()
    settle(pg, charts=1)
    screenshot(pg, "stickers")
    pg.get_by_role("tab", name="Quizzes (1)").click()
    expect(pg.get_by_text("66.7%")).to_be_visible()
    pg.get_by_role("tab", name="Sliders (1)").click()
    expect(pg.get_by_text("0.61", exact=True)).to_be_visible()

    # Ops (operators only)
    pg.get_by_test_id("stRadio").get_by_text("Operator", exact=True).click()
    expect(pg.get_by_role("heading", name="Ops", level=1)).to_be_visible()
    for text in ("Serving snapshot", "Tables", "Quarantine", "Quality gate", "Pipeline runs"):
        expect(pg.get_by_role("heading", name=text)).to_be_visible()
    expect(pg.get_by_test_id("stSidebarNav").get_by_role("link", name="Seen By")).to_have_count(0)
    settle(pg, charts=1)
    screenshot(pg, "ops")
    grids = assert_readable_page(pg)
    assert len(grid_with(grids, "Last commit (UTC)")) == 15  # every table of the sample lake, none cut
    assert [r["Run"] for r in grid_with(grids, "Wall time (s)")] == ["run-sample-2", "run-sample-1"]

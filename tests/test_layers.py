"""Architecture of the top-level packages.

- The import contracts in pyproject.toml `[tool.importlinter]` hold (`lint-imports`): the kernel `storylake`
  imports no other part, serving/dashboards never reach jobs or pyspark, jobs never reach the serving side or
  airflow, pipeline never reaches airflow, and the packages are layered without cycles.
- At run time, the serving API and every dashboard page (run as Streamlit scripts) load without pyspark:
  a fresh interpreter imports them and no `pyspark*` module ends up in sys.modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DASHBOARDS = ROOT / "dashboards"
PAGE_DIRS = ("creator", "ops")


def test_import_contracts_hold() -> None:
    lint_imports = BIN / "lint-imports"
    assert lint_imports.exists(), f"{lint_imports} is missing: install the dev extra (`make test` does)"
    proc = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, f"lint-imports failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    assert "0 broken" in proc.stdout, proc.stdout


# Runs in a fresh interpreter (argv: repo root): imports every serving module and every non-page dashboards
# module by name, then runs dashboards/app.py and every page script under Streamlit's AppTest against a lake
# that does not exist. app.py stops at "no serving snapshot", a page run on its own stops at
# context.current(); both only after their imports ran. Prints what was loaded as JSON.
CHILD = r"""
import importlib, json, pkgutil, sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

import dashboards
import serving

root = Path(sys.argv[1])
imported = []
for package, skip in ((serving, set()), (dashboards, {"dashboards.app"})):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name not in skip:
            importlib.import_module(info.name)
            imported.append(info.name)

scripts = [root / "dashboards" / "app.py"]
for sub in sys.argv[2:]:
    scripts += sorted((root / "dashboards" / sub).glob("*.py"))
runs = {}
for script in scripts:
    at = AppTest.from_file(str(script), default_timeout=120)
    at.secrets = {"storylake": {}}  # hermetic: never the developer's own secrets.toml
    at.run()
    runs[str(script.relative_to(root))] = {
        "exceptions": [e.value for e in at.exception],
        "errors": [e.value for e in at.error],
    }

print(json.dumps({
    "imported": imported,
    "runs": runs,
    "modules": sorted(sys.modules),
}))
"""


def test_serving_and_dashboards_load_without_pyspark(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYLAKE_")}
    env["STORYLAKE_LAKE"] = str(tmp_path / "no-lake")  # missing: no snapshot, nothing to read
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), *PAGE_DIRS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, f"child failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    modules = set(report["modules"])

    # Everything meant to be covered really was loaded.
    assert {"serving.api", "dashboards.cached", "dashboards.charts", "dashboards.context", "dashboards.display",
            "dashboards.signin", "dashboards.launch"} <= set(report["imported"]), report["imported"]
    pages = {str(p.relative_to(ROOT)) for sub in PAGE_DIRS for p in (DASHBOARDS / sub).glob("*.py")}
    assert pages and set(report["runs"]) == pages | {"dashboards/app.py"}, report["runs"]
    for script, run in report["runs"].items():
        assert not run["exceptions"], (script, run)
    assert any("No serving snapshot" in e for e in report["runs"]["dashboards/app.py"]["errors"]), report["runs"]
    for page in pages:  # each page ran past its imports up to context.current()
        assert any("dashboards/app.py" in e for e in report["runs"][page]["errors"]), (page, report["runs"][page])
    assert "streamlit" in modules and "serving.dashboard_queries" in modules

    spark = sorted(m for m in modules if m.startswith("pyspark"))
    assert not spark, f"serving/dashboards pulled in {len(spark)} pyspark modules: {spark[:8]}"

"""Plain functions behind the serving CLI commands (toolkit/cli.py wires them to typer).

Each opens the snapshot serving/CURRENT names (NotFoundError with a hint to run `storylake run` when
nothing has been published) and returns what the command prints.

    storylake tray     --viewer V [--now T] [--limit N] [--cursor C]      -> tray_json(...)
    storylake seen-by  --segment S --as U [--now T] [--limit N] [--cursor C] -> seen_by_json(...)
    storylake insights --author A --as U [--now T]                         -> insights_json(...)
    storylake expire   [--now T]                                           -> expire_report(...)
    storylake publish  [--as-of T]                                         -> publish_report(...)

Exit codes come from toolkit.exits.exit_code_for: PermissionError -> 3, NotFoundError -> 4.
"""

from __future__ import annotations

from datetime import datetime

from serving import render
from serving.expire import expire
from serving.insights import insights
from serving.publish import PublishReport, publish
from serving.seen_by import seen_by
from serving.snapshot import open_current
from serving.tray import tray
from storylake.settings import Settings


def tray_json(settings: Settings, viewer_id: int, now: datetime, limit: int = 50, cursor: str | None = None) -> str:
    return render.tray_json(tray(open_current(settings), viewer_id, now, limit=limit, cursor=cursor))


def seen_by_json(
    settings: Settings, segment_id: int, requester_id: int, now: datetime, limit: int = 50, cursor: str | None = None
) -> str:
    page = seen_by(open_current(settings), segment_id, requester_id, now, limit=limit, cursor=cursor)
    return render.seen_by_json(page)


def insights_json(settings: Settings, author_id: int, requester_id: int, now: datetime) -> str:
    return render.insights_json(insights(open_current(settings), author_id, requester_id, now))


def expire_report(settings: Settings, now: datetime) -> dict[str, object]:
    """Run the expiry cleanup; {'now', 'deleted': {table: rows}, 'versions', 'missing', 'duration_s'}."""
    return expire(settings, now).as_dict()


def publish_report(settings: Settings, as_of: datetime) -> PublishReport:
    """Publish a new snapshot and make it CURRENT (str(report) is the human-readable summary)."""
    return publish(settings, as_of)

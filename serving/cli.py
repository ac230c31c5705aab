"""Plain functions behind the serving CLI commands (toolkit/cli.py wires them to typer).

Each opens the snapshot serving/CURRENT names (NotFoundError with a hint to run `storylake run` when
nothing has been published) and returns what the command prints.

    storylake tray     --viewer V [--now T] [--limit N] [--cursor C]      -> tray_json(...)
    storylake seen-by  --segment S --as U [--now T] [--limit N] [--cursor C] -> seen_by_json(...)
    storylake insights --author A --as U [--now T]                         -> insights_json(...)
    storylake expire   [--now T]                                           -> expire_report(...)
    storylake publish  [--as-of T]   (default: the newest finished run's)  -> publish_report(...)

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
from storylake import increments
from storylake.clock import iso
from storylake.errors import InvalidInputError, NotFoundError
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


def publish_report(settings: Settings, as_of: datetime | None) -> PublishReport:
    """Publish a new snapshot and make it CURRENT (str(report) is the human-readable summary). The snapshot is as of
    the lake's newest finished run unless `as_of` says otherwise, and never as of an instant before it (its tables
    hold data from after that instant: trays and Seen By would be computed for a moment the data contradicts)."""
    newest = increments.newest_as_of(settings)
    if as_of is None:
        if newest is None:
            raise NotFoundError(f"no pipeline run has finished in {settings.lake}: run `storylake run` first "
                                "(or pass --as-of)")
        as_of = newest
    elif newest is not None and as_of < newest:
        raise InvalidInputError(f"--as-of {iso(as_of)} is before the lake's newest finished run ({iso(newest)}): "
                                "publish as of that run or later")
    return publish(settings, as_of)

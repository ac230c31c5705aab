"""storylake dashboards: `streamlit run dashboards/app.py` (or `storylake dashboard`).

Reads the published serving snapshot of the lake in STORYLAKE_LAKE (default .storylake/lake), never Spark.
`now` is the snapshot's as_of (so demo data looks live) unless STORYLAKE_NOW (ISO-8601) pins it. The lake,
STORYLAKE_NOW and STORYLAKE_REQUIRE_AUTH are read once, into storylake.settings.Settings (never os.environ here).
Creators see their own stories only (every query runs with the signed-in user as requester); the Ops page
is for operators. Sign-in: dashboards/signin.py.
"""

from __future__ import annotations

import streamlit as st

from dashboards import cached, context, signin
from dashboards.display import when
from serving import dashboard_queries as q
from serving.snapshot import current_id
from storylake.clock import utc
from storylake.settings import Settings, SettingsError

st.set_page_config(page_title="storylake", page_icon=":material/auto_stories:", layout="wide")

try:
    settings = Settings.from_env()
except SettingsError as exc:
    st.error(f"Configuration error: {exc}")
    st.stop()

snapshot_id = current_id(settings)
if snapshot_id is None:
    st.error(
        f"No serving snapshot has been published under `{settings.serving_dir}`. "
        "Run `storylake demo` (or `storylake run`) first, or point STORYLAKE_LAKE at a lake."
    )
    st.stop()
try:
    snap = cached.snapshot(str(settings.lake), snapshot_id)
    now = settings.now or utc(snap.as_of)
except Exception as exc:  # noqa: BLE001 - shown to the user, nothing else can be done here
    st.error(f"Cannot open serving snapshot {snapshot_id}: {exc}")
    st.stop()

result = signin.sign_in(lambda: q.known_authors(snap), settings)
identity = result.identity

if identity is None:
    pages = {"": [st.Page(lambda: signin.sign_in_page(result), title="Sign in", icon=":material/login:",
                          url_path="sign-in", default=True)]}
else:
    context.publish(context.DashboardContext(
        lake=str(settings.lake), snapshot_id=snapshot_id, as_of=snap.as_of, built_at=snap.built_at, now=now,
        identity=identity,
    ))
    pages = {}
    if identity.user_id is not None:
        pages["Creator"] = [
            st.Page("creator/overview.py", title="Overview", icon=":material/insights:", url_path="overview",
                    default=True),
            st.Page("creator/story.py", title="Story detail", icon=":material/view_carousel:", url_path="story"),
            st.Page("creator/seen_by.py", title="Seen By", icon=":material/visibility:", url_path="seen-by"),
            st.Page("creator/stickers.py", title="Stickers", icon=":material/poll:", url_path="stickers"),
        ]
    if identity.operator:
        pages["Operations"] = [
            st.Page("ops/health.py", title="Ops", icon=":material/monitor_heart:", url_path="ops",
                    default=identity.user_id is None),
        ]

page = st.navigation(pages)
with st.sidebar:
    st.divider()
    st.caption(
        f"Snapshot `{snapshot_id}`  \nData as of {when(snap.as_of)}  \nNow {when(now)}"
        + ("  (STORYLAKE_NOW)" if settings.now else "")
    )
page.run()

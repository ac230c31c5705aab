"""What every page needs, resolved once per script run by dashboards/app.py: the lake, the serving snapshot
being read, the app's `now` and the signed-in identity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import streamlit as st

from dashboards.signin import Identity

_STATE_KEY = "storylake.context"


@dataclass(frozen=True)
class DashboardContext:
    lake: str
    snapshot_id: str
    as_of: datetime
    built_at: datetime
    now: datetime
    identity: Identity

    @property
    def requester_id(self) -> int:
        """The signed-in creator (pages for creators only run when there is one)."""
        if self.identity.user_id is None:
            raise PermissionError("no creator is signed in")
        return self.identity.user_id


def publish(ctx: DashboardContext) -> None:
    st.session_state[_STATE_KEY] = ctx


def current() -> DashboardContext:
    ctx = st.session_state.get(_STATE_KEY)
    if not isinstance(ctx, DashboardContext):
        st.error("Open the dashboards through dashboards/app.py (`storylake dashboard`).")
        st.stop()
    return ctx


def creator() -> DashboardContext:
    """The context of a creator page (stops the page when no creator is signed in)."""
    ctx = current()
    if ctx.identity.user_id is None:
        st.warning("Sign in as a creator to see this page.")
        st.stop()
    return ctx


def operator() -> DashboardContext:
    """The context of an operator page (stops the page for anyone else)."""
    ctx = current()
    if not ctx.identity.operator:
        st.warning("The Ops page is for operators.")
        st.stop()
    return ctx

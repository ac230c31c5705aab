"""Who is using the dashboards: OIDC sign-in (st.login) when `[auth]` is configured in secrets, otherwise a
local development sign-in that is clearly labelled and authenticates nobody.

OIDC (`.streamlit/secrets.toml`; st.login needs Authlib, installed by `streamlit[auth]`):

    [auth]
    redirect_uri = "http://localhost:8501/oauth2callback"
    cookie_secret = "a long random string"
    client_id = "..."
    client_secret = "..."
    server_metadata_url = "https://accounts.example.com/.well-known/openid-configuration"

    [storylake]
    operators = ["ops@example.com"]          # OIDC subjects or emails that may open the Ops page
    # auth_provider = "google"              # only when [auth] has several named providers

    [storylake.users]                        # OIDC subject or email -> storylake user id (creator)
    "alice@example.com" = 1001
    "google-oauth2|1234567890" = 2002

The subject (`sub`) is looked up first, then the email (not when the provider says it is unverified).
A signed-in account that maps to nobody sees no data. Set STORYLAKE_REQUIRE_AUTH=1 to refuse the
development sign-in when `[auth]` is missing (production deployments).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from storylake import identities
from storylake.settings import Settings

DEV_MODE_LABEL = "DEV MODE — no authentication"
ROLE_CREATOR, ROLE_OPERATOR = "Creator", "Operator"
DEV_ROLE_KEY, DEV_USER_KEY = "dev_role", "dev_user_id"


@dataclass(frozen=True)
class Identity:
    """The signed-in user: a creator (user_id) and/or an operator (may open the Ops page)."""

    user_id: int | None
    operator: bool
    name: str
    mode: str  # "oidc" | "dev"

    @property
    def requester(self) -> str:
        """A stable key for the person (cache key of the non-creator queries)."""
        return f"{self.mode}:{self.name}"


@dataclass(frozen=True)
class SignIn:
    identity: Identity | None
    mode: str  # "oidc" | "dev" | "refused"
    problem: str | None = None  # why nobody is signed in (shown on the sign-in page)
    provider: str | None = None  # st.login provider


def auth_configured() -> bool:
    """True when secrets hold an [auth] section (st.login can run)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all (StreamlitSecretNotFoundError) or unreadable
        return False


def _storylake_secrets() -> Mapping[str, Any]:
    try:
        section = st.secrets.get("storylake", {})
    except Exception:  # noqa: BLE001 - no secrets file
        return {}
    return section if isinstance(section, Mapping) else {}


def _provider(auth: Mapping[str, Any], configured: Mapping[str, Any]) -> str | None:
    if configured.get("auth_provider"):
        return str(configured["auth_provider"])
    named = [k for k, v in auth.items() if isinstance(v, Mapping)]
    return named[0] if len(named) == 1 else None


def oidc_identity(user: Mapping[str, Any], config: Mapping[str, Any]) -> Identity | None:
    """Map an OIDC user (st.user) to an Identity via [storylake.users] / [storylake].operators."""
    users = config.get("users", {}) or {}
    operators = {str(o) for o in (config.get("operators", []) or [])}
    keys = identities.lookup_keys(user)
    user_id = identities.mapped_user(user, users)
    operator = any(k in operators for k in keys)
    if user_id is None and not operator:
        return None
    name = str(user.get("email") or user.get("name") or user.get("sub"))
    return Identity(user_id=user_id, operator=operator, name=name, mode="oidc")


def sign_in(authors: Callable[[], list[int]], settings: Settings) -> SignIn:
    """Resolve the signed-in user and draw the sidebar's sign-in block (OIDC account or dev-mode picker; the
    latter is refused when settings.require_auth, i.e. STORYLAKE_REQUIRE_AUTH, is set)."""
    if auth_configured():
        return _oidc_sidebar()
    if settings.require_auth:
        return SignIn(None, "refused", "STORYLAKE_REQUIRE_AUTH is set but no [auth] section is configured in "
                                       ".streamlit/secrets.toml: sign-in is impossible.")
    return _dev_sidebar(authors)


def _oidc_sidebar() -> SignIn:
    config = _storylake_secrets()
    provider = _provider(st.secrets["auth"], config)
    if not st.user.is_logged_in:
        return SignIn(None, "oidc", None, provider)
    user = st.user.to_dict()
    identity = oidc_identity(user, config)
    with st.sidebar:
        st.markdown(f"Signed in as **{user.get('email') or user.get('name') or 'unknown'}**")
        if identity is not None:
            roles = ([f"creator {identity.user_id}"] if identity.user_id is not None else []) + (
                ["operator"] if identity.operator else [])
            st.caption(" · ".join(roles))
        st.button("Log out", key="logout", on_click=st.logout)
    if identity is None:
        return SignIn(None, "oidc", "Your account is not linked to a storylake user: ask an administrator to add "
                                    "your email or OIDC subject to [storylake.users].", provider)
    return SignIn(identity, "oidc", None, provider)


def _dev_sidebar(authors: Callable[[], list[int]]) -> SignIn:
    with st.sidebar:
        st.warning(DEV_MODE_LABEL, icon=":material/warning:")
        st.caption("No [auth] section in .streamlit/secrets.toml: pick who you are. Anyone can pick anyone.")
        role = st.radio("Sign in as", (ROLE_CREATOR, ROLE_OPERATOR), key=DEV_ROLE_KEY, horizontal=True)
        if role == ROLE_OPERATOR:
            return SignIn(Identity(None, True, "operator", "dev"), "dev")
        ids = authors()
        if not ids:
            return SignIn(None, "dev", "The serving snapshot has no authors yet.")
        user_id = st.selectbox("Creator (user id)", ids, key=DEV_USER_KEY,
                               help="Authors with at least one segment in the snapshot, most viewed first.")
    return SignIn(Identity(int(user_id), False, f"creator {int(user_id)}", "dev"), "dev")


def sign_in_page(result: SignIn) -> None:
    """The page shown to nobody-signed-in: the OIDC log-in button or why sign-in is impossible."""
    st.title("storylake dashboards")
    if result.mode == "oidc" and result.problem is None:
        st.write("Creators see the insights, Seen By lists and sticker results of their own stories.")
        st.button("Log in", key="login", type="primary", on_click=st.login,
                  args=(result.provider,) if result.provider else ())
        return
    st.error(result.problem or "Nobody is signed in.")

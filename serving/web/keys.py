"""The API's key material: the HS256 token secret, and keys derived from it for cursors.

Production sets STORYLAKE_API_SECRET (>= 32 characters) or an OIDC issuer (STORYLAKE_API_JWKS_URL). Without a
secret, a development secret is created once under the serving folder (`api-dev.secret`, mode 0600) so that
`storylake serve` and `storylake token` work on a fresh machine; the server logs that it uses it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from storylake.settings import Settings

DEV_SECRET_NAME = "api-dev.secret"


def dev_secret_path(settings: Settings) -> Path:
    return settings.serving_dir / DEV_SECRET_NAME


def token_secret(settings: Settings) -> tuple[str, bool]:
    """(HS256 secret, is_development_secret)."""
    if settings.api_secret:
        return settings.api_secret, False
    path = dev_secret_path(settings)
    try:
        return path.read_text(encoding="ascii").strip(), True
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{DEV_SECRET_NAME}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_urlsafe(48))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # first writer wins; a concurrent one reads the winner's secret
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text(encoding="ascii").strip(), True

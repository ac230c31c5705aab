"""Bearer-token authentication: who is calling.

`Authorization: Bearer <JWT>`, verified in one of two ways:
  - HS256 with the API secret (STORYLAKE_API_SECRET, or the development secret: see keys.py); `sub` is the storylake
    user id as a decimal string (what `storylake token USER` mints);
  - an OIDC issuer's tokens, checked against its JWKS (STORYLAKE_API_JWKS_URL; RS256/ES256/PS256/EdDSA), with `sub`
    or the verified email mapped to a storylake user through STORYLAKE_API_USERS (storylake.identities, the rule
    the dashboards' sign-in uses) or, failing that, a numeric `sub`.
`exp` is required (30 s leeway). Every failure is an AuthError whose message says what is wrong, never why a
signature failed in detail.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cachetools import LRUCache

from serving.web.keys import token_secret
from storylake import identities
from storylake.errors import StorylakeError
from storylake.settings import Settings

LEEWAY_S = 30
ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384", "EdDSA"]
DEFAULT_TTL_S = 3600


class AuthError(StorylakeError):
    """The request is not authenticated (missing, malformed, expired or unverifiable token)."""


@dataclass
class Authenticator:
    secret: str
    jwks: jwt.PyJWKClient | None
    users: dict[str, int]
    # token -> (user, exp, nbf) of tokens already verified: an app sends the same token with every request, and its
    # signature and claims cannot change; only the time checks are repeated (measured: 5 % of a Seen By answer).
    verified: LRUCache[str, tuple[int, float, float]] = field(default_factory=lambda: LRUCache(maxsize=65_536))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        secret, _ = token_secret(settings)
        jwks = jwt.PyJWKClient(settings.api_jwks_url, cache_keys=True, lifespan=300, timeout=5) \
            if settings.api_jwks_url else None
        users = identities.load_users(settings.api_users) if settings.api_users else {}
        return cls(secret=secret, jwks=jwks, users=users)

    def user_of(self, authorization: str | None) -> int:
        """The storylake user id of a request's Authorization header value."""
        if not authorization:
            raise AuthError("missing bearer token: send Authorization: Bearer <token>")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization must be 'Bearer <token>'")
        with self._lock:
            known = self.verified.get(token)
        if known is not None:
            user, exp, nbf = known
            now = time.time()
            if now > exp + LEEWAY_S:
                raise AuthError("bearer token has expired")
            if now >= nbf - LEEWAY_S:
                return user
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("bearer token is not a JWT") from None
        claims = self._verify(token, str(header.get("alg", "")))
        user = identities.mapped_user(claims, self.users) if self.users else None
        if user is None:
            user = identities.numeric_subject(claims)
        if user is None:
            raise AuthError("token subject maps to no storylake user")
        with self._lock:
            self.verified[token] = (user, float(claims["exp"]), float(claims.get("nbf", float("-inf"))))
        return user

    def _verify(self, token: str, alg: str) -> dict[str, Any]:
        options = {"require": ["sub", "exp"], "verify_aud": False}
        try:
            if alg == "HS256":
                return jwt.decode(token, self.secret, algorithms=["HS256"], options=options, leeway=LEEWAY_S)
            if self.jwks is not None and alg in ASYMMETRIC:
                key = self.jwks.get_signing_key_from_jwt(token)
                return jwt.decode(token, key.key, algorithms=ASYMMETRIC, options=options, leeway=LEEWAY_S)
        except jwt.ExpiredSignatureError:
            raise AuthError("bearer token has expired") from None
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"bearer token's key cannot be found at the issuer: {exc}") from None
        except jwt.PyJWTError:
            raise AuthError("bearer token is invalid (bad signature or claims)") from None
        raise AuthError(f"bearer token algorithm {alg!r} is not accepted")


def mint(settings: Settings, user_id: int, ttl_s: int = DEFAULT_TTL_S, now: float | None = None) -> str:
    """An HS256 token for `user_id` valid `ttl_s` seconds (development and service-to-service use)."""
    if not 1 <= user_id <= identities.INT64_MAX:
        raise ValueError(f"user id must be within 1..2^63-1, got {user_id}")
    if ttl_s < 1:
        raise ValueError(f"ttl must be >= 1 s, got {ttl_s}")
    secret, _ = token_secret(settings)
    issued = int(time.time() if now is None else now)
    return jwt.encode({"sub": str(user_id), "iat": issued, "exp": issued + ttl_s}, secret, algorithm="HS256")

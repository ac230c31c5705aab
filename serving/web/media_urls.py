"""Media URLs in trays (seed: "media keys or signed URLs"): the configured CDN template, signed with an expiry
when a signing key is configured.

    template  STORYLAKE_MEDIA_URL_TEMPLATE, e.g. https://cdn.example.com/stories/{media_id}.{media_type}
              ({media_id}, {segment_id}, {media_type})
    signed    <url>?expires=<unix s>&sig=<hex HMAC-SHA256(key, "<path>:<expires>")[:32]>

The expiry is rounded up to the next multiple of the TTL plus one TTL, so a URL is stable for a while (CDN and
client caches) and always valid for at least one TTL. `verify` is the check an edge would run.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from storylake.settings import Settings


class MediaUrls:
    def __init__(self, settings: Settings) -> None:
        self.template = settings.media_url_template
        self.key = settings.media_signing_key.encode() if settings.media_signing_key else None
        self.ttl = int(settings.media_url_ttl_s)

    def epoch(self, now: datetime) -> int | None:
        """The signing period of `now` (every URL signed in it carries the same expiry); None when unsigned."""
        return None if self.key is None else int(now.timestamp()) // self.ttl

    def url(self, media_id: int | None, segment_id: int, media_type: str, now: datetime) -> str | None:
        if media_id is None:
            return None
        url = self.template.format(media_id=media_id, segment_id=segment_id, media_type=media_type)
        if self.key is None:
            return url
        expires = (int(now.timestamp()) // self.ttl + 2) * self.ttl
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}expires={expires}&sig={self._sig(urlsplit(url).path, expires)}"

    def verify(self, url: str, now: datetime) -> bool:
        """The signature and expiry of a signed URL hold at `now`."""
        if self.key is None:
            return True
        parts = urlsplit(url)
        q = parse_qs(parts.query)
        try:
            expires = int(q["expires"][0])
            sig = q["sig"][0]
        except (KeyError, IndexError, ValueError):
            return False
        return now.timestamp() < expires and hmac.compare_digest(sig, self._sig(parts.path, expires))

    def _sig(self, path: str, expires: int) -> str:
        assert self.key is not None
        return hmac.new(self.key, f"{path}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

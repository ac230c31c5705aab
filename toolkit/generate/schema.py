"""Vocabulary of the landing format: event types, enums, id prefixes and time units.

The landing format is fixed (external collectors write it); see data_contracts/events/*.yaml.
Enum values are stored as small integer codes in the generator's columns and rendered through these tuples.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from storylake.rules.lifetimes import SEGMENT_LIFETIME

MS_SECOND: Final = 1_000
MS_MINUTE: Final = 60_000
MS_HOUR: Final = 3_600_000
MS_DAY: Final = 86_400_000
SEGMENT_TTL_MS: Final = SEGMENT_LIFETIME // timedelta(milliseconds=1)  # viewable in [created_at, expires_at)
# The initial graph is emitted during [start, start + 10 min), before any other activity.
GRAPH_MS: Final = 10 * MS_MINUTE

EVENT_TYPES: Final = (
    "segment_created",
    "segment_deleted",
    "segment_archived",
    "segment_view",
    "navigation",
    "sticker_interaction",
    "engagement",
    "relationship",
    "profile_updated",
)

ID_PREFIX: Final = {
    "segment_created": "sc",
    "segment_deleted": "sd",
    "segment_archived": "sa",
    "segment_view": "sv",
    "navigation": "nv",
    "sticker_interaction": "si",
    "engagement": "en",
    "relationship": "rl",
    "profile_updated": "pu",
}

# Payload fields of each event type, in the order they are written (after event_id, event_type, event_time).
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "segment_created": (
        "segment_id",
        "author_id",
        "media_id",
        "media_type",
        "audience",
        "duration_ms",
        "stickers",
    ),
    "segment_deleted": ("segment_id", "author_id"),
    "segment_archived": ("segment_id", "author_id", "highlight_id"),
    "segment_view": (
        "segment_id",
        "viewer_id",
        "view_duration_ms",
        "completion_pct",
        "view_source",
        "idempotency_key",
    ),
    "navigation": ("segment_id", "viewer_id", "action"),
    "sticker_interaction": (
        "sticker_id",
        "segment_id",
        "user_id",
        "sticker_type",
        "option_index",
        "value",
        "text",
        "idempotency_key",
    ),
    "engagement": ("kind", "actor_id", "target_user_id", "segment_id"),
    "relationship": ("kind", "user_id", "other_user_id"),
    "profile_updated": ("user_id", "username", "profile_picture_media_id"),
}

MEDIA_TYPES: Final = ("photo", "video")
AUDIENCES: Final = ("public", "close_friends")
STICKER_TYPES: Final = (
    "poll",
    "quiz",
    "slider",
    "question",
    "countdown",
    "add_yours",
    "mention",
    "location",
    "hashtag",
    "link",
)
VIEW_SOURCES: Final = ("tray", "profile", "reshare", "mention")
NAV_ACTIONS: Final = ("tap_forward", "tap_back", "tap_exit", "swipe_forward", "swipe_down")
ENGAGEMENT_KINDS: Final = (
    "reply",
    "share",
    "profile_visit",
    "follow",
    "link_click",
    "dm_sent",
    "like",
    "comment",
)
RELATIONSHIP_KINDS: Final = (
    "follow",
    "unfollow",
    "close_friend_add",
    "close_friend_remove",
    "block",
    "unblock",
    "hide_story",
    "unhide_story",
    "set_private",
    "set_public",
    "approve_follower",
)

# Integer codes used in the generator's columns.
PHOTO, VIDEO = 0, 1
PUBLIC, CLOSE_FRIENDS = 0, 1
POLL, QUIZ, SLIDER, QUESTION, COUNTDOWN, ADD_YOURS, MENTION, LOCATION, HASHTAG, LINK = range(10)
TRAY, PROFILE, RESHARE, MENTION_SOURCE = range(4)
TAP_FORWARD, TAP_BACK, TAP_EXIT, SWIPE_FORWARD, SWIPE_DOWN = range(5)
REPLY, SHARE, PROFILE_VISIT, FOLLOW_FROM_STORY, LINK_CLICK, DM_SENT, LIKE, COMMENT = range(8)
(
    FOLLOW,
    UNFOLLOW,
    CLOSE_FRIEND_ADD,
    CLOSE_FRIEND_REMOVE,
    BLOCK,
    UNBLOCK,
    HIDE_STORY,
    UNHIDE_STORY,
    SET_PRIVATE,
    SET_PUBLIC,
    APPROVE_FOLLOWER,
) = range(11)

MAX_TEXT_CHARS: Final = 300  # sticker_interaction.text
NULL: Final = -1  # null marker in integer columns

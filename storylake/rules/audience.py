"""Audience rules, in one place (DESIGN §5), shared by the Spark jobs and the DuckDB serving layer.

The rules are expressed once as SQL over a fixed set of flag columns. Both engines first compute the
flags for (viewer, author, segment, instant t) from the `relationships` intervals, then apply
ALLOWED_SQL / DENIAL_REASON_SQL; the SQL below is valid in Spark SQL and in DuckDB.

Flags (booleans unless said):
  is_self          viewer_id = author_id (the author always sees their own segments)
  audience         the segment's audience: 'public' | 'close_friends'
  blocked          a block holds at t in either direction (author->viewer or viewer->author)
  hidden           the author hides their stories from the viewer at t
  close_friend     the viewer is on the author's close friends list at t
  author_private   the author's account is private at t
  follows          the viewer follows the author at t
  approved         the (private) author approved the viewer as a follower, not since ended, at t
"""

from __future__ import annotations

FLAGS = ("is_self", "audience", "blocked", "hidden", "close_friend", "author_private", "follows", "approved")

# Relation names in silver.relationships and the flag each one sets (see data_contracts/silver).
# (flag, relation, direction): 'author->viewer' means user_id = author, other_user_id = viewer.
RELATION_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("blocked_by_author", "block", "author->viewer"),
    ("blocked_by_viewer", "block", "viewer->author"),
    ("hidden", "hide", "author->viewer"),
    ("close_friend", "close_friend", "author->viewer"),
    ("follows", "follow", "viewer->author"),
    ("approved", "approved", "author->viewer"),
)

# Reasons, in the order they are checked; the first that applies is the one reported.
DENIAL_REASONS: tuple[tuple[str, str], ...] = (
    ("blocked", "blocked"),
    ("hidden_from_viewer", "hidden"),
    ("not_close_friend", "audience = 'close_friends' AND NOT close_friend"),
    ("private_not_approved", "author_private AND NOT (follows AND approved)"),
)

DENIAL_REASON_SQL = (
    "CASE WHEN is_self THEN NULL "
    + " ".join(f"WHEN {cond} THEN '{reason}'" for reason, cond in DENIAL_REASONS)
    + " ELSE NULL END"
)
ALLOWED_SQL = f"(({DENIAL_REASON_SQL}) IS NULL)"


def holds_at_sql(alias: str, t: str) -> str:
    """SQL predicate: relationship row `alias` holds at instant expression `t`."""
    return f"({alias}.valid_from <= {t} AND ({alias}.valid_to IS NULL OR {t} < {alias}.valid_to))"

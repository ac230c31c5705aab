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

How the flags come from silver.relationships (relation, user_id, other_user_id, valid_from, valid_to) is
defined here too: RELATION_FLAGS (pair relations, with their direction), PRIVATE_RELATION (account-level) and
DERIVED_FLAGS (blocked = either block direction). The Spark jobs (jobs/relation_flags.py) and serving's publish
build their edges from these definitions; relation_edges_sql is the SQL form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

FLAGS = ("is_self", "audience", "blocked", "hidden", "close_friend", "author_private", "follows", "approved")
BOOL_FLAGS: tuple[str, ...] = tuple(f for f in FLAGS if f != "audience")
Direction = Literal["author->viewer", "viewer->author"]


class RelationFlag(NamedTuple):
    """A pair relation of silver.relationships and the flag it sets. 'author->viewer' means user_id = author,
    other_user_id = viewer; 'viewer->author' the reverse."""

    flag: str
    relation: str
    direction: Direction

    @property
    def author_column(self) -> str:
        return "user_id" if self.direction == "author->viewer" else "other_user_id"

    @property
    def viewer_column(self) -> str:
        return "other_user_id" if self.direction == "author->viewer" else "user_id"


RELATION_FLAGS: tuple[RelationFlag, ...] = (
    RelationFlag("blocked_by_author", "block", "author->viewer"),
    RelationFlag("blocked_by_viewer", "block", "viewer->author"),
    RelationFlag("hidden", "hide", "author->viewer"),
    RelationFlag("close_friend", "close_friend", "author->viewer"),
    RelationFlag("follows", "follow", "viewer->author"),
    RelationFlag("approved", "approved", "author->viewer"),
)
PAIR_FLAGS: tuple[str, ...] = tuple(r.flag for r in RELATION_FLAGS)
# Account-level relation on the author (other_user_id = 0): sets author_private.
PRIVATE_FLAG, PRIVATE_RELATION = "author_private", "private"
# Audience flags that are any of several pair flags: a block holds in either direction.
DERIVED_FLAGS: dict[str, tuple[str, ...]] = {"blocked": ("blocked_by_author", "blocked_by_viewer")}
# Flags that only decide anything for a private author (DENIAL_REASONS: private_not_approved).
PRIVATE_ONLY_FLAGS = ("follows", "approved")

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


def relation_flag(flag: str) -> RelationFlag:
    """The RelationFlag that sets `flag` (KeyError for an unknown pair flag)."""
    for r in RELATION_FLAGS:
        if r.flag == flag:
            return r
    raise KeyError(f"no relation sets the pair flag {flag!r}; pair flags: {', '.join(PAIR_FLAGS)}")


def audience_flag(pair_flag: str) -> str:
    """The audience flag (FLAGS) a pair flag sets: 'blocked' for either block direction, else itself."""
    for derived, parts in DERIVED_FLAGS.items():
        if pair_flag in parts:
            return derived
    return pair_flag


def pair_flags_for(flags: Sequence[str]) -> list[str]:
    """The pair flags needed to evaluate `flags` (audience or pair flag names), in RELATION_FLAGS order."""
    wanted = set(flags)
    for derived, parts in DERIVED_FLAGS.items():
        if derived in wanted:
            wanted |= set(parts)
    return [f for f in PAIR_FLAGS if f in wanted]


def derived_flag_sql(flag: str) -> str:
    """SQL for a DERIVED_FLAGS flag over its pair-flag columns: (blocked_by_author OR blocked_by_viewer)."""
    return "(" + " OR ".join(DERIVED_FLAGS[flag]) + ")"


def relation_edges_sql(
    source: str,
    flags: Sequence[str] = PAIR_FLAGS,
    *,
    flag_sql: Callable[[str], str] = lambda f: f"'{f}'",
    author_key: str = "author_key",
    viewer_key: str = "viewer_key",
    flag_column: str = "flag",
) -> str:
    """SQL (DuckDB and Spark) of the directed edges of `source` (a relationships table): one row per relationship
    interval that sets one of the pair `flags`, as (author_key, viewer_key, flag, valid_from, valid_to).
    `flag_sql` renders a flag's value (a quoted name by default; publish stores a numeric code)."""
    # Built from the constant definitions above and the caller's constant names; never from user input.
    parts = [
        f"SELECT {r.author_column} AS {author_key}, {r.viewer_column} AS {viewer_key}, "  # noqa: S608
        f"{flag_sql(r.flag)} AS {flag_column}, valid_from, valid_to FROM {source} WHERE relation = '{r.relation}'"
        for r in RELATION_FLAGS
        if r.flag in flags
    ]
    if not parts:
        raise ValueError(f"no pair flag among {list(flags)}")
    return " UNION ALL ".join(parts)


# An interval holds from valid_from (inclusive) to valid_to (exclusive); an open interval (valid_to NULL) has no end.
# Where intervals are arrays of epoch microseconds (serving's in-process indexes), an open end is OPEN_END_US.
OPEN_END_US = 2**63 - 1


def holds_at_sql(alias: str, t: str) -> str:
    """SQL predicate: relationship row `alias` holds at instant expression `t`."""
    return f"({alias}.valid_from <= {t} AND ({alias}.valid_to IS NULL OR {t} < {alias}.valid_to))"


def holds_at_us(valid_from_us: Any, valid_to_us: Any, t_us: int) -> Any:
    """holds_at_sql over arrays of epoch microseconds (numpy arrays or ints; open ends as OPEN_END_US): the same
    interval rule, checked against holds_at_sql by tests/test_rules.py."""
    return (valid_from_us <= t_us) & (t_us < valid_to_us)

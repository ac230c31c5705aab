"""A hand-written DuckDB reference for gold.segment_insights, computed straight from the landing files.

It re-implements, independently of the Spark jobs, the contract checks of the lines it needs, the
dedupe (event_id, then client retries), the counting rule, the 24 h lifetime, deletes and the audience
rules (as SQL over the same flags as storylake/rules/audience.py; for gestures and story engagements too, at their
own instant), then aggregates per segment. The pipeline
benchmark times it on the same files and checks that both give the same numbers.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from storylake.rules import audience
from storylake.rules.lifetimes import expires_at_sql
from storylake.rules.views import counts_as_view_sql

# Columns compared with gold.segment_insights (sticker_interactions is left out: it would need the whole
# sticker answer rule set re-implemented here too).
COMPARED = (
    "impressions", "reach", "completed_viewers", "total_view_ms", "exits", "taps_forward", "taps_back",
    "swipe_forward", "replies", "shares", "profile_visits", "follows", "link_clicks",
)

_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"

_SQL = """
CREATE MACRO is_int(j, p) AS coalesce(json_type(j, p) IN ('UBIGINT', 'BIGINT'), false);
CREATE MACRO is_num(j, p) AS coalesce(json_type(j, p) IN ('UBIGINT', 'BIGINT', 'DOUBLE'), false);
CREATE MACRO is_str(j, p) AS coalesce(json_type(j, p) = 'VARCHAR', false);
CREATE MACRO envelope_ok(j, et) AS
    is_str(j, '$.event_id') AND coalesce(j->>'$.event_type' = et, false)
    AND is_str(j, '$.event_time') AND regexp_full_match(j->>'$.event_time', '@TS@');
CREATE MACRO ts(j) AS CAST(j->>'$.event_time' AS TIMESTAMPTZ);

CREATE TABLE created AS
SELECT CAST(j->>'$.segment_id' AS BIGINT) AS segment_id, CAST(j->>'$.author_id' AS BIGINT) AS author_id,
       j->>'$.audience' AS audience, ts(j) AS created_at, j->>'$.event_id' AS event_id
FROM raw_created
WHERE envelope_ok(j, 'segment_created') AND is_int(j, '$.segment_id') AND is_int(j, '$.author_id')
  AND is_int(j, '$.media_id') AND j->>'$.media_type' IN ('photo', 'video')
  AND j->>'$.audience' IN ('public', 'close_friends') AND is_int(j, '$.duration_ms')
  AND CAST(j->>'$.duration_ms' AS BIGINT) >= 1 AND json_type(j, '$.stickers') = 'ARRAY'
  AND ts(j) < $as_of;

CREATE TABLE segs AS
SELECT * FROM created QUALIFY row_number() OVER (PARTITION BY segment_id ORDER BY created_at, event_id) = 1;

CREATE TABLE deletes AS
SELECT s.segment_id, min(ts(d.j)) AS deleted_at
FROM raw_deleted d JOIN segs s ON s.segment_id = CAST(d.j->>'$.segment_id' AS BIGINT)
WHERE envelope_ok(d.j, 'segment_deleted') AND is_int(d.j, '$.segment_id') AND is_int(d.j, '$.author_id')
  AND CAST(d.j->>'$.author_id' AS BIGINT) = s.author_id AND ts(d.j) < $as_of
GROUP BY ALL;

CREATE TABLE rel_events AS
SELECT DISTINCT ON (event_id) j->>'$.event_id' AS event_id, ts(j) AS happened, j->>'$.kind' AS kind,
       CAST(j->>'$.user_id' AS BIGINT) AS u, CAST(j->>'$.other_user_id' AS BIGINT) AS o
FROM raw_rel
WHERE envelope_ok(j, 'relationship') AND is_int(j, '$.user_id')
  AND (is_int(j, '$.other_user_id') OR (j->>'$.kind' IN ('set_private', 'set_public')
       AND coalesce(json_type(j, '$.other_user_id') = 'NULL', true)))
  AND j->>'$.kind' IN ('follow', 'unfollow', 'close_friend_add', 'close_friend_remove', 'block', 'unblock',
                       'hide_story', 'unhide_story', 'set_private', 'set_public', 'approve_follower')
  AND (j->>'$.kind' IN ('set_private', 'set_public') OR is_int(j, '$.other_user_id'))
  AND ts(j) < $as_of;

CREATE TABLE transitions AS
SELECT * FROM (
    SELECT CASE kind WHEN 'follow' THEN 'follow' WHEN 'unfollow' THEN 'follow'
                WHEN 'close_friend_add' THEN 'close_friend' WHEN 'close_friend_remove' THEN 'close_friend'
                WHEN 'block' THEN 'block' WHEN 'unblock' THEN 'block' WHEN 'hide_story' THEN 'hide'
                WHEN 'unhide_story' THEN 'hide' WHEN 'set_private' THEN 'private' WHEN 'set_public' THEN 'private'
                WHEN 'approve_follower' THEN 'approved' END AS relation,
           u AS user_id, CASE WHEN kind IN ('set_private', 'set_public') THEN 0 ELSE o END AS other_user_id,
           happened, event_id,
           kind IN ('follow', 'close_friend_add', 'block', 'hide_story', 'set_private', 'approve_follower') AS opens
    FROM rel_events
    UNION ALL  -- an unfollow by F of A also ends A's approval of F
    SELECT 'approved', o, u, happened, event_id, false FROM rel_events WHERE kind = 'unfollow'
) WHERE user_id IS NOT NULL AND other_user_id IS NOT NULL;

CREATE TABLE intervals AS
SELECT relation, user_id, other_user_id, happened AS valid_from, valid_to FROM (
    SELECT *, lead(happened) OVER w AS valid_to FROM (
        SELECT *, coalesce(lag(opens) OVER w, false) AS prev_open FROM transitions
        WINDOW w AS (PARTITION BY relation, user_id, other_user_id ORDER BY happened, event_id)
    ) WHERE opens <> prev_open
    WINDOW w AS (PARTITION BY relation, user_id, other_user_id ORDER BY happened, event_id)
) WHERE opens AND (valid_to IS NULL OR valid_to > valid_from);

CREATE TABLE receipts AS
SELECT j->>'$.event_id' AS event_id, ts(j) AS viewed_at, CAST(j->>'$.segment_id' AS BIGINT) AS segment_id,
       CAST(j->>'$.viewer_id' AS BIGINT) AS viewer_id, CAST(j->>'$.view_duration_ms' AS BIGINT) AS dur,
       CAST(j->>'$.completion_pct' AS DOUBLE) AS pct, j->>'$.idempotency_key' AS ikey
FROM raw_views
WHERE envelope_ok(j, 'segment_view') AND is_int(j, '$.segment_id') AND is_int(j, '$.viewer_id')
  AND is_int(j, '$.view_duration_ms') AND CAST(j->>'$.view_duration_ms' AS BIGINT) >= 0
  AND is_num(j, '$.completion_pct') AND CAST(j->>'$.completion_pct' AS DOUBLE) BETWEEN 0 AND 1
  AND j->>'$.view_source' IN ('tray', 'profile', 'reshare', 'mention')
  AND is_str(j, '$.idempotency_key') AND length(j->>'$.idempotency_key') <= 200
  AND ts(j) < $as_of;

CREATE TABLE views AS
SELECT r.*, s.author_id, s.audience
FROM (
    SELECT * FROM (SELECT DISTINCT ON (event_id) * FROM receipts ORDER BY event_id)
    QUALIFY row_number() OVER (PARTITION BY viewer_id, ikey ORDER BY viewed_at, event_id) = 1
) r
JOIN segs s USING (segment_id)
LEFT JOIN deletes d USING (segment_id)
WHERE @COUNTS_AS_VIEW@
  AND r.viewed_at >= s.created_at AND r.viewed_at < @EXPIRES_AT@
  AND (d.deleted_at IS NULL OR d.deleted_at > r.viewed_at);

CREATE MACRO holds(rel, a, b, t) AS EXISTS (
    SELECT 1 FROM intervals i WHERE i.relation = rel AND i.user_id = a AND i.other_user_id = b
      AND i.valid_from <= t AND (i.valid_to IS NULL OR t < i.valid_to));

@ALLOWED(views, allowed_views)@

-- gestures and story engagements count within their segment's lifetime and audience, at their own instant
CREATE TABLE nav_events AS
SELECT DISTINCT ON (event_id) j->>'$.event_id' AS event_id, CAST(j->>'$.segment_id' AS BIGINT) AS segment_id,
       CAST(j->>'$.viewer_id' AS BIGINT) AS viewer_id, j->>'$.action' AS action, ts(j) AS viewed_at
FROM raw_nav
WHERE envelope_ok(j, 'navigation') AND is_int(j, '$.segment_id') AND is_int(j, '$.viewer_id')
  AND j->>'$.action' IN ('tap_forward', 'tap_back', 'tap_exit', 'swipe_forward', 'swipe_down') AND ts(j) < $as_of
ORDER BY event_id;

@IN_LIFETIME(nav_events, nav_in_life)@
@ALLOWED(nav_in_life, nav)@

CREATE TABLE eng_events AS
SELECT DISTINCT ON (event_id) j->>'$.event_id' AS event_id, CAST(j->>'$.segment_id' AS BIGINT) AS segment_id,
       CAST(j->>'$.actor_id' AS BIGINT) AS viewer_id, j->>'$.kind' AS kind, ts(j) AS viewed_at
FROM raw_eng
WHERE envelope_ok(j, 'engagement') AND is_int(j, '$.actor_id') AND is_int(j, '$.target_user_id')
  AND is_int(j, '$.segment_id')
  AND j->>'$.kind' IN ('reply', 'share', 'profile_visit', 'follow', 'link_click', 'dm_sent', 'like', 'comment')
  AND ts(j) < $as_of
ORDER BY event_id;

@IN_LIFETIME(eng_events, eng_in_life)@
@ALLOWED(eng_in_life, eng)@

CREATE TABLE reference AS
SELECT s.segment_id,
       coalesce(v.impressions, 0) AS impressions, coalesce(v.reach, 0) AS reach,
       coalesce(v.completed_viewers, 0) AS completed_viewers, coalesce(v.total_view_ms, 0) AS total_view_ms,
       coalesce(n.exits, 0) AS exits, coalesce(n.taps_forward, 0) AS taps_forward,
       coalesce(n.taps_back, 0) AS taps_back, coalesce(n.swipe_forward, 0) AS swipe_forward,
       coalesce(e.replies, 0) AS replies, coalesce(e.shares, 0) AS shares,
       coalesce(e.profile_visits, 0) AS profile_visits, coalesce(e.follows, 0) AS follows,
       coalesce(e.link_clicks, 0) AS link_clicks
FROM segs s
LEFT JOIN (
    SELECT segment_id, count(*) AS impressions, count(DISTINCT viewer_id) AS reach,
           count(DISTINCT viewer_id) FILTER (WHERE pct = 1) AS completed_viewers, sum(dur) AS total_view_ms
    FROM allowed_views WHERE viewer_id <> author_id GROUP BY ALL) v USING (segment_id)  -- never the author's own
LEFT JOIN (
    SELECT segment_id, count(*) FILTER (WHERE action IN ('tap_exit', 'swipe_down')) AS exits,
           count(*) FILTER (WHERE action = 'tap_forward') AS taps_forward,
           count(*) FILTER (WHERE action = 'tap_back') AS taps_back,
           count(*) FILTER (WHERE action = 'swipe_forward') AS swipe_forward
    FROM nav GROUP BY ALL) n USING (segment_id)
LEFT JOIN (
    SELECT segment_id, count(*) FILTER (WHERE kind = 'reply') AS replies,
           count(*) FILTER (WHERE kind = 'share') AS shares,
           count(*) FILTER (WHERE kind = 'profile_visit') AS profile_visits,
           count(*) FILTER (WHERE kind = 'follow') AS follows,
           count(*) FILTER (WHERE kind = 'link_click') AS link_clicks
    FROM eng GROUP BY ALL) e USING (segment_id);
"""

# Steps the SQL applies to several event tables (each with segment_id, viewer_id, viewed_at): `@NAME(src, out)@`.
_STEPS = {
    # within the segment's lifetime, with its author and audience
    "IN_LIFETIME": """CREATE TABLE {out} AS
SELECT r.*, s.author_id, s.audience
FROM {src} r JOIN segs s USING (segment_id)
WHERE r.viewed_at >= s.created_at AND r.viewed_at < @EXPIRES_AT@;""",
    # the rows the audience rules allow at their instant
    "ALLOWED": """CREATE TABLE {out} AS
SELECT * FROM (SELECT v.*, @FLAGS@ FROM {src} v) WHERE @ALLOWED@;""",
}

_SOURCES = {
    "raw_created": "segment_created",
    "raw_deleted": "segment_deleted",
    "raw_rel": "relationship",
    "raw_views": "segment_view",
    "raw_nav": "navigation",
    "raw_eng": "engagement",
}


def reference_segment_insights(landing: Path, as_of: datetime, *, threads: int | None = None) -> pa.Table:
    """segment_id + COMPARED columns, computed by DuckDB from the landing JSON lines."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    for table, event_type in _SOURCES.items():
        files = sorted(str(p) for p in (landing / event_type).rglob("*.jsonl"))
        if files:
            con.execute(
                # table names come from _SOURCES (constants); the file list is a bound parameter
                f"CREATE TABLE {table} AS SELECT json AS j FROM read_ndjson_objects(?, ignore_errors = true)",  # noqa: S608
                [files],
            )
        else:
            con.execute(f"CREATE TABLE {table} (j JSON)")  # noqa: S608 - constant table name
    sql = (
        re.sub(r"@(IN_LIFETIME|ALLOWED)\((\w+), (\w+)\)@", lambda m: _STEPS[m[1]].format(src=m[2], out=m[3]), _SQL)
        .replace("@TS@", _TS).replace("@ALLOWED@", audience.ALLOWED_SQL)
        .replace("@COUNTS_AS_VIEW@", counts_as_view_sql("r.pct", "r.dur"))
        .replace("@FLAGS@", _audience_flags_sql())
        .replace("@EXPIRES_AT@", expires_at_sql("s.created_at"))
    )
    for statement in [s for s in sql.split(";\n") if s.strip()]:
        if "$as_of" in statement:
            con.execute(statement.replace("$as_of", "$1"), [as_of])
        else:
            con.execute(statement)
    return con.sql("SELECT * FROM reference ORDER BY segment_id").to_arrow_table()


def _audience_flags_sql() -> str:
    """The audience flags of each view (audience.BOOL_FLAGS) through the holds() macro, from audience's relation
    definitions (RELATION_FLAGS, DERIVED_FLAGS, PRIVATE_RELATION): the reference evaluates flags its own way, over
    the raw relationship intervals, but never restates which relation sets which flag."""

    def pair(flag: str) -> str:
        r = audience.relation_flag(flag)
        user, other = ("v.author_id", "v.viewer_id") if r.author_column == "user_id" else ("v.viewer_id", "v.author_id")
        return f"holds('{r.relation}', {user}, {other}, v.viewed_at)"

    columns = []
    for flag in audience.BOOL_FLAGS:
        if flag == "is_self":
            expr = "v.viewer_id = v.author_id"
        elif flag in audience.DERIVED_FLAGS:
            expr = " OR ".join(pair(part) for part in audience.DERIVED_FLAGS[flag])
        elif flag == audience.PRIVATE_FLAG:
            expr = f"holds('{audience.PRIVATE_RELATION}', v.author_id, 0, v.viewed_at)"
        else:
            expr = pair(flag)
        columns.append(f"{expr} AS {flag}")
    return ", ".join(columns)

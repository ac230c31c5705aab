"""Event construction: viewing sessions and what they emit, plus the hourly DMs/likes/comments.

A story's viewers watch it in sessions: a session starts at a time drawn from a decaying distribution
after the first segment's creation, shows the segments created so far in order and stops with a drop-off
probability per segment. Each segment shown yields a segment_view receipt (sent when the segment leaves the
screen) and, when the viewer acted, a navigation event. Some sessions tap back (a rewatch of the previous
segment) and some viewers come back hours later (a second session). Receipts of a (viewer, segment) pair are
numbered 1, 2, ... in time order, which gives the idempotency key "{viewer}:{segment}:{n}".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

from storylake.rules.views import MIN_VIEW_MS

from .schema import (
    CLOSE_FRIENDS,
    COMMENT,
    DM_SENT,
    FOLLOW,
    FOLLOW_FROM_STORY,
    LIKE,
    LINK,
    LINK_CLICK,
    MAX_TEXT_CHARS,
    MS_DAY,
    MS_HOUR,
    MS_MINUTE,
    MS_SECOND,
    NULL,
    POLL,
    PROFILE_VISIT,
    QUESTION,
    QUIZ,
    REPLY,
    SHARE,
    SLIDER,
    SWIPE_DOWN,
    SWIPE_FORWARD,
    TAP_BACK,
    TAP_EXIT,
    TAP_FORWARD,
)
from .stories import DIURNAL, MAX_SEGMENTS, DayStories
from .table import (
    F64,
    I64,
    EventTable,
    exclusive_cumsum_within,
    first_occurrences,
    group_offsets,
    isin_sorted,
    ranks_within,
)
from .world import World

# When sessions start, as an offset from the story's first segment: a mixture of an exponential decay
# (mean 1.2 h) and a uniform spread over the segment's life, capped so a session ends before expiry.
SESSION_EXP_SHARE = 0.55
SESSION_EXP_MEAN_MS = 1.2 * MS_HOUR
SESSION_CAP_MS = MS_DAY - 15 * MS_MINUTE
CONTINUE_P = 0.80  # probability to go on to the next segment
TAP_FORWARD_P = 0.42  # on a segment that is not the session's last: skip ahead (partial view)
TAP_BACK_P = 0.05  # ... or tap back (partial view, then a full rewatch of the previous segment)
SECOND_SESSION_P = 0.07
MAX_REACH = 0.95
NON_FOLLOWER_RATE = 0.12  # non-follower sessions per follower session (public authors only)
NON_FOLLOWER_BASE = 0.15
SOURCE_CUM_FOLLOWER = np.cumsum([0.90, 0.06, 0.025, 0.015])
SOURCE_CUM_OTHER = np.cumsum([0.0, 0.55, 0.30, 0.15])
INTERACT_P = np.array([0.30, 0.25, 0.25, 0.06, 0.04, 0.05, 0.05, 0.03, 0.03, 0.06])  # by sticker type
PARTIAL_INTERACT_FACTOR = 0.35
SECOND_INTERACTION_P = 0.08  # re-vote on a poll, move a slider again
QUIZ_CORRECT_P = 0.60
STORY_FOLLOW_P = 0.05
SOCIAL_PER_USER_DAY = 3.0  # DMs, likes and comments between mutual follows
SOCIAL_KIND_P = np.array([0.30, 0.55, 0.15])  # dm_sent, like, comment

WORDS = (
    "love this where is that so good omg need it how did you do it what song is this recipe please "
    "wow amazing haha yes no maybe later tomorrow tonight weekend trip beach city coffee café matcha "
    "ramen pizza sushi tacos 🔥 😍 😂 ❤️ 👏 🙌 ✨ best day ever can't wait miss you congrats happy birthday "
    "which camera is this share the link more please again next time so cute mood vibes goals ¿qué tal? "
    "merci beaucoup danke schön grazie obrigado"
).split()


def offset_cdf(x: F64) -> F64:
    """P(session start offset <= x) for the session start distribution (x in ms)."""
    x = np.clip(x, 0.0, SESSION_CAP_MS)
    uniform_mass = SESSION_EXP_SHARE * np.exp(-SESSION_CAP_MS / SESSION_EXP_MEAN_MS) + 1.0 - SESSION_EXP_SHARE
    exp_part = SESSION_EXP_SHARE * (1.0 - np.exp(-x / SESSION_EXP_MEAN_MS))
    return np.asarray(exp_part + uniform_mass * x / SESSION_CAP_MS)


def sample_offsets(rng: np.random.Generator, size: int) -> I64:
    e = rng.exponential(SESSION_EXP_MEAN_MS, size)
    use_exp = rng.random(size) < SESSION_EXP_SHARE
    u = rng.random(size) * SESSION_CAP_MS
    return np.where(use_exp & (e < SESSION_CAP_MS), e, u).astype(np.int64)


def non_follower_rate(follower_sessions: F64, k: float) -> F64:
    return np.asarray(NON_FOLLOWER_RATE * follower_sessions + NON_FOLLOWER_BASE * min(k, 1.0))


def question_texts(rng: np.random.Generator, count: int) -> list[str]:
    if count == 0:
        return []
    nwords = np.minimum(1 + rng.poisson(5, count), 14)
    picks = rng.integers(0, len(WORDS), (count, 14))
    texts = [
        " ".join(WORDS[w] for w in row[:k]) for row, k in zip(picks.tolist(), nwords.tolist(), strict=True)
    ]
    return [t[:MAX_TEXT_CHARS] for t in texts]


@dataclass
class Viewing:
    views: EventTable
    navigation: EventTable
    stickers: EventTable
    engagement: EventTable
    relationship: EventTable


def _json_column(values: list[str | None]) -> npt.NDArray[np.object_]:
    """Optional strings as pre-serialised JSON values (b"null" or a JSON string)."""
    col = np.full(len(values), b"null", dtype=object)
    for i, v in enumerate(values):
        if v is not None:
            col[i] = bytes(memoryview(orjson.dumps(v)))  # orjson's bytes keep a 4 KiB buffer
    return col


def simulate_viewing(
    world: World, st: DayStories, sidx: I64, k: float, rng: np.random.Generator, followed: set[int]
) -> Viewing:
    """Every receipt, navigation, sticker interaction and story engagement of the stories `sidx`.

    `followed` collects (viewer * n + author) of follows made from stories, so a follow is not repeated.
    """
    n, end = world.n, world.end_ms
    ns = sidx.size
    author = st.author[sidx]
    cf = st.audience[sidx] == CLOSE_FRIENDS
    lo, hi = world.eligible_range(author, cf)
    eligible = hi - lo

    # Who watches: a share of the eligible followers (distinct, via a random stride over the list) ...
    nf = rng.binomial(eligible, np.minimum(MAX_REACH, st.reach[sidx] * k))
    r0 = (rng.random(ns) * eligible).astype(np.int64)
    stride = world.primes[rng.integers(0, world.primes.size, ns)]
    f_story, f_i = group_offsets(nf)
    e_f = eligible[f_story]
    pos = (r0[f_story] + (stride[f_story] % np.maximum(e_f, 1)) * f_i) % np.maximum(e_f, 1)
    f_viewer = world.viewers[lo[f_story] + pos]
    # ... plus non-followers of public authors (profile visits, reshares, mentions).
    public_author = ~cf & ~world.private[author]
    lam = np.where(public_author, non_follower_rate(nf.astype(np.float64), k), 0.0)
    o_story = np.repeat(np.arange(ns, dtype=np.int64), rng.poisson(lam))
    o_viewer = rng.integers(0, n, o_story.size)
    ok = (o_viewer != author[o_story]) & ~isin_sorted(author[o_story] * n + o_viewer, world.excluded_codes)
    s_story = np.concatenate([f_story, o_story[ok]])
    s_viewer = np.concatenate([f_viewer, o_viewer[ok]])
    s_follower = np.concatenate([np.ones(f_story.size, np.bool_), np.zeros(int(ok.sum()), np.bool_)])
    first = first_occurrences(s_story * n + s_viewer)
    s_story, s_viewer, s_follower = s_story[first], s_viewer[first], s_follower[first]

    # Sessions: first sessions and the occasional second one hours later.
    tau = sample_offsets(rng, s_story.size)
    delay = rng.integers(10 * MS_MINUTE, 8 * MS_HOUR, s_story.size)
    again = (rng.random(s_story.size) < SECOND_SESSION_P) & (tau + delay < SESSION_CAP_MS)
    s_story = np.concatenate([s_story, s_story[again]])
    s_viewer = np.concatenate([s_viewer, s_viewer[again]])
    s_follower = np.concatenate([s_follower, s_follower[again]])
    s_second = np.concatenate([np.zeros(again.size, np.bool_), np.ones(int(again.sum()), np.bool_)])
    tau = np.concatenate([tau, tau[again] + delay[again]])
    u_src = rng.random(s_story.size)
    source = np.where(
        s_follower,
        np.searchsorted(SOURCE_CUM_FOLLOWER, u_src, side="right"),
        np.searchsorted(SOURCE_CUM_OTHER, u_src, side="right"),
    )
    source = np.minimum(source, 3).astype(np.int64)
    t0 = st.start[sidx][s_story] + tau
    live = t0 < end
    s_story, s_viewer, s_follower, s_second, source, t0 = (
        s_story[live],
        s_viewer[live],
        s_follower[live],
        s_second[live],
        source[live],
        t0[live],
    )
    n_sessions = s_story.size

    seg_lo = st.seg_ptr[sidx][s_story]
    n_segs = (st.seg_ptr[sidx + 1] - st.seg_ptr[sidx])[s_story]
    avail = np.zeros(n_sessions, np.int64)
    for pos in range(MAX_SEGMENTS):
        has = pos < n_segs
        idx = np.where(has, seg_lo + pos, 0)
        avail += has & (st.created[idx] <= t0)
    length = np.minimum(avail, rng.geometric(1.0 - CONTINUE_P, n_sessions))

    # Receipts, one per segment shown.
    ses, j = group_offsets(length)
    nr = ses.size
    seg = seg_lo[ses] + j
    dur_full = st.duration[seg]
    last = j == length[ses] - 1
    at_end = (length == avail)[ses]
    u = rng.random(nr)
    frac = rng.uniform(0.03, 0.97, nr)
    frac_back = rng.uniform(0.03, 0.35, nr)
    cont = ~last
    tf = cont & (u < TAP_FORWARD_P)
    tb = cont & (u >= TAP_FORWARD_P) & (u < TAP_FORWARD_P + TAP_BACK_P)
    story_end = last & at_end
    dropped = last & ~at_end
    action = np.select(
        [tf, tb, story_end & (u < 0.25), story_end & (u < 0.50), story_end & (u < 0.70),
         dropped & (u < 0.40), dropped & (u < 0.70), dropped],
        [TAP_FORWARD, TAP_BACK, TAP_FORWARD, TAP_EXIT, SWIPE_DOWN, SWIPE_FORWARD, TAP_EXIT, SWIPE_DOWN],
        default=NULL,
    )  # fmt: skip
    complete = (cont & ~tf & ~tb) | story_end
    fr = np.where(tb, frac_back, frac)
    dur = np.where(complete, dur_full, np.rint(fr * dur_full)).astype(np.int64)
    comp = np.where(complete, 10_000, np.clip(np.rint(fr * 10_000), 1, 9_999)).astype(np.int64)
    prev = np.where(j > 0, seg - 1, seg)
    dur_prev = st.duration[prev]
    gap = rng.integers(150, 900, nr)
    gap2 = rng.integers(150, 900, nr)
    span = dur + gap + np.where(tb, dur_prev + gap2, 0)
    v_start = t0[ses] + exclusive_cumsum_within(span, length)
    v_time = v_start + dur
    nav_time = v_time + rng.integers(5, 120, nr)

    r_seg = np.concatenate([seg, prev[tb]])
    r_ses = np.concatenate([ses, ses[tb]])
    r_dur = np.concatenate([dur, dur_prev[tb]])
    r_comp = np.concatenate([comp, np.full(int(tb.sum()), 10_000, np.int64)])
    r_start = np.concatenate([v_start, (v_time + gap)[tb]])
    r_time = r_start + r_dur
    r_base = np.concatenate([np.arange(nr, dtype=np.int64), np.full(int(tb.sum()), NULL, np.int64)])
    alive = (r_time < end) & (r_time < st.deleted_at[r_seg])
    r_seg, r_ses, r_dur, r_comp, r_start, r_time, r_base = (
        r_seg[alive],
        r_ses[alive],
        r_dur[alive],
        r_comp[alive],
        r_start[alive],
        r_time[alive],
        r_base[alive],
    )
    seg_id = st.seg_id[r_seg]
    viewer_id = s_viewer[r_ses] + 1
    rep = ranks_within(seg_id * (n + 1) + viewer_id, r_time)
    s_author = author[s_story]
    s_cf = cf[s_story]
    views = EventTable(
        "segment_view",
        r_time,
        {
            "segment_id": seg_id,
            "viewer_id": viewer_id,
            "view_duration_ms": r_dur,
            "completion_bp": r_comp,
            "view_source": source[r_ses],
            "rep": rep,
            "_created": st.created[r_seg],
            "_author": s_author[r_ses],
            "_cf": s_cf[r_ses].astype(np.int64),
        },
    )

    base_alive = np.zeros(nr, np.bool_)
    base_alive[r_base[r_base >= 0]] = True
    nav = base_alive & (action >= 0) & (nav_time < end)
    navigation = EventTable(
        "navigation",
        nav_time[nav],
        {"segment_id": st.seg_id[seg[nav]], "viewer_id": s_viewer[ses[nav]] + 1, "action": action[nav]},
    )

    stickers, link_rows = _sticker_interactions(world, st, rng, r_seg, r_start, r_dur, r_comp, viewer_id, end)

    # Engagement from stories: replies, shares and profile visits after counted first views.
    counted = (r_comp == 10_000) | (r_dur >= MIN_VIEW_MS)  # rules.views: completion 1 (10,000 bp) or >= 3 s
    first_view = counted & (rep == 1) & (r_base >= 0)
    fol = s_follower[r_ses]
    ue = rng.random(r_time.size)
    p_reply = np.where(fol, 0.010, 0.004)
    p_share = 0.004
    p_visit = np.where(fol, 0.012, 0.040)
    kind = np.select(
        [ue < p_reply, ue < p_reply + p_share, ue < p_reply + p_share + p_visit],
        [REPLY, SHARE, PROFILE_VISIT],
        NULL,
    )
    e_rows = first_view & (kind >= 0)
    e_time = r_time + rng.integers(MS_SECOND, 20 * MS_SECOND, r_time.size)
    # Follows from stories: non-followers after their first receipt of a story.
    story_first = (r_base >= 0) & ~s_second[r_ses] & ~fol & (j[np.maximum(r_base, 0)] == 0)
    f_rows = np.flatnonzero(story_first & (rng.random(r_time.size) < STORY_FOLLOW_P))
    f_code = (viewer_id[f_rows] - 1) * n + s_author[r_ses[f_rows]]
    f_ok = ~world.follows(viewer_id[f_rows] - 1, s_author[r_ses[f_rows]])
    keep_f: list[int] = []
    for row, code, okk in zip(f_rows.tolist(), f_code.tolist(), f_ok.tolist(), strict=True):
        if okk and code not in followed:
            followed.add(code)
            keep_f.append(row)
    f_rows = np.asarray(keep_f, dtype=np.int64)
    f_time = r_time[f_rows] + rng.integers(MS_SECOND, 30 * MS_SECOND, f_rows.size)

    link = stickers.take(link_rows)
    link_author = np.asarray(link.cols["_author"], dtype=np.int64)
    engagement = EventTable(
        "engagement",
        np.concatenate([e_time[e_rows], f_time, link.time + rng.integers(50, 500, len(link))]),
        {
            "kind": np.concatenate(
                [kind[e_rows], np.full(f_rows.size, FOLLOW_FROM_STORY), np.full(len(link), LINK_CLICK)]
            ).astype(np.int64),
            "actor_id": np.concatenate([viewer_id[e_rows], viewer_id[f_rows], link.cols["user_id"]]),
            "target_user_id": np.concatenate(
                [s_author[r_ses[e_rows]] + 1, s_author[r_ses[f_rows]] + 1, link_author + 1]
            ),
            "segment_id": np.concatenate([seg_id[e_rows], seg_id[f_rows], link.cols["segment_id"]]),
        },
    )
    engagement = engagement.take(np.flatnonzero(engagement.time < end))
    follow_ok = f_time < end
    relationship = EventTable(
        "relationship",
        f_time[follow_ok],
        {
            "kind": np.full(int(follow_ok.sum()), FOLLOW, np.int64),
            "user_id": viewer_id[f_rows][follow_ok],
            "other_user_id": s_author[r_ses[f_rows]][follow_ok] + 1,
        },
    )
    del stickers.cols["_author"]
    return Viewing(views, navigation, stickers, engagement, relationship)


def _sticker_interactions(
    world: World,
    st: DayStories,
    rng: np.random.Generator,
    r_seg: I64,
    r_start: I64,
    r_dur: I64,
    r_comp: I64,
    viewer_id: I64,
    end: int,
) -> tuple[EventTable, I64]:
    """Votes, answers, slider moves, replies to questions and taps on the other stickers during views.

    Returns the table and the rows that are link taps (they also yield a link_click engagement).
    """
    n = world.n
    per = st.stk_ptr[r_seg + 1] - st.stk_ptr[r_seg]
    vr, within = group_offsets(per)
    stk = st.stk_ptr[r_seg][vr] + within
    typ = st.stk_type[stk]
    p = INTERACT_P[typ] * np.where(r_comp[vr] == 10_000, 1.0, PARTIAL_INTERACT_FACTOR)
    hit = rng.random(vr.size) < p
    vr, stk, typ = vr[hit], stk[hit], typ[hit]
    m = vr.size
    time = r_start[vr] + np.rint(rng.uniform(0.2, 0.95, m) * r_dur[vr]).astype(np.int64)
    nopt = st.stk_nopt[stk]
    pref = st.stk_pref[stk]
    u = rng.random(m)
    poll_opt = np.minimum((u[:, None] > np.cumsum(pref, axis=1)).sum(axis=1), np.maximum(nopt - 1, 0))
    correct = st.stk_correct[stk]
    wrong = (correct + 1 + rng.integers(0, 1 << 20, m) % np.maximum(nopt - 1, 1)) % np.maximum(nopt, 1)
    quiz_opt = np.where(rng.random(m) < QUIZ_CORRECT_P, correct, wrong)
    option = np.select([typ == POLL, typ == QUIZ], [poll_opt, quiz_opt], NULL).astype(np.int64)
    slider = np.clip(pref[:, 0] + rng.normal(0.0, 0.15, m), 0.0, 1.0)
    value = np.where(typ == SLIDER, np.rint(slider * 10_000), NULL).astype(np.int64)
    is_q = typ == QUESTION
    texts: list[str | None] = [None] * m
    for i, t in zip(np.flatnonzero(is_q).tolist(), question_texts(rng, int(is_q.sum())), strict=True):
        texts[i] = t

    # A second vote / slider move a few seconds later.
    again = (((typ == POLL) & (nopt >= 2)) | (typ == SLIDER)) & (rng.random(m) < SECOND_INTERACTION_P)
    t2 = time + rng.integers(300, 4_000, m)
    opt2 = (option + 1 + rng.integers(0, 1 << 20, m) % np.maximum(nopt - 1, 1)) % np.maximum(nopt, 1)
    slider2 = np.clip(pref[:, 0] + rng.normal(0.0, 0.15, m), 0.0, 1.0)
    val2 = np.where(typ == SLIDER, np.rint(slider2 * 10_000), NULL).astype(np.int64)
    opt2 = np.where(typ == POLL, opt2, NULL)

    rows = np.concatenate([np.arange(m, dtype=np.int64), np.flatnonzero(again)])
    all_time = np.concatenate([time, t2[again]])
    all_option = np.concatenate([option, opt2[again]])
    all_value = np.concatenate([value, val2[again]])
    all_text = texts + [None] * int(again.sum())
    sticker_id = st.stk_id[stk][rows]
    user_id = viewer_id[vr][rows]
    seg_idx = r_seg[vr][rows]
    table = EventTable(
        "sticker_interaction",
        all_time,
        {
            "sticker_id": sticker_id,
            "segment_id": st.seg_id[seg_idx],
            "user_id": user_id,
            "sticker_type": typ[rows],
            "option_index": all_option,
            "value_bp": all_value,
            "text": _json_column(all_text),
            "rep": ranks_within(sticker_id * (n + 1) + user_id, all_time),
            "_nopt": nopt[rows],
            "_author": st.author[np.searchsorted(st.seg_ptr, seg_idx, side="right") - 1],
        },
    )
    keep = np.flatnonzero(table.time < end)
    table = table.take(keep)
    table.cols["rep"] = ranks_within(table.cols["sticker_id"] * (n + 1) + table.cols["user_id"], table.time)
    link_rows = np.flatnonzero(table.cols["sticker_type"] == LINK)
    return table, link_rows


def hourly_social(world: World, rng: np.random.Generator, lo_ms: int, hi_ms: int) -> EventTable:
    """dm_sent / like / comment between users who follow each other, in [lo_ms, hi_ms)."""
    empty = EventTable(
        "engagement",
        np.zeros(0, np.int64),
        {k: np.zeros(0, np.int64) for k in ("kind", "actor_id", "target_user_id", "segment_id")},
    )
    if hi_ms <= lo_ms or world.mutual_src.size == 0:
        return empty
    weight = DIURNAL[(lo_ms // MS_HOUR) % 24] / DIURNAL.mean()
    lam = SOCIAL_PER_USER_DAY / 24.0 * world.n * weight * (hi_ms - lo_ms) / MS_HOUR
    k = int(rng.poisson(lam))
    cum = world.mutual_cum
    edge = np.minimum(np.searchsorted(cum, rng.random(k) * cum[-1], side="right"), cum.size - 1)
    kind = np.array([DM_SENT, LIKE, COMMENT], np.int64)[rng.choice(3, k, p=SOCIAL_KIND_P)]
    return EventTable(
        "engagement",
        lo_ms + rng.integers(0, hi_ms - lo_ms, k).astype(np.int64),
        {
            "kind": kind,
            "actor_id": world.mutual_src[edge] + 1,
            "target_user_id": world.mutual_dst[edge] + 1,
            "segment_id": np.full(k, NULL, np.int64),
        },
    )

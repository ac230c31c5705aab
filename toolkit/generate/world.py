"""The world: users, the social graph, privacy, close friends, blocks, hidden stories and their changes.

Users are 1..N (index u is user id u + 1). The initial graph is emitted as relationship events during
[start, start + 10 min) in phases (set_private, follow, approve_follower, close_friend_add, block,
hide_story), then a trickle of changes runs through the window.

Audience rules the generator respects (and the audience_violation fault breaks), at any instant t:
  * nobody views their own stories; no view across a block in either direction; none when hidden;
  * close_friends segments: the viewer is on the author's close-friends list;
  * private author: the viewer follows the author and was approved (approve_follower);
  * public author, public segment: anyone else.
To stay valid at every instant without tracking time, a pair that ever loses access during the window
(unfollow, close_friend_remove, block, hide_story) never views, pairs that only gain access later (follow,
close_friend_add, approve_follower, unblock, unhide_story) are not used, and an account that goes public
during the window is treated as private throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .schema import (
    APPROVE_FOLLOWER,
    BLOCK,
    CLOSE_FRIEND_ADD,
    CLOSE_FRIEND_REMOVE,
    FOLLOW,
    GRAPH_MS,
    HIDE_STORY,
    MS_DAY,
    MS_HOUR,
    MS_MINUTE,
    NULL,
    SET_PRIVATE,
    SET_PUBLIC,
    UNBLOCK,
    UNFOLLOW,
    UNHIDE_STORY,
)
from .streams import stream
from .table import F64, I64, Bool, EventTable, isin_sorted, unique_sorted

# Graph shape.
FOLLOWS_MEDIAN = 18.0  # out-degree: lognormal(median 18, sigma 0.9), clipped to [2, 400]
FOLLOWS_SIGMA = 0.9
FOLLOWS_MAX = 400
POPULARITY_ALPHA = 1.2  # Pareto tail of the popularity that attracts followers
PRIVATE_SHARE = 0.10
APPROVE_SHARE = 0.90  # followers of private accounts that get approved
CLOSE_FRIEND_SHARE = 0.06
HIDE_SHARE = 0.004
BLOCKS_PER_USER = 0.01

# Changes during the window, per user per day.
TRICKLE_RATES = {
    "follow": 0.03,
    "unfollow": 0.01,
    "close_friend_add": 0.005,
    "close_friend_remove": 0.003,
    "block": 0.001,
    "unblock": 0.0005,
    "hide_story": 0.001,
    "unhide_story": 0.0005,
    "set_public": 0.0003,
}
TRICKLE_APPROVE_SHARE = 0.85


@dataclass
class World:
    n: int
    start_ms: int
    end_ms: int
    active_ms: int  # activity (stories, views, trickle) starts here, after the initial graph
    popularity: F64
    activity: F64
    private: Bool  # private at start (and treated as private for the whole window)
    private_always: Bool  # private at every instant of the window
    # Viewers a story may be shown to: CSR by author index into `viewers` (user indexes).
    pub_ptr: I64
    cf_ptr: I64
    viewers: I64
    edge_codes: I64  # sorted follower * n + followee of the initial follows
    trickle_follow_codes: I64  # sorted follower * n + followee of the follows during the window
    excluded_codes: I64  # sorted author * n + viewer pairs that must never view
    cf_ever_codes: I64  # sorted author * n + member: on the close-friends list at some instant
    approved_ever_codes: I64  # sorted author * n + follower: approved follower at some instant
    mutual_src: I64  # directed edges between users who follow each other (for DMs, likes, comments)
    mutual_dst: I64
    mutual_cum: F64  # cumulative sampling weight of the mutual edges
    primes: I64  # primes > n (strides for sampling viewers without replacement)
    # Initial graph events before the follows (set_private) and after them (approve_follower,
    # close_friend_add, block, hide_story); the follows themselves come from initial_graph().
    initial_first: list[EventTable]
    initial_last: list[EventTable]
    trickle: EventTable  # relationship events during the window, sorted by time

    def follows(self, follower: I64, followee: I64) -> Bool:
        """Whether follower follows followee at some instant (initial graph or trickle)."""
        code = follower * self.n + followee
        return np.asarray(isin_sorted(code, self.edge_codes) | isin_sorted(code, self.trickle_follow_codes))

    def eligible_range(self, author: I64, close_friends: Bool) -> tuple[I64, I64]:
        """[lo, hi) into `viewers` of each author's eligible viewers for the given audience."""
        lo = np.where(close_friends, self.cf_ptr[author], self.pub_ptr[author])
        hi = np.where(close_friends, self.cf_ptr[author + 1], self.pub_ptr[author + 1])
        return lo, hi

    def eligible_count(self, author: I64, close_friends: Bool) -> I64:
        lo, hi = self.eligible_range(author, close_friends)
        return hi - lo

    def definitely_excluded(self, author: I64, viewer: I64, close_friends: Bool) -> Bool:
        """True where the audience rules exclude `viewer` from the author's segment at every instant."""
        code = author * self.n + viewer
        not_cf = ~isin_sorted(code, self.cf_ever_codes)
        not_approved = ~isin_sorted(code, self.approved_ever_codes)
        excluded = np.where(close_friends, not_cf, self.private_always[author] & not_approved)
        return np.asarray((viewer != author) & excluded)


def _primes_above(n: int, count: int) -> I64:
    out: list[int] = []
    k = max(n + 1, 2)
    while len(out) < count:
        if k < 4 or all(k % p for p in range(2, int(k**0.5) + 1)):
            out.append(k)
        k += 1
    return np.asarray(out, dtype=np.int64)


def _times(rng: np.random.Generator, k: int, lo: int, hi: int) -> I64:
    if k == 0:
        return np.zeros(0, np.int64)
    return lo + rng.integers(0, max(hi - lo, 1), k).astype(np.int64)


def _relationship(kind: int, user: I64, other: I64, time: I64) -> EventTable:
    return EventTable(
        "relationship",
        time.astype(np.int64),
        {
            "kind": np.full(user.size, kind, np.int64),
            "user_id": user + 1,
            "other_user_id": np.where(other >= 0, other + 1, NULL),
        },
    )


def _pick(rng: np.random.Generator, pool: I64, k: int) -> I64:
    k = min(k, pool.size)
    if k == 0:
        return np.zeros(0, np.int64)
    return np.sort(pool[rng.choice(pool.size, k, replace=False)])


def build_world(users: int, seed: int, start_ms: int, end_ms: int) -> World:
    if users < 2:
        raise ValueError("users must be >= 2")
    rng = stream(seed, "world")
    n = users
    active_ms = start_ms + GRAPH_MS
    days = (end_ms - start_ms) / MS_DAY

    popularity = rng.pareto(POPULARITY_ALPHA, n) + 1.0
    activity = rng.lognormal(0.0, 0.7, n)
    activity /= activity.mean()

    # Follow edges: each user draws an out-degree and picks followees by popularity (power-law followers).
    max_deg = min(FOLLOWS_MAX, n - 1)
    deg = np.clip(np.rint(rng.lognormal(np.log(FOLLOWS_MEDIAN), FOLLOWS_SIGMA, n)), min(2, max_deg), max_deg)
    src = np.repeat(np.arange(n, dtype=np.int64), deg.astype(np.int64))
    cum_pop = np.cumsum(popularity)
    dst = np.minimum(np.searchsorted(cum_pop, rng.random(src.size) * cum_pop[-1], side="right"), n - 1)
    keep = src != dst
    codes = unique_sorted(src[keep] * n + dst[keep])  # sorted by (follower, followee)
    src, dst = codes // n, codes % n
    m = src.size

    private = rng.random(n) < PRIVATE_SHARE
    to_private = private[dst]
    approved = ~to_private | (rng.random(m) < APPROVE_SHARE)
    cf = approved & (rng.random(m) < CLOSE_FRIEND_SHARE)
    hide = approved & ~cf & (rng.random(m) < HIDE_SHARE)
    nb = round(n * BLOCKS_PER_USER)
    bu, bv = rng.integers(0, n, nb), rng.integers(0, n, nb)
    bcodes = unique_sorted(bu[bu != bv] * n + bv[bu != bv])
    block_u, block_v = bcodes // n, bcodes % n

    # Initial graph, in phases within [start, start + 10 min); the follows are emitted by initial_graph().
    def phase(a: int, b: int, k: int) -> I64:
        return _times(rng, k, start_ms + a * MS_MINUTE, start_ms + b * MS_MINUTE)

    priv_users = np.flatnonzero(private).astype(np.int64)
    appr_idx = np.flatnonzero(to_private & approved)
    cf_idx = np.flatnonzero(cf)
    hide_idx = np.flatnonzero(hide)
    initial_first = [
        _relationship(SET_PRIVATE, priv_users, np.full(priv_users.size, NULL), phase(0, 1, priv_users.size))
    ]
    initial_last = [
        _relationship(APPROVE_FOLLOWER, dst[appr_idx], src[appr_idx], phase(5, 7, appr_idx.size)),
        _relationship(CLOSE_FRIEND_ADD, dst[cf_idx], src[cf_idx], phase(7, 8, cf_idx.size)),
        _relationship(BLOCK, block_u, block_v, phase(8, 9, block_u.size)),
        _relationship(HIDE_STORY, dst[hide_idx], src[hide_idx], phase(9, 10, hide_idx.size)),
    ]
    del appr_idx, to_private

    # Trickle of changes during [active, end).
    def count(kind: str) -> int:
        return int(rng.poisson(TRICKLE_RATES[kind] * n * days))

    def when(k: int) -> I64:
        return _times(rng, k, active_ms, end_ms)

    k = count("follow")
    tu = rng.integers(0, n, k)
    tv = np.minimum(np.searchsorted(cum_pop, rng.random(k) * cum_pop[-1], side="right"), n - 1)
    ok = (tu != tv) & ~isin_sorted(tu * n + tv, codes)
    tcodes = unique_sorted(tu[ok] * n + tv[ok])
    tf_u, tf_v = tcodes // n, tcodes % n
    tf_t = when(tf_u.size)
    gets_approved = private[tf_v] & (rng.random(tf_u.size) < TRICKLE_APPROVE_SHARE)
    ap_t = tf_t + rng.integers(MS_MINUTE, 6 * MS_HOUR, tf_u.size)
    gets_approved &= ap_t < end_ms

    unf = _pick(rng, np.arange(m, dtype=np.int64), count("unfollow"))
    cfa = _pick(rng, np.flatnonzero(approved & ~cf).astype(np.int64), count("close_friend_add"))
    cfr = _pick(rng, cf_idx.astype(np.int64), count("close_friend_remove"))
    k = count("block")
    nbu, nbv = rng.integers(0, n, k), rng.integers(0, n, k)
    nb_codes = unique_sorted(nbu[nbu != nbv] * n + nbv[nbu != nbv])
    nb_codes = nb_codes[~isin_sorted(nb_codes, bcodes)]
    nbu, nbv = nb_codes // n, nb_codes % n
    unb = _pick(rng, np.arange(block_u.size, dtype=np.int64), count("unblock"))
    hid = _pick(rng, np.flatnonzero(approved & ~hide).astype(np.int64), count("hide_story"))
    unh = _pick(rng, hide_idx.astype(np.int64), count("unhide_story"))
    spub = _pick(rng, priv_users, count("set_public"))

    trickle = EventTable.concat(
        "relationship",
        [
            _relationship(FOLLOW, tf_u, tf_v, tf_t),
            _relationship(APPROVE_FOLLOWER, tf_v[gets_approved], tf_u[gets_approved], ap_t[gets_approved]),
            _relationship(UNFOLLOW, src[unf], dst[unf], when(unf.size)),
            _relationship(CLOSE_FRIEND_ADD, dst[cfa], src[cfa], when(cfa.size)),
            _relationship(CLOSE_FRIEND_REMOVE, dst[cfr], src[cfr], when(cfr.size)),
            _relationship(BLOCK, nbu, nbv, when(nbu.size)),
            _relationship(UNBLOCK, block_u[unb], block_v[unb], when(unb.size)),
            _relationship(HIDE_STORY, dst[hid], src[hid], when(hid.size)),
            _relationship(UNHIDE_STORY, dst[unh], src[unh], when(unh.size)),
            _relationship(SET_PUBLIC, spub, np.full(spub.size, NULL), when(spub.size)),
        ],
    )
    order = np.argsort(trickle.time, kind="stable")
    trickle = trickle.take(order)

    # Access model (see module docstring).
    excluded = unique_sorted(
        np.concatenate(
            [
                block_u * n + block_v,
                block_v * n + block_u,
                nbu * n + nbv,
                nbv * n + nbu,
                dst[hide_idx] * n + src[hide_idx],
                dst[hid] * n + src[hid],
                dst[unf] * n + src[unf],
                dst[cfr] * n + src[cfr],
            ]
        )
    )
    author_viewer = dst * n + src
    del src, dst
    usable = ~isin_sorted(author_viewer, excluded)
    pub_edges = np.sort(author_viewer[approved & usable])
    cf_edges = np.sort(author_viewer[cf & usable])
    del usable
    pub_ptr = np.zeros(n + 1, np.int64)
    pub_ptr[1:] = np.cumsum(np.bincount(pub_edges // n, minlength=n))
    cf_ptr = np.full(n + 1, pub_edges.size, np.int64)
    cf_ptr[1:] += np.cumsum(np.bincount(cf_edges // n, minlength=n))
    viewers = np.concatenate([pub_edges % n, cf_edges % n]).astype(np.int64)

    private_always = private.copy()
    private_always[spub] = False
    cf_ever = unique_sorted(
        np.concatenate([codes[cf_idx] % n * n + codes[cf_idx] // n, codes[cfa] % n * n + codes[cfa] // n])
    )
    approved_ever = unique_sorted(
        np.concatenate([author_viewer[approved], tf_v[gets_approved] * n + tf_u[gets_approved]])
    )
    del author_viewer

    # Mutual follows (both directions approved) carry DMs, likes and comments.
    appr_codes = codes[approved]
    asrc, adst = appr_codes // n, appr_codes % n
    mutual = isin_sorted(adst * n + asrc, appr_codes)
    msrc, mdst = asrc[mutual], adst[mutual]
    del appr_codes, asrc, adst, mutual
    weights = activity[msrc] * np.sqrt(popularity[mdst])

    return World(
        n=n,
        start_ms=start_ms,
        end_ms=end_ms,
        active_ms=active_ms,
        popularity=popularity,
        activity=activity,
        private=private,
        private_always=private_always,
        pub_ptr=pub_ptr,
        cf_ptr=cf_ptr,
        viewers=viewers,
        edge_codes=codes,
        trickle_follow_codes=tcodes,
        excluded_codes=excluded,
        cf_ever_codes=cf_ever,
        approved_ever_codes=approved_ever,
        mutual_src=msrc,
        mutual_dst=mdst,
        mutual_cum=np.cumsum(weights),
        primes=_primes_above(n, 64),
        initial_first=initial_first,
        initial_last=initial_last,
        trickle=trickle,
    )


FOLLOW_CHUNK = 500_000


def initial_graph(world: World, seed: int) -> Iterator[EventTable]:
    """Relationship events of the initial graph in time order, the follows in chunks of FOLLOW_CHUNK."""
    yield from world.initial_first
    rng = stream(seed, "initial")
    m, n = world.edge_codes.size, world.n
    times = np.sort(_times(rng, m, world.start_ms + 1 * MS_MINUTE, world.start_ms + 5 * MS_MINUTE))
    perm = rng.permutation(m)
    for lo in range(0, m, FOLLOW_CHUNK):
        codes = world.edge_codes[perm[lo : lo + FOLLOW_CHUNK]]
        yield _relationship(FOLLOW, codes // n, codes % n, times[lo : lo + FOLLOW_CHUNK])
    yield from world.initial_last

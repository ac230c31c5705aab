"""Synthetic landing-event generator: layout, schema, determinism, fault accounting, audience rules."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.generate import EVENT_TYPES, FAULT_KINDS, FIELDS, FaultRates, GenerateReport, generate
from toolkit.generate.render import _Lines
from toolkit.generate.writer import LandingWriter, hour_folder

START = datetime(2026, 11, 1, tzinfo=UTC)
PATH_RE = re.compile(
    r"^(?P<type>[a-z_]+)/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/part-\d{5}\.jsonl$"
)
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ENUMS: dict[tuple[str, str], set[str]] = {
    ("segment_created", "media_type"): {"photo", "video"},
    ("segment_created", "audience"): {"public", "close_friends"},
    ("segment_view", "view_source"): {"tray", "profile", "reshare", "mention"},
    ("navigation", "action"): {"tap_forward", "tap_back", "tap_exit", "swipe_forward", "swipe_down"},
    ("sticker_interaction", "sticker_type"): set(
        "poll quiz slider question countdown add_yours mention location hashtag link".split()
    ),
    ("engagement", "kind"): set("reply share profile_visit follow link_click dm_sent like comment".split()),
    ("relationship", "kind"): set(
        "follow unfollow close_friend_add close_friend_remove block unblock hide_story unhide_story "
        "set_private set_public approve_follower".split()
    ),
}
INT_FIELDS = {
    "segment_created": ("segment_id", "author_id", "media_id", "duration_ms"),
    "segment_deleted": ("segment_id", "author_id"),
    "segment_archived": ("segment_id", "author_id"),
    "segment_view": ("segment_id", "viewer_id", "view_duration_ms"),
    "navigation": ("segment_id", "viewer_id"),
    "sticker_interaction": ("sticker_id", "segment_id", "user_id"),
    "engagement": ("actor_id", "target_user_id"),
    "relationship": ("user_id",),
    "profile_updated": ("user_id",),
}
NULLABLE_INT_FIELDS = {
    "profile_updated": ("profile_picture_media_id",),
    "segment_archived": ("highlight_id",),
    "sticker_interaction": ("option_index",),
    "engagement": ("segment_id",),
    "relationship": ("other_user_id",),
}


@dataclass
class Line:
    event_type: str  # folder
    folder_hour: datetime
    raw: bytes
    obj: dict[str, Any] | None  # None when not parseable


def read_landing(out: Path) -> list[Line]:
    lines: list[Line] = []
    for path in sorted(out.rglob("*.jsonl")):
        rel = path.relative_to(out).as_posix()
        m = PATH_RE.match(rel)
        assert m, f"unexpected landing path {rel}"
        folder_hour = datetime.strptime(f"{m['dt']} {m['hour']}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        data = path.read_bytes()
        assert data.endswith(b"\n")
        for raw in data[:-1].split(b"\n"):
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            lines.append(Line(m["type"], folder_hour, raw, obj))
    return lines


def parse_time(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def make(tmp: Path, name: str, **kw: Any) -> tuple[GenerateReport, list[Line]]:
    args: dict[str, Any] = {"users": 50, "days": 1, "seed": 7, "progress": False} | kw
    report = generate(tmp / name, **args)
    return report, read_landing(tmp / name)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateReport, list[Line]]:
    """A rule-abiding world (all fault rates zero) of 120 users over 2 days."""
    return make(tmp_path_factory.mktemp("clean"), "out", users=120, days=2, seed=3, faults=FaultRates.none())


# --- determinism and layout --------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a, _ = make(tmp_path, "a")
    b, _ = make(tmp_path, "b")
    make(tmp_path, "c", seed=8)
    ta, tb, tc = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert ta == tb
    assert a.to_dict() | {"out": ""} == b.to_dict() | {"out": ""}
    assert ta != tc


def test_layout_envelope_and_report(tmp_path: Path) -> None:
    report, lines = make(tmp_path, "out")
    assert report.files_written == len(list((tmp_path / "out").rglob("*.jsonl"))) > 0
    assert report.files == sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jsonl")
    )
    assert set(report.lines_per_event_type) == set(EVENT_TYPES)
    assert Counter(ln.event_type for ln in lines) == {
        k: v for k, v in report.lines_per_event_type.items() if v
    }
    assert {"segment_created", "segment_view", "navigation", "relationship", "engagement"} <= {
        ln.event_type for ln in lines
    }
    end = START + timedelta(days=1)
    times = []
    for ln in lines:
        if ln.obj is None:
            continue
        assert ln.obj["event_type"] == ln.event_type
        assert TIME_RE.match(ln.obj["event_time"])
        t = parse_time(ln.obj["event_time"])
        assert START <= t < end
        assert ln.folder_hour >= t.replace(minute=0, second=0, microsecond=0)  # never in an earlier hour
        assert re.fullmatch(r"[a-z]{2}-\d{9,}", ln.obj["event_id"])
        times.append(t)
    assert report.first_event_time == min(times) and report.last_event_time == max(times)
    assert sum(report.faults[k] for k in FAULT_KINDS) > 0


def test_refuses_to_mix_with_existing_landing_data(tmp_path: Path) -> None:
    make(tmp_path, "out", users=10)
    with pytest.raises(FileExistsError):
        make(tmp_path, "out", users=10)
    report, lines = make(tmp_path, "out", users=10, overwrite=True)
    assert len(lines) == report.total_lines


def test_parts_roll_over_and_hour_folders(tmp_path: Path) -> None:
    w = LandingWriter(tmp_path, max_part_lines=3)
    hour = int(START.timestamp()) // 3600 + 5
    for i in range(4):
        w.add("navigation", hour, f"a{i}\nb{i}\n".encode(), 2)
    files = w.close()
    assert files == [f"navigation/dt=2026-11-01/hour=05/part-{i:05d}.jsonl" for i in range(4)]
    assert (tmp_path / files[3]).read_bytes() == b"a3\nb3\n"
    assert hour_folder(hour + 19) == "dt=2026-11-02/hour=00"


# --- clean data: schema, types, ranges, rules -------------------------------------------------


def test_clean_lines_match_the_spec(clean: tuple[GenerateReport, list[Line]]) -> None:
    report, lines = clean
    assert all(v == 0 for v in report.faults.values())
    assert len({ln.raw for ln in lines}) == len(lines)  # no duplicates
    end = report.end
    stickers: dict[int, dict[str, Any]] = {}
    for ln in lines:
        obj = ln.obj
        assert obj is not None, ln.raw
        etype = ln.event_type
        assert list(obj) == ["event_id", "event_type", "event_time", *FIELDS[etype]]
        assert orjson.dumps(obj) == ln.raw  # compact canonical JSON; floats as Python writes them
        t = parse_time(obj["event_time"])
        assert ln.folder_hour == t.replace(minute=0, second=0, microsecond=0)  # nothing late
        assert START <= t < end
        for f in INT_FIELDS[etype]:
            assert is_int(obj[f]) and obj[f] > 0, (f, obj)
        for f in NULLABLE_INT_FIELDS.get(etype, ()):
            assert obj[f] is None or is_int(obj[f]), (f, obj)
        for (et, f), values in ENUMS.items():
            if et == etype:
                assert obj[f] in values, (f, obj)
        if etype == "segment_created":
            assert (
                obj["duration_ms"] == 5000
                if obj["media_type"] == "photo"
                else 1000 <= obj["duration_ms"] <= 15000
            )
            for s in obj["stickers"]:
                assert list(s) == ["sticker_id", "type", "options", "correct_index"]
                assert s["type"] in ENUMS[("sticker_interaction", "sticker_type")]
                if s["type"] in ("poll", "quiz"):
                    assert 2 <= len(s["options"]) <= 4 and all(isinstance(o, str) for o in s["options"])
                else:
                    assert s["options"] is None
                if s["type"] == "quiz":
                    assert 0 <= s["correct_index"] < len(s["options"])
                else:
                    assert s["correct_index"] is None
                stickers[s["sticker_id"]] = s | {"segment_id": obj["segment_id"]}
        elif etype == "segment_view":
            assert obj["view_duration_ms"] >= 0 and is_num(obj["completion_pct"])
            assert 0 < obj["completion_pct"] <= 1
            assert obj["idempotency_key"].startswith(f"{obj['viewer_id']}:{obj['segment_id']}:")
        elif etype == "sticker_interaction":
            s = stickers[obj["sticker_id"]]
            assert s["segment_id"] == obj["segment_id"] and s["type"] == obj["sticker_type"]
            kind = obj["sticker_type"]
            assert (obj["option_index"] is not None) == (kind in ("poll", "quiz"))
            if kind in ("poll", "quiz"):
                assert 0 <= obj["option_index"] < len(s["options"])
            assert (obj["value"] is not None) == (kind == "slider")
            if kind == "slider":
                assert is_num(obj["value"]) and 0 <= obj["value"] <= 1
            assert (obj["text"] is not None) == (kind == "question")
            if kind == "question":
                assert isinstance(obj["text"], str) and 0 < len(obj["text"]) <= 300
        elif etype == "engagement":
            from_story = obj["kind"] in ("reply", "share", "profile_visit", "follow", "link_click")
            assert (obj["segment_id"] is not None) == from_story
        elif etype == "relationship":
            assert (obj["other_user_id"] is None) == (obj["kind"] in ("set_private", "set_public"))
        elif etype == "profile_updated":
            assert re.fullmatch(r"[a-z0-9._]{1,30}", obj["username"]) and obj["username"].endswith(f".{obj['user_id']}")


def test_clean_views_are_plausible(clean: tuple[GenerateReport, list[Line]]) -> None:
    _, lines = clean
    objs = [ln.obj for ln in lines if ln.obj is not None]
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in objs:
        by_type[o["event_type"]].append(o)
    views = by_type["segment_view"]
    keys = Counter(v["idempotency_key"] for v in views)
    assert max(keys.values()) == 1  # no retries without faults
    assert any(k.endswith(":2") for k in keys)  # rewatches
    complete = sum(v["completion_pct"] == 1.0 for v in views)
    partial_counted = sum(v["completion_pct"] < 1 and v["view_duration_ms"] >= 3000 for v in views)
    partial_short = sum(v["completion_pct"] < 1 and v["view_duration_ms"] < 3000 for v in views)
    assert complete > len(views) / 2 and partial_counted > 0 and partial_short > 0
    actions = Counter(n["action"] for n in by_type["navigation"])
    assert actions.most_common(1)[0][0] == "tap_forward" and set(actions) == ENUMS[("navigation", "action")]
    assert {"tray", "profile"} <= {v["view_source"] for v in views}
    # Repeated interactions with a sticker are numbered in time order.
    per_user_sticker: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
    for s in by_type["sticker_interaction"]:
        per_user_sticker[(s["user_id"], s["sticker_id"])].append((s["event_time"], s["idempotency_key"]))
    for (user, sticker), items in per_user_sticker.items():
        items.sort()
        assert [k for _, k in items] == [f"{user}:{sticker}:{i + 1}" for i in range(len(items))]
    # The initial graph comes first, before any view.
    first_view = min(v["event_time"] for v in views)
    graph = [r for r in by_type["relationship"] if r["event_time"] < "2026-11-01T00:10"]
    assert graph and max(r["event_time"] for r in graph) < first_view
    assert {"set_private", "follow", "approve_follower", "close_friend_add"} <= {r["kind"] for r in graph}
    assert {"dm_sent", "like", "comment"} <= {e["kind"] for e in by_type["engagement"]}


def audience_violations(lines: list[Line], segments: int) -> int:
    """Replay the relationship log and count receipts that the audience rules forbid at their time."""
    objs = sorted((ln.obj for ln in lines if ln.obj is not None), key=lambda o: o["event_time"])
    created = {o["segment_id"]: o for o in objs if o["event_type"] == "segment_created"}
    follow: set[tuple[int, int]] = set()
    approved: set[tuple[int, int]] = set()
    cf: set[tuple[int, int]] = set()
    block: set[tuple[int, int]] = set()
    hide: set[tuple[int, int]] = set()
    private: set[int] = set()
    seen: set[str] = set()
    bad = 0
    for o in objs:
        if o["event_id"] in seen:
            continue
        seen.add(o["event_id"])
        if o["event_type"] == "relationship":
            k, u, v = o["kind"], o["user_id"], o["other_user_id"]
            ops = {
                "follow": (follow.add, (u, v)), "unfollow": (follow.discard, (u, v)),
                "close_friend_add": (cf.add, (u, v)), "close_friend_remove": (cf.discard, (u, v)),
                "block": (block.add, (u, v)), "unblock": (block.discard, (u, v)),
                "hide_story": (hide.add, (u, v)), "unhide_story": (hide.discard, (u, v)),
                "approve_follower": (approved.add, (u, v)),
            }  # fmt: skip
            if k in ops:
                fn, pair = ops[k]
                fn(pair)
                if k == "unfollow":
                    approved.discard((v, u))
            elif k == "set_private":
                private.add(u)
            elif k == "set_public":
                private.discard(u)
        elif o["event_type"] == "segment_view":
            seg, viewer = o["segment_id"], o["viewer_id"]
            if not (is_int(seg) and is_int(viewer)) or not 1 <= seg <= segments:
                continue
            author, audience = created[seg]["author_id"], created[seg]["audience"]
            allowed = (
                viewer != author
                and (author, viewer) not in block
                and (viewer, author) not in block
                and (author, viewer) not in hide
                and (audience == "public" or (author, viewer) in cf)
                and (author not in private or ((viewer, author) in follow and (author, viewer) in approved))
            )
            bad += not allowed
    return bad


def test_clean_views_respect_audience_rules(clean: tuple[GenerateReport, list[Line]]) -> None:
    report, lines = clean
    assert audience_violations(lines, report.segments) == 0
    created = {ln.obj["segment_id"]: ln.obj for ln in lines if ln.obj and ln.event_type == "segment_created"}
    assert any(c["audience"] == "close_friends" for c in created.values())


def test_views_target_is_approximate(tmp_path: Path) -> None:
    report, _ = make(tmp_path, "out", users=100, views=12_000)
    assert report.views_target == 12_000
    assert 10_800 <= report.lines_per_event_type["segment_view"] <= 13_200
    natural, _ = make(tmp_path, "nat", users=100)
    assert 20 * 100 <= natural.lines_per_event_type["segment_view"] <= 60 * 100


# --- faults --------------------------------------------------------------------------------------


def test_transport_faults_are_counted_exactly(tmp_path: Path) -> None:
    faults = FaultRates.none().with_overrides(["client_retry=0.05", "duplicate_line=0.03", "late=0.05"])
    faults = faults.with_overrides({"malformed_json": 0.02})
    report, lines = make(tmp_path, "out", users=60, faults=faults)
    f = report.faults
    assert min(f["client_retry"], f["duplicate_line"], f["late"], f["malformed_json"]) > 0
    assert sum(ln.obj is None for ln in lines) == f["malformed_json"]
    assert sum(c - 1 for c in Counter(ln.raw for ln in lines).values()) == f["duplicate_line"]
    late = 0
    for ln in lines:
        if ln.obj is not None:
            hour = parse_time(ln.obj["event_time"]).replace(minute=0, second=0, microsecond=0)
            assert ln.folder_hour >= hour
            late += ln.folder_hour > hour
            if ln.folder_hour > hour:
                assert ln.folder_hour - hour <= timedelta(hours=5)
    assert late == f["late"]
    ids_per_key: dict[tuple[str, str], set[str]] = defaultdict(set)
    times: dict[str, list[str]] = defaultdict(list)
    for ln in lines:
        if ln.obj is not None and ln.event_type in ("segment_view", "sticker_interaction"):
            ids_per_key[(ln.event_type, ln.obj["idempotency_key"])].add(ln.obj["event_id"])
            times[ln.obj["idempotency_key"]].append(ln.obj["event_time"])
    assert sum(len(ids) - 1 for ids in ids_per_key.values()) == f["client_retry"]
    assert {"segment_view", "sticker_interaction"} >= {k[0] for k, ids in ids_per_key.items() if len(ids) > 1}
    for ids in ids_per_key.values():
        assert len(ids) <= 2


def test_content_faults_are_counted_exactly(tmp_path: Path) -> None:
    faults = FaultRates.none().with_overrides(
        {"unknown_segment": 0.03, "expired_view": 0.05, "wrong_type": 0.03, "out_of_range": 0.03,
         "audience_violation": 0.03}
    )  # fmt: skip
    report, lines = make(tmp_path, "out", users=60, days=2, faults=faults)
    f = report.faults
    assert min(
        f[k] for k in ("unknown_segment", "expired_view", "wrong_type", "out_of_range", "audience_violation")
    )
    objs = [ln.obj for ln in lines]
    assert all(o is not None for o in objs)
    created = {o["segment_id"]: o for o in objs if o and o["event_type"] == "segment_created"}
    assert set(created) == set(range(1, report.segments + 1))
    n_options = {s["sticker_id"]: len(s["options"] or ()) for c in created.values() for s in c["stickers"]}
    unknown = expired = wrong = out_of_range = 0
    for o in objs:
        assert o is not None
        if o["event_type"] == "segment_view":
            typed = all(is_int(o[k]) for k in ("segment_id", "viewer_id", "view_duration_ms"))
            typed &= is_num(o["completion_pct"])
            if not typed:
                wrong += 1
                continue
            out_of_range += not (0 <= o["completion_pct"] <= 1) or o["view_duration_ms"] < 0
            if o["segment_id"] not in created:
                unknown += 1
                assert o["segment_id"] > report.segments
            else:
                age = parse_time(o["event_time"]) - parse_time(created[o["segment_id"]]["event_time"])
                assert age >= timedelta(0)
                expired += age >= timedelta(hours=24)
        elif o["event_type"] == "sticker_interaction":
            opt, value = o["option_index"], o["value"]
            typed = all(is_int(o[k]) for k in ("sticker_id", "segment_id", "user_id"))
            typed &= (opt is None or is_int(opt)) and (value is None or is_num(value))
            if not typed:
                wrong += 1
                continue
            bad = opt is not None and not 0 <= opt < n_options[o["sticker_id"]]
            bad |= value is not None and not 0 <= value <= 1
            bad |= o["text"] is not None and len(o["text"]) > 300
            out_of_range += bad
    assert (unknown, expired, wrong, out_of_range) == (
        f["unknown_segment"],
        f["expired_view"],
        f["wrong_type"],
        f["out_of_range"],
    )
    assert audience_violations(lines, report.segments) == f["audience_violation"]


def test_fault_rates_validation() -> None:
    assert FaultRates().as_dict()["audience_violation"] == 0.002
    assert FaultRates().with_overrides(["late=0.5"]).late == 0.5
    with pytest.raises(ValueError, match="unknown fault"):
        FaultRates().with_overrides(["nope=1"])
    with pytest.raises(ValueError, match="NAME=VALUE"):
        FaultRates().with_overrides(["late"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FaultRates(late=1.5)
    with pytest.raises(ValueError, match="sum"):
        FaultRates(late=0.6, duplicate_line=0.6)


# --- formatting ---------------------------------------------------------------------------------


def test_vectorised_number_formatting_matches_python() -> None:
    bp = np.array([-1, 0, 1, 10, 100, 1000, 1234, 5000, 9999, 10_000, *range(0, 10_001, 7)], np.int64)
    b = _Lines(bp.size)
    b.ratio(bp)
    b.const(" ")
    b.ints(np.where(bp < 0, -1, bp * 123_457))
    blob, offsets = b.build()
    lines = blob.decode().splitlines()
    assert offsets[-1] == len(blob) and len(lines) == bp.size
    for v, line in zip(bp.tolist(), lines, strict=True):
        expect = "null null" if v < 0 else f"{v / 10_000!r} {v * 123_457}"
        assert line == expect


# --- property ------------------------------------------------------------------------------------


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), users=st.integers(2, 40), days=st.integers(1, 2))
def test_clean_views_fall_in_their_segments_lifetime(
    tmp_path: Path, seed: int, users: int, days: int
) -> None:
    out = tmp_path / f"p{seed}-{users}-{days}"
    report = generate(out, users=users, days=days, seed=seed, views=users * 20, faults=FaultRates.none(),
                      progress=False)  # fmt: skip
    lines = read_landing(out)
    assert len(lines) == report.total_lines
    created: dict[int, datetime] = {}
    deleted: dict[int, datetime] = {}
    for ln in lines:
        assert ln.obj is not None
        if ln.event_type == "segment_created":
            created[ln.obj["segment_id"]] = parse_time(ln.obj["event_time"])
        elif ln.event_type == "segment_deleted":
            deleted[ln.obj["segment_id"]] = parse_time(ln.obj["event_time"])
    for ln in lines:
        if ln.event_type == "segment_view":
            assert ln.obj is not None
            t, seg = parse_time(ln.obj["event_time"]), ln.obj["segment_id"]
            assert created[seg] <= t < created[seg] + timedelta(hours=24)
            assert seg not in deleted or t < deleted[seg]

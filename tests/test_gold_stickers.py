"""gold.sticker_results: every sticker, per-type results, hand-computed."""

from __future__ import annotations

import pytest

from jobs.gold.sticker_results import sticker_results
from tests.test_gold_builders import T0, H, collect, frames, response, segment

AS_OF = T0 + 48 * H
STICKERS = [
    {"sticker_id": 1, "type": "poll", "options": ["cats", "dogs"]},  # no votes
    {"sticker_id": 2, "type": "poll", "options": ["a", "b", "c"]},
    {"sticker_id": 3, "type": "quiz", "options": ["x", "y", "z"], "correct_index": 2},
    {"sticker_id": 4, "type": "slider"},
    {"sticker_id": 5, "type": "slider"},  # nobody slid
    {"sticker_id": 6, "type": "question"},
    {"sticker_id": 7, "type": "countdown"},
    {"sticker_id": 8, "type": "add_yours"},
    {"sticker_id": 9, "type": "link"},
    {"sticker_id": 10, "type": "hashtag"},  # no taps
]
SEG = segment(1, 100, T0, stickers=STICKERS)
LATE = segment(2, 100, AS_OF, stickers=[{"sticker_id": 99, "type": "poll", "options": ["a", "b"]}])
T = T0 + H
SLIDER_VALUES = (0.0, 0.05, 0.1, 0.55, 0.95, 1.0)
RESPONSES = [
    *[response(SEG, 2, u, T, option_index=i) for u, i in ((1, 0), (2, 1), (3, 1), (4, 1))],
    response(SEG, 2, 5, T, option_index=7),  # outside the options: not counted in the distribution
    response(SEG, 2, 6, AS_OF, option_index=2),  # at as_of: not used
    *[response(SEG, 3, u, T, option_index=i) for u, i in ((1, 2), (2, 2), (3, 0), (4, 1), (5, 2))],
    *[response(SEG, 4, u, T, value=v) for u, v in enumerate(SLIDER_VALUES, start=1)],
    response(SEG, 6, 1, T, text="why?"),
    response(SEG, 6, 2, T, text="how?", interactions=2),
    response(SEG, 7, 3, T),
    response(SEG, 8, 1, T, interactions=2),
    response(SEG, 8, 2, T),
    response(SEG, 9, 1, T, interactions=3),
    response(SEG, 9, 2, T),
]


@pytest.fixture(scope="module")
def rows(spark):
    silver = frames(spark, segments=[SEG, LATE], sticker_responses=RESPONSES)
    return collect(sticker_results(silver["segments"], silver["sticker_responses"], AS_OF), "sticker_id")


def test_every_sticker_has_a_row_even_without_responses(rows):
    assert sorted(rows) == list(range(1, 11))  # sticker 99 is on a segment published at as_of
    assert {rows[s]["segment_id"] for s in rows} == {1} and {rows[s]["author_id"] for s in rows} == {100}
    assert rows[10]["responses"] == 0 and rows[10]["taps"] == 0


def test_poll_without_votes_has_zero_counts_and_null_percentages(rows):
    poll = rows[1]
    assert poll["options"] == ["cats", "dogs"]
    assert poll["option_counts"] == [0, 0]
    assert poll["option_pcts"] == [None, None]  # never a fake 50/50
    assert poll["responses"] == 0


def test_poll_with_votes_has_exact_percentages(rows):
    poll = rows[2]
    assert poll["option_counts"] == [1, 3, 0]
    assert poll["option_pcts"] == [0.25, 0.75, 0.0]
    assert poll["responses"] == 5  # distinct users, including the out-of-range vote
    assert poll["correct_index"] is None and poll["correct_rate"] is None


def test_quiz_correct_rate_is_share_of_votes_on_the_right_answer(rows):
    quiz = rows[3]
    assert quiz["option_counts"] == [1, 1, 3]
    assert quiz["correct_index"] == 2
    assert quiz["correct_rate"] == 0.6
    assert quiz["option_pcts"] == [0.2, 0.2, 0.6]


def test_slider_mean_and_histogram_with_1_0_in_the_last_bin(rows):
    slider = rows[4]
    assert slider["slider_mean"] == pytest.approx(sum(SLIDER_VALUES) / 6)
    assert slider["slider_histogram"] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert slider["responses"] == 6
    assert slider["options"] is None and slider["option_counts"] is None and slider["option_pcts"] is None


def test_slider_without_answers_has_null_mean_and_empty_bins(rows):
    assert rows[5]["slider_mean"] is None and rows[5]["slider_histogram"] == [0] * 10


def test_non_sliders_have_no_slider_results(rows):
    assert all(rows[s]["slider_mean"] is None and rows[s]["slider_histogram"] is None for s in (1, 2, 3, 6, 9))


def test_question_countdown_add_yours_and_tap_counts(rows):
    got = {s: (rows[s]["question_responses"], rows[s]["countdown_optins"], rows[s]["add_yours_reshares"],
               rows[s]["taps"]) for s in (6, 7, 8, 9)}  # fmt: skip
    assert got == {6: (2, 0, 0, 0), 7: (0, 1, 0, 0), 8: (0, 0, 3, 0), 9: (0, 0, 0, 4)}


def test_many_choice_stickers_each_get_their_own_votes(spark):
    """Many polls and quizzes interleaved with option-less stickers over several segments: every sticker's
    counts are its own votes, in option order (gold once took counts from a map lookup that returned another
    row's map on Sail at scale)."""
    segs, responses, expected = [], [], {}
    for n in range(60):
        stickers = []
        for k in range(5):
            sid = 1000 + 5 * n + k
            if k in (1, 3):  # no options
                stickers.append({"sticker_id": sid, "type": "countdown" if k == 1 else "slider"})
                continue
            options = [f"o{i}" for i in range(2 + (sid % 3))]
            stickers.append({"sticker_id": sid, "type": "quiz" if k == 2 else "poll", "options": options,
                             **({"correct_index": 0} if k == 2 else {})})
        seg = segment(10 + n, 100 + n % 7, T0, stickers=stickers)
        segs.append(seg)
        for st in stickers:
            if "options" not in st:
                continue
            sid, width = st["sticker_id"], len(st["options"])
            chosen, votes = sid % width, 1 + sid % 4
            responses += [response(seg, sid, u, T, option_index=chosen) for u in range(votes)]
            expected[sid] = [votes if i == chosen else 0 for i in range(width)]
    silver = frames(spark, segments=segs, sticker_responses=responses)
    got = collect(sticker_results(silver["segments"], silver["sticker_responses"], AS_OF), "sticker_id")
    assert {sid: got[sid]["option_counts"] for sid in expected} == expected
    assert all(got[sid]["correct_rate"] == (1.0 if expected[sid][0] else 0.0)
               for sid in expected if got[sid]["sticker_type"] == "quiz")


def test_slider_mean_is_the_same_whatever_order_the_responses_come_in(spark):
    """An incremental run reads a sticker's responses in another order than a full refresh: the mean comes from an
    exact sum of the values (10 decimals), so both give the same bits (a float sum gives 0.6 or 0.6000000000000001
    for 0.1 + 0.2 + 0.3 depending on the order)."""
    from decimal import Decimal

    values = (0.1, 0.2, 0.3, 0.7, 0.15, 0.45)
    seen = set()
    for order in (values, tuple(reversed(values)), values[3:] + values[:3]):
        silver = frames(spark, segments=[SEG], sticker_responses=[
            response(SEG, 4, u, T, value=v) for u, v in enumerate(order, start=1)])
        seen.add(collect(sticker_results(silver["segments"], silver["sticker_responses"], AS_OF),
                         "sticker_id")[4]["slider_mean"])
    exact = sum(Decimal(str(v)) for v in values) / len(values)
    assert len(seen) == 1  # the division's last digit at 14 decimals is the engine's (Sail truncates, JVM rounds)
    assert abs(Decimal(seen.pop()) - exact) < Decimal("1e-14")

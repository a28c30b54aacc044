"""A blind side's stream, replayed so both sides begin at the same moment (playground/ui/arena_stream.py).

Pure, with a made-up clock: the browser test (tests/test_browser_blind.py) checks the same thing
through the real model and a real page.
"""
from __future__ import annotations

from playground.ui.arena_stream import AlignedStart


def feed_at(aligned: AlignedStart, t: float, left: str, right: str, done=(False, False)) -> None:
    aligned.feed(t, [left, right], list(done))


def test_nothing_shows_until_both_sides_have_begun():
    aligned = AlignedStart()
    feed_at(aligned, 0.0, "", "")
    feed_at(aligned, 5.0, "", "Paris")           # the short prompt's first token
    feed_at(aligned, 6.0, "", "Paris is the")
    assert aligned.shown(6.0) is None and aligned.remaining(6.0) is None
    feed_at(aligned, 44.0, "The", "Paris is the capital of France.")    # the long prompt's first token
    assert aligned.start == 44.0
    assert aligned.shown(44.0) == ["The", "Paris"]   # the early side starts from its own first token


def test_the_early_side_is_replayed_at_its_own_pace_and_both_end_on_time():
    aligned = AlignedStart()
    feed_at(aligned, 1.0, "", "A")
    feed_at(aligned, 2.0, "", "A b")
    feed_at(aligned, 3.0, "", "A b c", done=(False, True))
    feed_at(aligned, 10.0, "X", "A b c", done=(False, True))
    assert aligned.shown(10.0) == ["X", "A"]
    assert aligned.shown(10.5) == ["X", "A"]
    assert aligned.shown(11.0) == ["X", "A b"]
    feed_at(aligned, 11.5, "X y", "A b c", done=(True, True))
    assert aligned.shown(11.6) == ["X y", "A b"]
    assert abs(aligned.remaining(11.6) - 0.4) < 1e-9     # the right side ended 2 s after it began
    assert aligned.shown(12.0) == ["X y", "A b c"] and aligned.remaining(12.0) == 0.0


def test_whitespace_is_not_a_beginning_and_an_empty_failure_is():
    aligned = AlignedStart()
    feed_at(aligned, 1.0, "\n", "")
    assert aligned.start is None
    feed_at(aligned, 2.0, "\n", "", done=(False, True))    # the right side failed without a word
    feed_at(aligned, 3.0, "\nHi", "", done=(False, True))
    assert aligned.start == 3.0 and aligned.shown(3.0) == ["\nHi", ""]


def test_what_was_shown_is_dropped():
    aligned = AlignedStart()
    feed_at(aligned, 0.0, "a", "")
    for k in range(1, 200):
        feed_at(aligned, k * 0.1, "a" * (k + 1), "")
    feed_at(aligned, 20.0, "a" * 201, "b")
    aligned.shown(50.0)
    assert len(aligned._sides[0].frames) == 1

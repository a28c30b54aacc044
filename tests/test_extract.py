"""Answer extraction, normalisation, comparison, majority vote and reasoning/final split."""
from __future__ import annotations

import pytest

from playground.prompting.extract import (
    Extracted, answers_match, extract_answer, majority_vote, normalize_number, split_reasoning,
)


def _found(text: str, kind: str = "auto") -> Extracted:
    result = extract_answer(text, kind)
    assert result is not None, f"no answer found in {text!r}"
    start, end = result.span
    assert 0 <= start < end <= len(text), "span must point into the text"
    return result


@pytest.mark.parametrize("text, kind, value, shown", [
    # several numbers, no marker: the last one
    ("She had 5 apples, bought 12 more and ate 3, so 5 + 12 - 3 = 14 apples.", "number", "14", "14"),
    # currency with thousands separator and a sentence-final period
    ("The answer is $1,250.", "number", "1250", "$1,250"),
    ("The answer is $1,250.", "auto", "1250", "$1,250"),
    # negatives, ASCII and Unicode minus
    ("The temperature dropped to -7 degrees overnight.", "number", "-7", "-7"),
    ("The answer is \u22123.", "number", "-3", "\u22123"),
    # fractions keep their exact value
    ("She ate 1/4 first. The answer is 3/4.", "number", "3/4", "3/4"),
    ("The answer is 6/3.", "number", "2", "6/3"),
    # Kojima's arithmetic answer trigger; the number after the LAST marker wins
    ("40 + 2 = 42. Therefore, the answer (arabic numerals) is 42.", "number", "42", "42"),
    ("The answer is 5. Wait, I made a mistake: the answer is 6.", "number", "6", "6"),
    # first number after the marker (Kojima's cleansing), not the last one in the text
    ("Final answer: 18 eggs, sold at $2 each gives 36 dollars", "number", "18", "18"),
    # GSM8K marker, decimals, percentages, markdown
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "number", "72", "72"),
    ("It costs 0.50 dollars. The answer is 0.50.", "number", "0.5", "0.50"),
    ("The answer is 3.5.", "number", "3.5", "3.5"),
    ("It was 50% off, so the answer is 25%.", "number", "25", "25"),
    ("The answer is **42**.", "auto", "42", "42"),
    ("answer: -2", "auto", "-2", "-2"),
    # \boxed{} with LaTeX inside
    ("so $x = \\boxed{\\frac{3}{4}}$", "auto", "3/4", "\\frac{3}{4}"),
    ("The final answer is $\\boxed{1,000}$.", "number", "1000", "1,000"),
    # hyphenated words are not negative numbers; "isn't" is not a marker
    ("COVID-19 cases rose by 12.", "number", "12", "12"),
    ("The answer isn't obvious. In the end we get 7.", "number", "7", "7"),
])
def test_numbers(text, kind, value, shown):
    result = _found(text, kind)
    assert (result.value, result.kind) == (value, "number")
    assert text[result.span[0]:result.span[1]] == shown


def test_number_carries_float_value():
    assert _found("The answer is 3/4.", "number").number == pytest.approx(0.75)
    assert _found("The answer is $1,250.50.", "number").number == pytest.approx(1250.5)


@pytest.mark.parametrize("text, kind, value", [
    ("Yes, because penguins can swim.", "yes_no", "yes"),
    ("Yes, because penguins can swim.", "auto", "yes"),
    ("NO. Ice floats.", "yes_no", "no"),
    ("There is no way to be sure, but on balance yes.", "yes_no", "yes"),
    ("Honey keeps for years. So the answer is yes.", "yes_no", "yes"),
    ("Let's think. The answer is: No.", "yes_no", "no"),
    ("Therefore, the answer (Yes or No) is no", "auto", "no"),
])
def test_yes_no(text, kind, value):
    result = _found(text, kind)
    assert (result.value, result.kind) == (value, "yes_no")


@pytest.mark.parametrize("text, kind, value", [
    ("(C)", "auto", "C"),
    ("(C)", "choice", "C"),
    ("B) Paris", "auto", "B"),
    ("The answer is B because it is blue.", "choice", "B"),
    ("The answer is (b).", "auto", "B"),
    ("Looking at the options, I pick (D) since it fits best", "choice", "D"),
    ("Answer: E.", "auto", "E"),
])
def test_choices(text, kind, value):
    result = _found(text, kind)
    assert (result.value, result.kind) == (value, "choice")


def test_article_a_is_not_a_choice_in_auto_mode():
    result = _found("The answer is A dog.", "auto")
    assert (result.value, result.kind) == ("A dog", "text")


@pytest.mark.parametrize("text, value", [
    ("The answer is positive.", "positive"),
    ("Negative. The reviewer was bored.", "Negative"),
])
def test_text(text, value):
    assert _found(text, "text").value == value


@pytest.mark.parametrize("text, kind", [
    ("I really cannot say.", "number"),
    ("I really cannot say.", "auto"),
    ("", "auto"),
    ("   \n", "number"),
    ("Paris is lovely in spring.", "choice"),
])
def test_no_answer(text, kind):
    assert extract_answer(text, kind) is None


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown answer kind"):
        extract_answer("42", "integer")


@pytest.mark.parametrize("written, normal", [
    ("1,000.00", "1000"), ("$5", "5"), ("0.50", "0.5"), ("-3/4", "-3/4"), ("6/8", "3/4"), ("12%", "12"),
    ("\u20ac1,234", "1234"), ("-0", "0"), ("007", "7"), (".5", "0.5"), ("100", "100"),
])
def test_normalize_number(written, normal):
    assert normalize_number(written) == normal


def test_normalize_number_rejects_text():
    with pytest.raises(ValueError):
        normalize_number("twelve")


@pytest.mark.parametrize("pred, gold, kind, same", [
    ("$1,250", "1250", "number", True),
    ("3/4", "0.75", "auto", True),
    ("1250.0", "1250", "number", True),
    ("1251", "1250", "number", False),
    ("Yes", "yes", "yes_no", True),
    ("no", "yes", "yes_no", False),
    ("(b)", "B", "choice", True),
    ("Positive.", "positive", "text", True),
    (None, "1", "number", False),
    ("seven", "7", "number", False),
])
def test_answers_match(pred, gold, kind, same):
    assert answers_match(pred, gold, kind) is same


def test_majority_vote_clear_winner():
    vote = majority_vote(["18", "18", "20", None, "18"])
    assert vote.winner == "18" and not vote.tie
    assert vote.tally == [("18", 3), ("20", 1), (None, 1)]


def test_majority_vote_tie_goes_to_first_to_reach_the_top_count():
    vote = majority_vote(["A", "B", "B", "A"])
    assert vote.winner == "B" and vote.tie  # B reached 2 votes at the 3rd sample, A only at the 4th
    assert vote.tally == [("B", 2), ("A", 2)]
    again = majority_vote(["7", "9"])
    assert again.winner == "7" and again.tie


def test_majority_vote_none_never_wins_unless_alone():
    vote = majority_vote([None, None, None, "5"])
    assert vote.winner == "5" and not vote.tie
    assert vote.tally[0] == (None, 3)
    assert majority_vote([None, None]).winner is None
    empty = majority_vote([])
    assert (empty.winner, empty.tally, empty.tie) == (None, [], False)


def test_majority_vote_is_deterministic():
    answers = ["3", "4", None, "4", "3", "5"]
    assert majority_vote(answers) == majority_vote(list(answers))


def test_split_reasoning_separates_the_answer_sentence():
    reasoning, final = split_reasoning("First 3 + 4 = 7. Then 7 * 2 = 14. The answer is 14.")
    assert reasoning == "First 3 + 4 = 7. Then 7 * 2 = 14."
    assert final == "The answer is 14."


def test_split_reasoning_kojima_trigger_and_lines():
    text = "Step one: 2.5 + 1.5 = 4.\nStep two.\nTherefore, the answer (arabic numerals) is 42."
    assert split_reasoning(text) == ("Step one: 2.5 + 1.5 = 4.\nStep two.",
                                     "Therefore, the answer (arabic numerals) is 42.")


def test_split_reasoning_without_marker_keeps_everything_as_reasoning():
    assert split_reasoning("  Just some thoughts.  ") == ("Just some thoughts.", "")


def test_split_reasoning_boxed():
    reasoning, final = split_reasoning("We add them. So $x=\\boxed{5}$.")
    assert reasoning == "We add them." and final == "So $x=\\boxed{5}$."


# --- what the question asks for (no "[answer: 3]" for "Name three colours.") ---------------------

from playground.prompting.extract import asked_kind, resolve_answer_kind  # noqa: E402


@pytest.mark.parametrize("question, kind", [
    ("Name three colours.", "none"),
    ("What is the capital of France?", "none"),
    ("Write a short poem about the sea.", "none"),
    ("Tom has 3 apples and buys 4 more. How many apples does he have now?", "number"),
    ("How many legs does a spider have?", "number"),
    ("In which year did the Second World War end?", "number"),
    ("What year did the Second World War end?", "number"),
    ("Is the sun a star?", "yes_no"),
    ("Can penguins fly?", "yes_no"),
    ("Is it better to walk or to drive?", "none"),
    ("Which is heavier?\n(A) a feather\n(B) a brick", "choice"),
])
def test_asked_kind(question, kind):
    assert asked_kind(question) == kind


def test_resolve_answer_kind_from_preset_and_question():
    assert resolve_answer_kind("auto", "Name three colours.") == "none"
    assert resolve_answer_kind("auto", "How many days are in a week?") == "number"
    assert resolve_answer_kind("number", "Name three colours.") == "none"
    assert resolve_answer_kind("number", "A shop has 40 pens and sells 15. How many are left?") == "number"
    assert resolve_answer_kind("yes_no", "Would a pear sink in water?") == "yes_no"
    assert resolve_answer_kind("text", "This film was a joy.") == "text"
    assert extract_answer("1. Red\n2. Blue\n3. Green", "none") is None
    assert extract_answer("1. Red\n2. Blue\n3. Green", "number").value == "3", "what 'none' prevents"

"""Judge prompts render the case as data; answers are read tolerantly, and never guessed."""

from __future__ import annotations

import json

import pytest

from evaltui.errors import InvalidInput
from evaltui.judge.parse import BinaryAnswer, PairwiseAnswer, parse_answer
from evaltui.judge.prompt import (
    BINARY_TEMPLATE,
    PAIRWISE_TEMPLATE,
    check_template,
    render,
)
from evaltui.models import Case, CaseKind, Message, Rubric, RubricKind
from tests.conftest import PANDALM

BINARY = Rubric(name="ok", kind=RubricKind.binary, question="Resolved?", pass_="yes", fail="no",
                checklist=("answers each question",))  # fmt: skip
PAIRWISE = Rubric(name="pw", kind=RubricKind.pairwise, question="Which is better?")


@pytest.mark.parametrize(
    ("answer", "kind", "value"),
    [
        ('{"critique": "fine", "verdict": "pass"}', RubricKind.binary, "pass"),
        ('```json\n{"critique": "x", "verdict": "FAIL"}\n```', RubricKind.binary, "fail"),
        ('Sure! {"critique": "x", "verdict": "fail"} Hope that helps.', RubricKind.binary, "fail"),
        ("The reply misses Q2.\nVerdict: **FAIL**", RubricKind.binary, "fail"),
        ('{"critique": "B is shorter", "verdict": "B"}', RubricKind.pairwise, "B"),
        ("Both equal.\nAnswer: tie", RubricKind.pairwise, "tie"),
        ("verdict: 1", RubricKind.pairwise, "A"),
    ],
)
def test_verdicts_are_read(answer: str, kind: RubricKind, value: str) -> None:
    assert parse_answer(answer, kind).value == value


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "garbage",
        "I think it passes mostly but fails in places.",  # no labelled verdict: not guessed
        '{"critique": "x", "verdict": "maybe"}',
        '{"critique": "x"}',
        "Verdict: probably",
        "\x1b]52;c;aGk=\x07 [bold]pass[/bold]",
    ],
)
def test_unreadable_answers_are_errors_never_a_label(answer: str) -> None:
    parsed = parse_answer(answer, RubricKind.binary)
    assert parsed.value is None
    assert parsed.error


def test_structured_answer_models_match_the_parser() -> None:
    answer = BinaryAnswer(critique="ok", verdict="pass").model_dump_json()
    assert parse_answer(answer, RubricKind.binary).value == "pass"
    answer = PairwiseAnswer(critique="ok", verdict="tie").model_dump_json()
    assert parse_answer(answer, RubricKind.pairwise).value == "tie"


@pytest.mark.skipif(
    not (PANDALM / "gpt-3.5-turbo-testset-v1.json").exists(), reason="no shared data"
)
def test_pandalm_gpt_results_are_read_with_garbage_as_errors() -> None:
    records = json.loads((PANDALM / "gpt-3.5-turbo-testset-v1.json").read_text())
    parsed = [parse_answer(f"verdict: {r['gpt_result']}", RubricKind.pairwise) for r in records]
    errors = [r for r, p in zip(records, parsed, strict=True) if p.value is None]
    assert len(errors) == 25 and {r["gpt_result"] for r in errors} == {"garbage"}
    expected = {"1": "A", "2": "B", "Tie": "tie"}
    for record, result in zip(records, parsed, strict=True):
        if record["gpt_result"] != "garbage":
            assert result.value == expected[record["gpt_result"]]


def test_default_templates_ask_for_critique_before_verdict() -> None:
    for template in (BINARY_TEMPLATE, PAIRWISE_TEMPLATE):
        check_template(template)
        assert template.index("critique") < template.index('"verdict"')


def test_case_text_is_data_even_with_braces() -> None:
    case = Case(
        id="c", kind=CaseKind.single, input="use {output} and {{x}}", output="{question} }{"
    )
    prompt = render(BINARY_TEMPLATE, BINARY, case)
    assert "use {output} and {{x}}" in prompt and "{question} }{" in prompt
    assert "- answers each question" in prompt and "Question: Resolved?" in prompt


def test_chat_input_and_swapped_pairs() -> None:
    chat = Case(
        id="c", kind=CaseKind.pair,
        messages=[Message(role="user", content="hi"), Message(role="assistant", content="hello")],
        output_a="first", output_b="second",
    )  # fmt: skip
    prompt = render(PAIRWISE_TEMPLATE, PAIRWISE, chat)
    assert "[user]\nhi" in prompt and prompt.index("first") < prompt.index("second")
    swapped = render(PAIRWISE_TEMPLATE, PAIRWISE, chat, swapped=True)
    assert swapped.index("second") < swapped.index("first")


@pytest.mark.parametrize("template", ["Grade {reply}", "Grade {output", "Grade {0}"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(InvalidInput, match="judge prompt"):
        check_template(template)

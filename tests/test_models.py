"""Domain models validate their shape; a judge's version changes with anything that changes it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from evaltui.models import Case, CaseKind, Judge, Rubric, RubricKind


def test_a_single_case_has_one_output_and_one_kind_of_input() -> None:
    Case(id="a", kind=CaseKind.single, input="q", output="a")
    with pytest.raises(ValidationError, match="exactly one of 'input'"):
        Case(id="a", kind=CaseKind.single, output="a")
    with pytest.raises(ValidationError, match="exactly one of 'input'"):
        Case(id="a", kind=CaseKind.single, input="q", messages=[], output="a")
    with pytest.raises(ValidationError, match="needs 'output'"):
        Case(id="a", kind=CaseKind.single, input="q")
    with pytest.raises(ValidationError, match="not 'output_a'"):
        Case(id="a", kind=CaseKind.single, input="q", output="a", output_a="x")


def test_a_pair_case_has_both_outputs() -> None:
    Case(id="a", kind=CaseKind.pair, input="q", output_a="x", output_b="y")
    with pytest.raises(ValidationError, match="needs both"):
        Case(id="a", kind=CaseKind.pair, input="q", output_a="x")


def test_rubric_names_and_values() -> None:
    assert Rubric(name="ok-2", kind=RubricKind.binary, question="q").values == ("pass", "fail")
    assert Rubric(name="p", kind=RubricKind.pairwise, question="q").values == ("A", "B", "tie")
    for bad in ("Has Caps", "", "under_score", "x" * 65):
        with pytest.raises(ValidationError):
            Rubric(name=bad, kind=RubricKind.binary, question="q")


def test_judge_version_hashes_model_prompt_params_and_few_shot() -> None:
    base = Judge(rubric="r", model="openai/gpt-4o-mini", prompt="Judge {output}")
    assert base.version.startswith("sha256:") and len(base.version) == 7 + 64
    assert (
        base.version
        == Judge(rubric="r", model="openai/gpt-4o-mini", prompt="Judge {output}").version
    )
    changes = [
        {"model": "openai/gpt-4o"},
        {"prompt": "Judge {output}!"},
        {"params": {"temperature": 0.5}},
        {"few_shot": ("c1",)},
        {"api_base": "http://127.0.0.1:8000"},
    ]
    versions = {base.model_copy(update=change).version for change in changes}
    assert len(versions) == len(changes) and base.version not in versions
    # The judge's name and rubric are labels for it, not part of what it does.
    assert base.model_copy(update={"name": "other"}).version == base.version

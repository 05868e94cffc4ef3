"""Rubric TOML: the SPEC's example reads, round-trips field for field, and rejects unknown keys."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from evaltui import rubric_toml
from evaltui.errors import InvalidInput
from evaltui.models import Judge
from evaltui.store import Store

PROMPT = "Critique the reply, then answer PASS or FAIL.\n{output}\n"
JUDGE_VERSION = Judge(
    rubric="resolves-issue", model="openai/gpt-4o-mini", prompt=PROMPT, params={"temperature": 0.0},
    few_shot=("case-3", "case-9"),
).version  # fmt: skip

SPEC_EXAMPLE = f'''
[rubric]
name = "resolves-issue"
version = 3
kind = "binary"
status = "approved"
question = "Does the reply resolve the customer's issue?"
pass = "Answers every question asked, correctly, with next steps."
fail = "Misses a question, states a wrong policy, or invents facts."
checklist = ["Answers each question", "Policy matches the docs"]
examples = {{ pass = ["case-12"], fail = ["case-40"] }}

[judge]
model = "openai/gpt-4o-mini"
api_base = ""
prompt = """{PROMPT}"""
params = {{ temperature = 0.0 }}
few_shot = ["case-3", "case-9"]
version = "{JUDGE_VERSION}"

[calibration]
n = 120
human_raters = ["alice", "bob"]
human_kappa = 0.78
human_kappa_ci = [0.66, 0.89]
judge_kappa = 0.71
judge_kappa_ci = [0.58, 0.83]
tpr = 0.91
tnr = 0.84
split_seed = 7
cases_sha256 = "abc"
labels_sha256 = "def"
approved_by = "alice"
approved_at = 2026-11-22T10:00:00Z

[thresholds]
human_kappa_lower = 0.6
judge_kappa = 0.5
'''


def test_spec_example_reads_with_every_field() -> None:
    parsed = rubric_toml.loads(SPEC_EXAMPLE)
    rubric = parsed.to_rubric()
    assert (rubric.name, rubric.version, rubric.kind, rubric.status) == (
        "resolves-issue", 3, "binary", "approved",
    )  # fmt: skip
    assert rubric.pass_ == "Answers every question asked, correctly, with next steps."
    assert rubric.checklist == ("Answers each question", "Policy matches the docs")
    assert (rubric.examples_pass, rubric.examples_fail) == (("case-12",), ("case-40",))
    judge = parsed.to_judge()
    assert judge is not None and judge.version == JUDGE_VERSION
    assert judge.params == {"temperature": 0.0}
    assert parsed.calibration is not None
    assert parsed.calibration.human_kappa_ci == [0.66, 0.89]
    assert parsed.calibration.approved_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert parsed.thresholds is not None and parsed.thresholds.judge_kappa == 0.5


def test_text_round_trip_is_equal_field_for_field() -> None:
    parsed = rubric_toml.loads(SPEC_EXAMPLE)
    again = rubric_toml.loads(rubric_toml.dumps(parsed))
    assert again == parsed
    assert again.model_dump() == parsed.model_dump()


def test_project_round_trip_gives_the_same_rubric_and_judge(cli, tmp_path: Path, db: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "in.toml"
    source.write_text(SPEC_EXAMPLE)
    assert cli("rubric", "import", source, "--db", db).out.strip().endswith("added")
    assert cli("rubric", "import", source, "--db", db).out.strip().endswith("unchanged")
    out = tmp_path / "out.toml"
    result = cli("rubric", "export", "resolves-issue", out, "--db", db)
    assert result.code == 0, result.err
    original, exported = rubric_toml.load(source), rubric_toml.load(out)
    assert exported.rubric == original.rubric
    assert exported.judge == original.judge
    with Store.open(db) as store:
        assert store.get_rubric("resolves-issue") == original.to_rubric().model_copy(
            update={"created_at": store.get_rubric("resolves-issue").created_at}
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[rubric]\nname="a"\nkind="binary"\nquestion="q"\ncolour="red"\n',
            "unknown key 'rubric.colour'",
        ),
        ('[rubric]\nname="a"\nkind="binary"\nquestion="q"\n[extra]\nx=1\n', "unknown key 'extra'"),
        (
            '[rubric]\nname="a"\nkind="binary"\nquestion="q"\n[thresholds]\nkappa=1\n',
            "unknown key 'thresholds.kappa'",
        ),
        (
            '[rubric]\nname="a"\nkind="binary"\nquestion="q"\nexamples={maybe=["x"]}\n',
            "unknown key 'rubric.examples.maybe'",
        ),
        ('[rubric]\nname="A B"\nkind="binary"\nquestion="q"\n', "rubric.name"),
        ('[rubric]\nname="a"\nkind="ternary"\nquestion="q"\n', "rubric.kind"),
        ('[rubric]\nname="a"\nkind="binary"\n', "missing key 'rubric.question'"),
        ('[judge]\nmodel="m"\nprompt="p"\n', "missing key 'rubric'"),
        ('[rubric\nname="a"', "not valid TOML"),
    ],
)
def test_bad_files_name_the_key(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match=None) as error:
        rubric_toml.loads(text, source="r.toml")
    assert str(error.value).startswith("r.toml: ")
    assert expected in str(error.value)


def test_a_hand_edited_judge_prompt_no_longer_matches_its_version() -> None:
    edited = SPEC_EXAMPLE.replace("then answer PASS", "then answer pass")
    with pytest.raises(InvalidInput, match=r"judge\.version does not match"):
        rubric_toml.loads(edited)


def test_cli_reports_a_bad_toml_in_one_line(cli, tmp_path: Path, db: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'[rubric]\nname = "\xff"\n')
    result = cli("rubric", "import", bad, "--db", db)
    assert result.code == 1
    assert result.err.count("\n") == 1 and "not UTF-8" in result.err

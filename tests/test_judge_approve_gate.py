"""Approving a judge into rubric TOML, reading it back, gating CI on it, and the judge CLI's errors.

Projects here have 40 cases whose gold label alternates pass/fail and whose
output carries an `[expect:...]` mark, so the loopback server answers as a
perfectly calibrated judge; verdicts are otherwise written straight into the
store to make a judge agree or disagree on purpose.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from evaltui import rubric_toml
from evaltui.ingest import import_cases
from evaltui.judge.prompt import BINARY_TEMPLATE
from evaltui.models import Judge, Rubric, RubricKind, Verdict
from evaltui.rubric_toml import RubricFile
from evaltui.store import Store
from evaltui.store.db import now
from evaltui.store.verdicts import add_verdicts, count_test_views, split_of, verdicts
from tests.conftest import Result, write_jsonl
from tests.loopback import LoopbackServer, Reply, Request, marked_verdict
from tests.served import Served

Cli = Callable[..., Result]
"""The `cli` fixture: `evaltui ARGS...` run in-process."""

KEY = "sk-evaltui-FAKE-key-5c2e91d0a7"
"""A distinctive fake API key: it must never be written or shown anywhere."""

RUBRIC = Rubric(
    name="tone",
    kind=RubricKind.binary,
    question="Is the reply polite and on topic?",
    pass_="Courteous, answers what was asked.",
    fail="Rude, dismissive or off topic.",
    checklist=("Greets or thanks", "Answers the question", "No blame"),
    examples_pass=("case-00",),
    examples_fail=("case-01",),
)
GOLD = {f"case-{i:02d}": ("pass" if i % 2 == 0 else "fail") for i in range(40)}
SEED = 0
"""The split seed every project here locks (the CLI's default)."""
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def in_split(split: str) -> list[str]:
    return sorted(c for c in GOLD if split_of(c, SEED) == split)


TRAIN, DEV, TEST = in_split("train"), in_split("dev"), in_split("test")
TEST_PASS = [c for c in TEST if GOLD[c] == "pass"]

JUDGE = Judge(
    name="default",
    rubric="tone",
    model="openai/x",
    prompt=BINARY_TEMPLATE,
    params={"temperature": 0},
    few_shot=(TRAIN[0],),
)


def flip(value: str) -> str:
    return "fail" if value == "pass" else "pass"


def one_line_error(result: Result) -> str:
    """The error a failed command printed, checked to be one line and no traceback."""
    assert result.code == 1, (result.code, result.out, result.err)
    assert result.out == ""
    assert result.err.startswith("evaltui: ")
    assert result.err.count("\n") == 1 and result.err.endswith("\n")
    assert "Traceback" not in result.err and "internal error" not in result.err
    return result.err


def build_project(
    db: Path,
    *,
    raters: Iterable[str] = ("alice", "bob"),
    bob_flips: Iterable[str] = (),
) -> None:
    """Cases, the rubric and human labels: every rater gives the gold label except bob's flips."""
    cases = write_jsonl(
        db.with_suffix(".cases.jsonl"),
        [{"id": c, "input": f"Question {c}", "output": f"Reply {c} [expect:{g}]"} for c, g in GOLD.items()],
    )  # fmt: skip
    flips = set(bob_flips)
    with Store.open(db) as store:
        import_cases(store, cases)
        store.save_rubric(RUBRIC)
        for rater in raters:
            for case_id, gold in GOLD.items():
                value = flip(gold) if rater == "bob" and case_id in flips else gold
                store.add_label(case_id, RUBRIC, rater, value, note=f"{rater} on {case_id}")


_TEMPLATES: dict[tuple[tuple[str, ...], tuple[str, ...]], Path] = {}
_TEMPLATE_DIR: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Projects are built once per shape and copied: creating a project file takes a second."""
    _TEMPLATE_DIR.append(tmp_path_factory.mktemp("templates"))
    yield
    _TEMPLATES.clear()
    _TEMPLATE_DIR.clear()


def make_project(
    db: Path,
    *,
    raters: Iterable[str] = ("alice", "bob"),
    bob_flips: Iterable[str] = (),
) -> None:
    """A copy of the project `build_project` makes."""
    key = (tuple(raters), tuple(sorted(bob_flips)))
    if key not in _TEMPLATES:
        template = _TEMPLATE_DIR[0] / f"template-{len(_TEMPLATES)}.duckdb"
        build_project(template, raters=key[0], bob_flips=key[1])
        _TEMPLATES[key] = template
    shutil.copyfile(_TEMPLATES[key], db)


def give_verdicts(db: Path, judge: Judge, values: dict[str, str | None], *, later: int = 0) -> None:
    """Store the judge and these verdicts (None: an error verdict); `later` seconds in the future."""
    at = now() + timedelta(seconds=later)
    with Store.open(db) as store:
        store.save_judge(judge)
        add_verdicts(
            store,
            [
                Verdict(
                    judge_version=judge.version, case_id=c, value=v, critique=f"looks {v}",
                    raw=json.dumps({"verdict": v}), error=None if v else "unreadable", created_at=at,
                )
                for c, v in values.items()
            ],
        )  # fmt: skip


def agreeing(exceptions: Iterable[str] = ()) -> dict[str, str | None]:
    """The gold label for every case but the few-shot one, flipped for `exceptions`."""
    flipped = set(exceptions)
    return {c: (flip(g) if c in flipped else g) for c, g in GOLD.items() if c not in JUDGE.few_shot}


def approve(cli: Cli, db: Path, out: Path) -> rubric_toml.RubricFile:
    result = cli("judge", "approve", "--rubric", "tone", "--db", db, "--out", out, "--by", "alice")  # fmt: skip
    assert result.code == 0, result.err
    assert str(out) in result.out
    return rubric_toml.load(out)


@pytest.fixture
def approved(cli: Cli, db: Path, tmp_path: Path) -> Path:
    """A project whose judge agrees with the humans on all but one test pass, approved to TOML."""
    make_project(db)
    give_verdicts(db, JUDGE, agreeing([TEST_PASS[0]]))
    out = tmp_path / "approved.toml"
    approve(cli, db, out)
    return out


# 1. approve ------------------------------------------------------------------


def test_approve_writes_the_judge_and_its_test_split_figures(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, agreeing([TEST_PASS[0]]))
    report = cli("judge", "report", "--rubric", "tone", "--db", db, "--split", "test", "--json")
    assert report.code == 0, report.err
    figures = json.loads(report.out)
    assert figures["split"] == "test" and figures["n"] == len(TEST)
    out = tmp_path / "out" / "tone.toml"
    before = datetime.now(UTC).replace(microsecond=0)
    parsed = approve(cli, db, out)
    after = datetime.now(UTC)

    assert parsed.rubric.status.value == "approved"
    assert parsed.to_rubric().model_dump(exclude={"status"}) == RUBRIC.model_dump(
        exclude={"status"}
    )
    judge = parsed.judge
    assert judge is not None
    assert (judge.model, judge.api_base, judge.prompt) == (JUDGE.model, "", JUDGE.prompt)
    assert judge.params == {"temperature": 0} and judge.few_shot == [TRAIN[0]]
    assert judge.version == JUDGE.version

    cal = parsed.calibration
    assert cal is not None
    assert cal.n == figures["n"] == len(TEST)
    assert cal.human_raters == figures["human_raters"] == ["alice", "bob"]
    assert cal.human_kappa == figures["human_kappa"] == 1.0
    assert cal.human_kappa_ci == figures["human_kappa_ci"]
    assert cal.judge_kappa == figures["judge_kappa"]
    assert cal.judge_kappa_ci == figures["judge_kappa_ci"]
    assert cal.judge_kappa is not None and 0.5 < cal.judge_kappa < 1.0
    assert cal.tpr == figures["tpr"] == round((len(TEST_PASS) - 1) / len(TEST_PASS), 4)
    assert cal.tnr == figures["tnr"] == 1.0
    assert cal.split_seed == figures["split_seed"] == SEED
    assert cal.cases_sha256 is not None and HEX64.match(cal.cases_sha256)
    assert cal.labels_sha256 is not None and HEX64.match(cal.labels_sha256)
    assert cal.cases_sha256 != cal.labels_sha256
    assert cal.approved_by == "alice"
    assert cal.approved_at is not None and before <= cal.approved_at <= after

    assert parsed.thresholds is not None
    assert (parsed.thresholds.human_kappa_lower, parsed.thresholds.judge_kappa) == (0.6, 0.5)
    assert (parsed.thresholds.tpr, parsed.thresholds.tnr) == (None, None)
    text = out.read_text(encoding="utf-8")
    assert "[calibration]" in text and "[thresholds]" in text


def test_labels_hash_follows_gold_labels_and_cases_hash_does_not(
    cli: Cli, approved: Path, db: Path, tmp_path: Path
) -> None:
    first = rubric_toml.load(approved).calibration
    again = approve(cli, db, tmp_path / "again.toml").calibration
    assert first is not None and again is not None
    assert (again.cases_sha256, again.labels_sha256) == (first.cases_sha256, first.labels_sha256)

    changed = TEST[-1]
    with Store.open(db) as store:  # both raters change their mind: the gold label flips
        for rater in ("alice", "bob"):
            store.add_label(changed, RUBRIC, rater, flip(GOLD[changed]))
    relabelled = approve(cli, db, tmp_path / "relabelled.toml").calibration
    assert relabelled is not None
    assert relabelled.cases_sha256 == first.cases_sha256
    assert relabelled.labels_sha256 != first.labels_sha256

    with Store.open(db) as store:  # alice alone flips back: no majority, the case drops out
        store.add_label(changed, RUBRIC, "alice", GOLD[changed])
    fewer = approve(cli, db, tmp_path / "fewer.toml").calibration
    assert fewer is not None and fewer.n == len(TEST) - 1
    assert fewer.cases_sha256 != first.cases_sha256


def test_approve_writes_rubrics_name_toml_under_the_working_directory(
    cli: Cli, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, agreeing())
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    result = cli("judge", "approve", "--rubric", "tone", "--db", db, "--by", "carol")
    assert result.code == 0, result.err
    written = repo / "rubrics" / "tone.toml"
    assert result.out.startswith(str(Path("rubrics") / "tone.toml"))
    calibration = rubric_toml.load(written).calibration
    assert calibration is not None and calibration.approved_by == "carol"


def test_approve_without_test_split_verdicts_is_a_one_line_error(
    cli: Cli, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, {c: GOLD[c] for c in DEV})  # the dev split only
    monkeypatch.chdir(tmp_path)
    result = cli("judge", "approve", "--rubric", "tone", "--db", db, "--by", "alice")
    err = one_line_error(result)
    assert "no verdicts on the test split" in err and "run it first" in err
    assert not (tmp_path / "rubrics").exists()


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_approve_out_the_project_file_is_refused_before_approving(
    cli: Cli, db: Path, force: list[str]
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, agreeing())
    before = db.read_bytes()
    result = cli("judge", "approve", "--rubric", "tone", "--db", db, "--out", db, "--by", "alice", *force)  # fmt: skip
    err = one_line_error(result)
    assert f"{db} is a DuckDB database" in err and "never writes over one" in err
    assert db.read_bytes() == before  # not even marked approved, nor a look at test counted
    with Store.open(db) as store:
        assert len(store.current_labels("tone", "alice")) == len(GOLD)
        assert store.get_rubric("tone").status == "draft"
        assert count_test_views(store, "tone") == 0


def test_approve_replaces_an_earlier_approval_only_with_force(
    cli: Cli, approved: Path, db: Path
) -> None:
    earlier = approved.read_text(encoding="utf-8")
    args = ["judge", "approve", "--rubric", "tone", "--db", db, "--out", approved, "--by", "bob"]
    err = one_line_error(cli(*args))
    assert err == f"evaltui: {approved} exists; give --force to replace it\n"
    assert approved.read_text(encoding="utf-8") == earlier
    assert cli(*args, "--force").code == 0
    calibration = rubric_toml.load(approved).calibration
    assert calibration is not None and calibration.approved_by == "bob"


def test_approve_out_a_folder_or_an_empty_approver_is_one_sentence(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, agreeing())
    args = ["judge", "approve", "--rubric", "tone", "--db", db]
    err = one_line_error(cli(*args, "--out", tmp_path, "--by", "alice"))
    assert err == f"evaltui: {tmp_path} is a folder; give the name of a file to write\n"
    err = one_line_error(cli(*args, "--out", tmp_path / "x.toml", "--by", ""))
    assert err == "evaltui: --by must name who approves; it is empty\n"


# 2. round trip ----------------------------------------------------------------


def test_rubric_import_of_an_approved_file_gives_the_same_rubric_and_judge(
    cli: Cli, approved: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.duckdb"
    result = cli("rubric", "import", approved, "--db", fresh)
    assert result.code == 0, result.err
    with Store.open(fresh) as store:
        rubric = store.get_rubric("tone")
        judges = store.judges("tone")
    keep = {"created_at", "status"}
    assert rubric.model_dump(exclude=keep) == RUBRIC.model_dump(exclude=keep)
    assert rubric.status.value == "approved"
    assert [j.version for j in judges] == [JUDGE.version]
    assert judges[0].model_dump(exclude={"name"}) == JUDGE.model_dump(exclude={"name"})

    assert cli("rubric", "import", approved, "--db", fresh).out.endswith("unchanged\n")

    exported = tmp_path / "exported.toml"
    assert cli("rubric", "export", "tone", exported, "--db", fresh).code == 0
    again = tmp_path / "again.duckdb"
    assert cli("rubric", "import", exported, "--db", again).code == 0
    re_exported = tmp_path / "re-exported.toml"
    assert cli("rubric", "export", "tone", re_exported, "--db", again).code == 0
    assert re_exported.read_text() == exported.read_text()
    first, second = rubric_toml.load(exported), rubric_toml.load(re_exported)
    assert first == second
    assert first.rubric == rubric_toml.load(approved).rubric
    assert first.judge == rubric_toml.load(approved).judge


def test_a_hand_edited_prompt_is_refused_naming_judge_version(
    cli: Cli, approved: Path, tmp_path: Path
) -> None:
    text = approved.read_text(encoding="utf-8")
    assert "You are grading one reply" in text
    approved.write_text(text.replace("You are grading one reply", "You grade one reply"))
    fresh = tmp_path / "fresh.duckdb"
    err = one_line_error(cli("rubric", "import", approved, "--db", fresh))
    assert "judge.version" in err and str(approved) in err
    err = one_line_error(cli("gate", approved, "--db", fresh))
    assert "judge.version" in err


@pytest.mark.parametrize(
    ("section", "key"),
    [("[judge]", "judge.temprature"), ("[calibration]", "calibration.temprature"),
     ("[thresholds]", "thresholds.temprature"), ("[rubric]", "rubric.temprature")],
)  # fmt: skip
def test_an_unknown_key_is_refused_naming_it(
    cli: Cli, approved: Path, tmp_path: Path, section: str, key: str
) -> None:
    text = approved.read_text(encoding="utf-8")
    assert text.count(f"{section}\n") == 1
    approved.write_text(text.replace(f"{section}\n", f"{section}\ntemprature = 0.1\n"))
    err = one_line_error(cli("rubric", "import", approved, "--db", tmp_path / "fresh.duckdb"))
    assert f"unknown key '{key}'" in err


# 3. gate -----------------------------------------------------------------------


def gate(cli: Cli, file: Path, db: Path, *extra: str) -> Result:
    result = cli("gate", file, "--db", db, *extra)
    assert result.code in (0, 1), result
    assert "Traceback" not in result.err
    return result


def test_gate_passes_when_judge_and_humans_agree(cli: Cli, approved: Path, db: Path) -> None:
    result = gate(cli, approved, db)
    assert result.code == 0, result.out
    lines = result.out.splitlines()
    assert lines[0].startswith("ok   human κ lower 95% bound 1.000")
    assert lines[1].startswith("ok   judge κ") and f"on {len(TEST)} cases" in lines[1]
    assert lines[-1] == f"gate: tone passes ({len(TEST)} test cases)"


def test_a_gate_reading_the_test_split_is_not_a_look_at_it(
    cli: Cli, approved: Path, db: Path
) -> None:
    with Store.open(db) as store:
        looks = count_test_views(store, "tone")  # approve's
    assert looks == 1
    for _ in range(3):  # CI on three pushes
        assert gate(cli, approved, db).code == 0
    with Store.open(db) as store:
        assert count_test_views(store, "tone") == looks
        reads = store.cursor().execute(
            "SELECT count(*) FROM test_views WHERE rubric = 'tone' AND purpose = 'gate'"
        )
        assert reads.fetchone() == (3,)  # each read is still on record
    report = cli("judge", "report", "--rubric", "tone", "--db", db, "--split", "test")
    assert f"test set viewed {looks + 1} time(s)" in report.out


def test_gate_fails_when_a_rerun_judge_disagrees(cli: Cli, approved: Path, db: Path) -> None:
    give_verdicts(db, JUDGE, {c: flip(GOLD[c]) for c in TEST[: len(TEST) // 2]}, later=5)
    result = gate(cli, approved, db)
    assert result.code == 1
    assert "ok   human κ" in result.out
    assert re.search(r"^FAIL judge κ -?\d\.\d{3} on \d+ cases \(needs ≥ 0\.5\)$", result.out, re.M)
    assert result.out.splitlines()[-1] == "gate: tone fails 1 of 2 check(s)"


def test_gate_fails_when_the_humans_lower_bound_is_below_threshold(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    make_project(db, bob_flips=list(GOLD)[:5])
    give_verdicts(db, JUDGE, agreeing())
    out = tmp_path / "tone.toml"
    cal = approve(cli, db, out).calibration
    assert cal is not None and cal.human_kappa is not None and cal.human_kappa_ci is not None
    assert cal.human_kappa >= 0.6 > cal.human_kappa_ci[0]  # the point estimate alone would pass
    result = gate(cli, out, db)
    assert result.code == 1
    assert f"FAIL human κ lower 95% bound {cal.human_kappa_ci[0]:.3f} (needs ≥ 0.6)" in result.out
    assert "ok   judge κ" in result.out
    assert "gate: tone fails 1 of 2 check(s)" in result.out


def test_gate_fails_with_a_single_human_rater(cli: Cli, db: Path, tmp_path: Path) -> None:
    make_project(db, raters=["alice"])
    give_verdicts(db, JUDGE, agreeing())
    out = tmp_path / "tone.toml"
    cal = approve(cli, db, out).calibration
    assert cal is not None and cal.human_raters == ["alice"] and cal.human_kappa is None
    result = gate(cli, out, db)
    assert result.code == 1
    assert (
        "FAIL human κ not measured: the gate needs labels from two raters (raters: alice)"
        in result.out
    )
    assert "ok   judge κ 1.000" in result.out


@pytest.mark.parametrize(("wanted", "code"), [(0.95, 1), (0.8, 0)])
def test_gate_holds_a_tpr_threshold_set_in_the_file(
    cli: Cli, approved: Path, db: Path, wanted: float, code: int
) -> None:
    calibration = rubric_toml.load(approved).calibration
    tpr = calibration.tpr if calibration else None
    assert tpr is not None and 0.8 < tpr < 0.95
    approved.write_text(approved.read_text() + f"tpr = {wanted}\n")  # [thresholds] is last
    thresholds = rubric_toml.load(approved).thresholds
    assert thresholds is not None and thresholds.tpr == wanted
    result = gate(cli, approved, db)
    assert result.code == code
    mark = "FAIL" if code else "ok  "
    assert f"{mark} TPR {tpr:.3f} (needs ≥ {wanted})" in result.out
    assert "TNR" not in result.out


def test_gate_without_a_judge_section_is_an_error(cli: Cli, approved: Path, db: Path) -> None:
    text = approved.read_text()
    start, end = text.index("[judge]"), text.index("[calibration]")
    approved.write_text(text[:start] + text[end:])
    err = one_line_error(cli("gate", approved, "--db", db))
    assert "no [judge] section" in err


# 3b and 4. real runs against the loopback server; the API key goes nowhere ------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LoopbackServer() as running:
        yield running


def assert_no_key(*texts: str, files: Iterable[Path] = ()) -> None:
    for text in texts:
        assert KEY not in text
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


def project_files(folder: Path) -> list[Path]:
    found = [p for p in folder.rglob("*") if p.is_file() and ".duckdb" in p.name]
    assert found
    return found


def test_gate_run_asks_for_missing_verdicts_once_and_the_key_goes_nowhere(
    cli: Cli, server: LoopbackServer, tmp_path: Path
) -> None:
    source = tmp_path / "source" / "evals.duckdb"
    source.parent.mkdir()
    make_project(source)
    printed: list[str] = []

    def run(*args: object) -> Result:
        result = cli(*args)
        printed.extend([result.out, result.err])
        return result

    set_ = run("judge", "set", "--rubric", "tone", "--db", source, "--model", "openai/x",
               "--api-base", server.api_base, "--param", "temperature=0", "--few-shot", TRAIN[0])  # fmt: skip
    assert set_.code == 0, set_.err
    ran = run("judge", "run", "--rubric", "tone", "--db", source)
    assert ran.code == 0, ran.err
    assert server.calls == len(GOLD) - 1  # the few-shot case is not asked
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)
    file = tmp_path / "rubrics" / "tone.toml"
    approved = run("judge", "approve", "--rubric", "tone", "--db", source, "--out", file, "--by", "alice")  # fmt: skip
    assert approved.code == 0, approved.err
    parsed = rubric_toml.load(file)
    assert parsed.judge is not None and parsed.judge.api_base == server.api_base
    assert parsed.calibration is not None and parsed.calibration.judge_kappa == 1.0

    ci = tmp_path / "ci" / "evals.duckdb"  # CI's project: same cases and labels, no judge yet
    ci.parent.mkdir()
    make_project(ci)
    never = run("gate", file, "--db", ci)
    err = one_line_error(never)
    assert "has never run" in err and "--run" in err
    assert server.calls == len(GOLD) - 1

    # Only the file names the loopback endpoint in CI's project: the key is not sent to it.
    refused = one_line_error(run("gate", file, "--db", ci, "--run"))
    assert f"--api-base {server.api_base}" in refused
    assert server.calls == len(GOLD) - 1
    allow = ("--api-base", server.api_base)
    first = run("gate", file, "--db", ci, "--run", *allow)
    assert first.code == 0, (first.out, first.err)
    assert server.calls == 2 * (len(GOLD) - 1)
    assert first.out.splitlines()[-1] == f"gate: tone passes ({len(TEST)} test cases)"
    second = run("gate", file, "--db", ci, "--run", *allow)
    assert (second.code, second.out) == (0, first.out)
    assert server.calls == 2 * (len(GOLD) - 1)  # the project file is the cache
    with Store.open(ci) as store:
        assert len(verdicts(store, str(parsed.judge.version))) == len(GOLD) - 1

    # a project that holds the judge (imported with the rubric) but never ran it
    imported = tmp_path / "imported" / "evals.duckdb"
    imported.parent.mkdir()
    make_project(imported)
    assert run("rubric", "import", file, "--db", imported, *allow).code == 0
    unrun = run("gate", file, "--db", imported)
    assert unrun.code == 1
    assert "FAIL no verdicts on the labelled test cases: nothing to gate on" in unrun.out

    assert_no_key(*printed, file.read_text(), files=project_files(tmp_path))


def echo_key(request: Request, seen: int) -> Reply:
    """A careless proxy that copies the request's Authorization header into the answer."""
    reply = marked_verdict(request, seen)
    answer = json.loads(reply.content or "{}")
    answer["critique"] += f" (sent with {request.headers.get('authorization')})"
    return Reply(json.dumps(answer))


def echo_key_error(request: Request, seen: int) -> Reply:
    """A server refusing the request and quoting the key back in its error."""
    message = f"bad credentials: {request.headers.get('authorization')}"
    return Reply(status=400, body=json.dumps({"error": {"message": message}}))


def test_a_key_echoed_back_by_the_server_is_never_stored_or_shown(
    cli: Cli, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    make_project(db)
    printed: list[str] = []
    with LoopbackServer(echo_key_error) as refusing:
        cli("judge", "set", "--rubric", "tone", "--db", db, "--judge", "strict", "--model", "openai/x", "--api-base", refusing.api_base)  # fmt: skip
        refused = cli("judge", "run", "--rubric", "tone", "--db", db, "--judge", "strict")
        printed += [refused.out, refused.err]
        assert refused.code == 1 and refusing.calls >= 1
        assert "bad credentials: Bearer [redacted]" in refused.err
    with LoopbackServer(echo_key) as echoing:
        cli("judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x", "--api-base", echoing.api_base)  # fmt: skip
        out = tmp_path / "tone.toml"
        results = [
            cli("judge", "run", "--rubric", "tone", "--db", db, "--judge", "default"),
            cli("judge", "report", "--rubric", "tone", "--db", db, "--judge", "default", "--json"),
            cli("judge", "approve", "--rubric", "tone", "--db", db, "--judge", "default", "--out", out, "--by", "alice"),
            cli("gate", out, "--db", db),
        ]  # fmt: skip
        assert echoing.calls == len(GOLD)
    for result in results:
        assert result.code == 0, result.err
        printed += [result.out, result.err]
    assert json.loads(results[1].out)["judge_kappa"] == 1.0
    with Store.open(db) as store:
        stored = verdicts(store, store.judges("tone")[-1].version)
    assert len(stored) == len(GOLD) and all("[redacted]" in v.critique for v in stored)
    assert_no_key(
        *printed, out.read_text(), *(v.raw for v in stored), files=project_files(tmp_path)
    )


# 5. the judge CLI's errors: one line, no traceback ---------------------------------


@pytest.mark.parametrize(
    "param",
    ["api_key=sk-x", "api-key=sk-x", "key=sk-x", "OPENAI_API_KEY=sk-x", "access_token=x"],
)
def test_judge_set_refuses_a_key_as_a_param(cli: Cli, db: Path, param: str) -> None:
    make_project(db)
    err = one_line_error(cli("judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x", "--param", param))  # fmt: skip
    assert "environment only" in err and "OPENAI_API_KEY" in err
    with Store.open(db) as store:
        assert store.judges("tone") == []


def test_judge_set_refuses_an_unknown_prompt_field(cli: Cli, db: Path, tmp_path: Path) -> None:
    make_project(db)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Grade {output}.\nAnd mind the {reply}.\n")
    err = one_line_error(cli("judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x", "--prompt-file", prompt))  # fmt: skip
    assert "unknown field {reply}" in err
    with Store.open(db) as store:
        assert store.judges("tone") == []
    prompt.write_text("Grade {output}.\n")
    assert cli("judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x", "--prompt-file", prompt).code == 0  # fmt: skip


def test_a_prompt_file_with_json_braces_or_without_the_reply_says_what_to_write(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    prompt = tmp_path / "prompt.txt"
    set_judge = ["judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x",
                 "--prompt-file", prompt]  # fmt: skip
    prompt.write_text('Grade {output}.\nAnswer as {"verdict": "pass"}.\n')
    err = one_line_error(cli(*set_judge))
    assert 'unknown field {"verdict": "pass"}' in err
    assert "write {{ and }} for braces the judge should see, as in JSON" in err
    prompt.write_text("Is this right? {question}\n{input}\n")  # the judge never sees the reply
    err = one_line_error(cli(*set_judge))
    assert "it never shows the judge the reply: a binary rubric's prompt needs {output}" in err
    with Store.open(db) as store:
        assert store.judges("tone") == []
    prompt.write_text('Grade {output}.\nAnswer as {{"verdict": "pass"}}.\n')
    assert cli(*set_judge).code == 0


def test_judge_report_without_a_judge_says_how_to_add_one(cli: Cli, db: Path) -> None:
    make_project(db)
    err = one_line_error(cli("judge", "report", "--rubric", "tone", "--db", db))
    assert "rubric 'tone' has no judge" in err
    assert "evaltui judge set --rubric tone --model MODEL" in err


def test_two_judges_need_judge_named(cli: Cli, db: Path, tmp_path: Path) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, agreeing())
    give_verdicts(db, JUDGE.model_copy(update={"name": "strict", "model": "openai/y"}), agreeing())
    for command in (["report"], ["run"], ["approve", "--by", "alice"]):
        err = one_line_error(cli("judge", *command, "--rubric", "tone", "--db", db))
        assert "rubric 'tone' has judges default, strict: choose one with --judge" in err
    named = cli("judge", "report", "--rubric", "tone", "--db", db, "--judge", "strict", "--json")
    assert named.code == 0, named.err
    assert json.loads(named.out)["judge"]["model"] == "openai/y"


def test_judge_import_with_an_unknown_case_names_the_line_and_imports_nothing(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    rows = [{"case_id": c, "verdict": GOLD[c]} for c in TEST[:3]]
    rows.insert(2, {"case_id": "case-99", "verdict": "pass"})
    file = write_jsonl(tmp_path / "other-tool.jsonl", rows)
    err = one_line_error(cli("judge", "import", file, "--rubric", "tone", "--db", db, "--judge", "theirs", "--model", "gpt-x"))  # fmt: skip
    assert f"{file}: line 3" in err and "'case-99'" in err and "nothing was imported" in err
    with Store.open(db) as store:
        assert store.judges("tone") == []
        assert store.cursor().execute("SELECT count(*) FROM verdicts").fetchone() == (0,)
    write_jsonl(file, [r for r in rows if r["case_id"] != "case-99"])
    ok = cli("judge", "import", file, "--rubric", "tone", "--db", db, "--judge", "theirs", "--model", "gpt-x")  # fmt: skip
    assert ok.code == 0 and "3 new verdict(s)" in ok.out


@pytest.mark.parametrize("where", ["dev", "test"])
def test_judge_run_refuses_few_shot_cases_outside_train(cli: Cli, db: Path, where: str) -> None:
    make_project(db)
    outside = (DEV if where == "dev" else TEST)[0]
    # No server listens on this port: the refusal must come before any call.
    set_ = cli("judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1", "--few-shot", f"{TRAIN[0]},{outside}")  # fmt: skip
    assert set_.code == 0, set_.err
    err = one_line_error(cli("judge", "run", "--rubric", "tone", "--db", db))
    assert f"few-shot case {outside!r} is in the {where} split" in err
    assert f"(labelled train cases: {', '.join(TRAIN[:8])})" in err
    assert len(TRAIN) <= 8  # so the message lists every train case
    with Store.open(db) as store:
        assert store.cursor().execute("SELECT count(*) FROM verdicts").fetchone() == (0,)


def test_approve_marks_the_rubric_approved_in_the_project(
    cli: Cli, approved: Path, db: Path
) -> None:
    with Store.open(db) as store:
        assert store.get_rubric("tone").status == "approved"


def test_gate_notes_when_the_case_set_differs_from_the_approved_one(
    cli: Cli, approved: Path, db: Path
) -> None:
    text = approved.read_text()
    edited = approved.with_name("other-cases.toml")
    sha = rubric_toml.load(approved).calibration.cases_sha256  # type: ignore[union-attr]
    edited.write_text(text.replace(str(sha), "0" * 64))
    result = gate(cli, edited, db)
    assert result.code == 0
    assert "note the " in result.out and "cases_sha256 differs" in result.out
    assert "note" not in gate(cli, approved, db).out


# 6. history, compare and unlabelled runs through the CLI ---------------------

WORSE = JUDGE.model_copy(update={"name": "worse", "prompt": BINARY_TEMPLATE + "\nBe lenient."})


def two_versions(db: Path) -> None:
    """JUDGE right on every dev case; WORSE wrong on four dev cases."""
    make_project(db)
    give_verdicts(db, JUDGE, agreeing())
    give_verdicts(db, WORSE, agreeing(DEV[:4]))


def test_judge_history_lists_every_version_on_the_same_cases(cli: Cli, db: Path) -> None:
    two_versions(db)
    result = cli("judge", "history", "--rubric", "tone", "--db", db, "--json")
    assert result.code == 0, result.err
    history = json.loads(result.out)
    rows = {v["name"]: v for v in history["versions"]}
    assert history["common_cases"] == len([c for c in DEV if c not in JUDGE.few_shot])
    for name in ("default", "worse"):
        report = json.loads(
            cli("judge", "report", "--rubric", "tone", "--db", db, "--judge", name, "--json").out
        )
        assert rows[name]["judge_kappa"] == report["judge_kappa"]
        assert rows[name]["n"] == report["n"]
    assert rows["default"]["judge_kappa"] == 1.0 and rows["worse"]["judge_kappa"] < 1.0
    text = cli("judge", "history", "--rubric", "tone", "--db", db).out
    assert JUDGE.version[:19] in text and WORSE.version[:19] in text
    assert f"on the {history['common_cases']} dev case(s)" in text


def test_judge_compare_two_versions_by_hash_prefix(cli: Cli, db: Path) -> None:
    two_versions(db)
    before, after = JUDGE.version[7:19], WORSE.version[:19]
    result = cli("judge", "compare", "--rubric", "tone", "--db", db, before, after, "--json")
    assert result.code == 0, result.err
    compared = json.loads(result.out)
    assert compared["before"] == JUDGE.version and compared["after"] == WORSE.version
    assert compared["deltas"]["kappa"]["before"] == 1.0
    assert compared["deltas"]["kappa"]["delta"] < 0
    assert compared["mcnemar"] == {
        "before_only_right": 4,
        "after_only_right": 0,
        "p_value": 0.125,  # two-sided exact binomial: 2 × 0.5^4
    }
    text = cli("judge", "compare", "--rubric", "tone", "--db", db, before, after).out
    assert "McNemar: 0 case(s) only the new version got right, 4 only the old one" in text
    error = one_line_error(
        cli("judge", "compare", "--rubric", "tone", "--db", db, "sha256:ff", after)
    )
    assert "no judge version of 'tone' starts with 'sha256:ff'" in error


def test_judge_run_on_unlabelled_cases_gives_the_corrected_pass_rate(
    cli: Cli, server: LoopbackServer, db: Path
) -> None:
    make_project(db)
    extra = db.with_suffix(".more.jsonl")
    write_jsonl(extra, [{"id": f"new-{i}", "input": "Q", "output": f"R [expect:{'pass' if i % 4 else 'fail'}]"} for i in range(20)])  # fmt: skip
    assert cli("import", extra, "--db", db).code == 0
    setup = ("--rubric", "tone", "--db", db)
    assert (
        cli("judge", "set", *setup, "--model", "openai/x", "--api-base", server.api_base).code == 0
    )
    assert cli("judge", "run", *setup).code == 0
    labelled_calls = server.calls
    result = cli("judge", "run", *setup, "--cases", "unlabelled")
    assert result.code == 0, result.err
    assert server.calls - labelled_calls == 20
    report = json.loads(cli("judge", "report", *setup, "--json").out)
    corrected = report["corrected_pass_rate"]
    assert corrected["n_unlabelled"] == 20 and corrected["observed"] == 0.75
    # The loopback judge is perfect on the labelled cases, so nothing needs correcting.
    assert corrected["corrected"] == 0.75
    text = cli("judge", "report", *setup).out
    assert "corrected pass rate on 20 unlabelled case(s): 75.0%" in text


def test_approve_over_a_served_project_names_the_tokens_rater_and_the_gate_reads_it(
    cli: Cli, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EVALTUI_TOKEN", raising=False)
    make_project(db)
    give_verdicts(db, JUDGE, agreeing([TEST_PASS[0]]))
    config = tmp_path / "config.toml"
    config.write_text('rater = "carol"\n', encoding="utf-8")  # someone else on this machine
    served_out, by_out = tmp_path / "served.toml", tmp_path / "by.toml"
    with Store.open(db) as store:  # verdicts of a judge the project does not hold (gate's cache)
        add_verdicts(store, [Verdict(judge_version=WORSE.version, case_id=c, value=v)
                             for c, v in agreeing().items()])  # fmt: skip
    with Served(db, raters=["dana"]) as server:
        remote = ["--config", config, "--db", server.address, "--token", server.tokens["dana"]]
        result = cli(*remote, "judge", "approve", "--rubric", "tone", "--out", served_out)
        assert result.code == 0, result.err
        result = cli(
            *remote, "judge", "approve", "--rubric", "tone", "--out", by_out, "--by", "erin"
        )
        assert result.code == 0, result.err
        # The gate reads which judge the project approved through the server too.
        approved = rubric_toml.load(served_out)
        swapped = tmp_path / "swapped.toml"
        rubric_toml.dump(
            approved.model_copy(update={"judge": RubricFile.from_models(RUBRIC, WORSE).judge}),
            swapped,
        )
        same, other = cli(*remote, "gate", served_out), cli(*remote, "gate", swapped)
    assert same.code == 0 and "warn" not in same.out, (same.out, same.err)
    assert (
        f"warn the [judge] {WORSE.version[:19]} is not the judge approved in this project "
        f"({JUDGE.version[:19]})"
    ) in other.out.splitlines()
    served = rubric_toml.load(served_out).calibration
    assert served is not None and served.approved_by == "dana"  # the token's rater
    by = rubric_toml.load(by_out).calibration
    assert by is not None and by.approved_by == "erin"  # --by still says who, when given

    # On the file there is no token: the config's rater approves. The figures are the same.
    file_out = tmp_path / "file.toml"
    result = cli("--config", config, "judge", "approve", "--rubric", "tone", "--db", db,
                 "--out", file_out)  # fmt: skip
    assert result.code == 0, result.err
    on_file = rubric_toml.load(file_out).calibration
    assert on_file is not None and on_file.approved_by == "carol"
    same = {"approved_by", "approved_at"}
    assert served.model_dump(exclude=same) == on_file.model_dump(exclude=same)


def test_a_judge_that_answers_the_same_every_time_is_called_what_it_is(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, {c: "fail" for c in agreeing()})  # fail, whatever the case
    report = cli("judge", "report", "--rubric", "tone", "--db", db, "--split", "test", "--json")
    figures = json.loads(report.out)
    assert figures["judge_kappa"] == 0.0 and figures["judge_constant"] == "fail"
    said = f"the judge answered fail on all {len(TEST)} cases"
    assert figures["reading"].startswith(said + ": it tells no case from another")
    assert "slight" not in figures["reading"]
    text = cli("judge", "report", "--rubric", "tone", "--db", db, "--split", "test").out
    assert said in text and "slight" not in text
    out = tmp_path / "constant.toml"
    approve(cli, db, out)
    lines = gate(cli, out, db).out.splitlines()
    assert f"FAIL judge κ 0.000 on {len(TEST)} cases (needs ≥ 0.5): {said}" in lines

"""A rubric TOML cannot redirect the API key, change the project's judges or loosen the gate unseen.

A TOML file usually comes from a repository, where a pull request can edit
it. Its `[judge]` endpoint is sent the key only once the user chose that
endpoint; its params never carry endpoints, headers or credentials; `gate`
never stores its judge; thresholds below their floors and a judge that is
not the approved one are named in the gate's output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evaltui import rubric_toml
from evaltui.judge.approval import THRESHOLD_FLOORS
from evaltui.judge.trust import forbidden_param
from evaltui.models import Judge, RubricStatus
from evaltui.rubric_toml import RubricFile, ThresholdsSection
from evaltui.store import Store
from evaltui.store.verdicts import answered, approved_judge_version
from tests.loopback import LoopbackServer
from tests.test_judge_approve_gate import (  # noqa: F401  (_templates: the project copies)
    DEV,
    GOLD,
    JUDGE,
    KEY,
    RUBRIC,
    TEST,
    WORSE,
    Cli,
    _templates,
    agreeing,
    approve,
    give_verdicts,
    make_project,
    one_line_error,
)

CHANCE = JUDGE.model_copy(
    update={"name": "chance", "prompt": "Grade: {question}\n{output}\n[expect:fail]"}
)
"""A judge whose prompt ends in its own mark, so the loopback judge answers fail every time (κ 0)."""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    """The loopback server, with a fake key in the environment and no endpoint chosen there."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("EVALTUI_API_BASE", raising=False)
    with LoopbackServer() as running:
        yield running


def toml_for(judge: Judge, path: Path) -> Path:
    """A rubric file holding this judge, as a pull request could write it."""
    rubric_toml.dump(
        RubricFile.from_models(RUBRIC, judge).model_copy(
            update={"thresholds": ThresholdsSection()}
        ),
        path,
    )
    return path


def judge_versions(db: Path) -> list[str]:
    with Store.open(db) as store:
        return [j.version for j in store.judges("tone")]


# 6. the endpoint a key goes to --------------------------------------------------------


def test_gate_run_sends_nothing_to_an_endpoint_only_the_file_names(
    cli: Cli, server: LoopbackServer, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    elsewhere = JUDGE.model_copy(update={"api_base": server.api_base})
    file = toml_for(elsewhere, tmp_path / "tone.toml")

    err = one_line_error(cli("gate", file, "--db", db, "--run"))
    assert server.calls == 0
    assert f"endpoint {server.api_base!r} is named only by this file" in err
    assert f"to allow it, pass --api-base {server.api_base}" in err
    assert judge_versions(db) == []
    with Store.open(db) as store:
        assert answered(store, elsewhere.version) == set()

    ran = cli("gate", file, "--db", db, "--run", "--api-base", server.api_base + "/")
    assert ran.code == 0, (ran.out, ran.err)
    assert server.calls == len(GOLD) - 1
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)
    assert ran.out.splitlines()[-1] == f"gate: tone passes ({len(TEST)} test cases)"
    assert KEY not in ran.out + ran.err + file.read_text()


def test_params_cannot_point_the_judge_elsewhere(
    cli: Cli, server: LoopbackServer, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    file = tmp_path / "tone.toml"
    file.write_text(
        rubric_toml.dumps(RubricFile.from_models(RUBRIC, JUDGE)).replace(
            "temperature = 0", f'temperature = 0\napi_base = "{server.api_base}"'
        ),
        encoding="utf-8",
    )
    assert f'api_base = "{server.api_base}"' in file.read_text()
    err = one_line_error(cli("gate", file, "--db", db, "--run", "--api-base", server.api_base))
    assert "judge.params.api_base: " in err
    assert server.calls == 0 and judge_versions(db) == []


def test_a_model_string_holding_a_url_is_an_endpoint_too(
    cli: Cli, server: LoopbackServer, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    url = server.api_base
    file = toml_for(JUDGE.model_copy(update={"model": f"huggingface/{url}"}), tmp_path / "t.toml")
    for command in (["gate", file, "--run"], ["rubric", "import", file]):
        err = one_line_error(cli(*command, "--db", db))
        assert f"endpoint {url!r} is named only by this file" in err
    assert server.calls == 0 and judge_versions(db) == []


@pytest.mark.parametrize("way", ["environment", "provider-environment", "config", "project"])
def test_an_endpoint_the_user_chose_is_sent_the_key(
    cli: Cli,
    server: LoopbackServer,
    db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    way: str,
) -> None:
    make_project(db)
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    if way == "environment":
        monkeypatch.setenv("EVALTUI_API_BASE", f"http://127.0.0.1:9/v1, {server.api_base}")
    elif way == "provider-environment":
        monkeypatch.setenv("OPENAI_API_BASE", server.api_base)
    elif way == "config":
        config.write_text(f'api_bases = ["{server.api_base}"]\n', encoding="utf-8")
    else:  # the user set a judge of their own on that endpoint
        set_ = cli("judge", "set", "--rubric", "tone", "--db", db, "--judge", "mine",
                   "--model", "openai/x", "--api-base", server.api_base)  # fmt: skip
        assert set_.code == 0, set_.err
    file = toml_for(JUDGE.model_copy(update={"api_base": server.api_base}), tmp_path / "t.toml")
    ran = cli("--config", config, "gate", file, "--db", db, "--run")
    assert ran.code == 0, (ran.out, ran.err)
    assert server.calls == len(GOLD) - 1


def test_rubric_import_stores_an_endpoint_only_once_the_user_allows_it(
    cli: Cli, server: LoopbackServer, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    elsewhere = JUDGE.model_copy(update={"api_base": server.api_base})
    file = toml_for(elsewhere, tmp_path / "tone.toml")
    fresh = tmp_path / "fresh.duckdb"
    err = one_line_error(cli("rubric", "import", file, "--db", fresh))
    assert f"pass --api-base {server.api_base}" in err
    with Store.open(fresh) as store:
        assert store.rubrics() == []

    imported = cli("rubric", "import", file, "--db", db, "--api-base", server.api_base)
    assert imported.code == 0, imported.err
    assert judge_versions(db) == [elsewhere.version]
    # Stored by the user's import, the endpoint is now the project's: the gate may use it.
    ran = cli("gate", file, "--db", db, "--run")
    assert ran.code == 0, (ran.out, ran.err)
    assert server.calls == len(GOLD) - 1


# 6. params: no endpoint, header or credential -----------------------------------------

BAD_PARAMS = [
    ('{ api_base = "http://127.0.0.1:9/v1" }', "api_base"),
    ('{ base_url = "http://127.0.0.1:9/v1" }', "base_url"),
    ('{ api_key = "sk-x" }', "api_key"),
    ('{ API_KEY = "sk-x" }', "API_KEY"),
    ('{ extra_headers = { Authorization = "Bearer x" } }', "extra_headers"),
    ('{ headers = { x = "y" } }', "headers"),
    ('{ default_headers = { x = "y" } }', "default_headers"),
    ('{ temperature = 0, Authorization = "Bearer x" }', "Authorization"),
    ('{ extra_body = { access_token = "x" } }', "extra_body.access_token"),
    ('{ model = "huggingface/http://127.0.0.1:9/v1" }', "model"),
    ('{ aws_bedrock_runtime_endpoint = "http://127.0.0.1:9" }', "aws_bedrock_runtime_endpoint"),
]


@pytest.mark.parametrize(("params", "key"), BAD_PARAMS)
def test_a_toml_whose_params_carry_an_endpoint_or_credential_is_refused(
    cli: Cli, db: Path, tmp_path: Path, params: str, key: str
) -> None:
    make_project(db)
    file = tmp_path / "tone.toml"
    file.write_text(
        '[rubric]\nname = "tone"\nkind = "binary"\nquestion = "Polite?"\n\n'
        f'[judge]\nmodel = "openai/x"\nprompt = "Grade {{output}}"\nparams = {params}\n',
        encoding="utf-8",
    )
    for command in (["rubric", "import", file], ["gate", file, "--run"]):
        err = one_line_error(cli(*command, "--db", db))
        assert f"{file}: judge.params.{key}: " in err
        assert "sk-x" not in err and "Bearer" not in err
    assert judge_versions(db) == []


@pytest.mark.parametrize(
    "param",
    ["api_base=http://127.0.0.1:9/v1", "base_url=http://x", "model=openai/y",
     'extra_headers={"Authorization": "Bearer x"}', "Authorization=Bearer x", "headers={}"],
)  # fmt: skip
def test_judge_set_refuses_endpoint_and_header_params(cli: Cli, db: Path, param: str) -> None:
    make_project(db)
    err = one_line_error(cli("judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x", "--param", param))  # fmt: skip
    assert f"--param {param.partition('=')[0]}: " in err
    assert judge_versions(db) == []


def test_token_counts_are_params_and_not_credentials(cli: Cli, db: Path) -> None:
    make_project(db)
    set_ = cli("judge", "set", "--rubric", "tone", "--db", db, "--model", "openai/x",
               "--param", "max_tokens=200", "--param", "max_completion_tokens=300")  # fmt: skip
    assert set_.code == 0, set_.err
    assert forbidden_param({"max_tokens": "sk-a-string"}) == ("max_tokens", "credential")


def test_a_stored_judge_with_a_key_in_its_params_is_neither_run_nor_exported(
    cli: Cli, server: LoopbackServer, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    old = JUDGE.model_copy(update={"api_base": server.api_base, "params": {"api_key": KEY}})
    with Store.open(db) as store:  # as a project written before params were checked holds it
        store.save_judge(old)
    out = tmp_path / "tone.toml"
    printed: list[str] = []
    ran = cli("judge", "run", "--rubric", "tone", "--db", db)  # refused before any call
    assert ran.code == 1 and ran.err.splitlines()[-1].startswith("evaltui: judge 'default': ")
    exported = one_line_error(cli("rubric", "export", "tone", out, "--db", db))
    for err in (ran.err, exported):
        assert "params.api_key: API keys, tokens and headers are read from the environment" in err
        printed.append(err)
    assert server.calls == 0 and not out.exists()
    assert all(KEY not in text for text in printed)


# 6. gate never changes the project's judges ----------------------------------------------


def test_gate_run_of_another_judge_leaves_the_users_judge_to_approve(
    cli: Cli, server: LoopbackServer, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    mine = ("--rubric", "tone", "--db", db)
    set_ = cli("judge", "set", *mine, "--model", "openai/x", "--api-base", server.api_base)
    assert set_.code == 0, set_.err
    ran = cli("judge", "run", *mine)
    assert ran.code == 0, ran.err
    ours = judge_versions(db)
    assert len(ours) == 1

    theirs = CHANCE.model_copy(update={"name": "default", "api_base": server.api_base})
    file = toml_for(theirs, tmp_path / "theirs.toml")
    gated = cli("gate", file, "--db", db, "--run")
    assert gated.code == 1, (gated.out, gated.err)
    assert "FAIL judge κ 0.000" in gated.out
    with Store.open(db) as store:
        assert answered(store, theirs.version)  # its verdicts are cached ...
        assert store.get_rubric("tone").status is RubricStatus.draft
    assert judge_versions(db) == ours  # ... but it is not one of the project's judges
    gated_again = cli("gate", file, "--db", db)  # the cache answers without --run
    assert gated_again.code == 1 and "FAIL judge κ 0.000" in gated_again.out

    out = tmp_path / "approved.toml"
    approved = approve(cli, db, out)
    assert approved.judge is not None and approved.judge.version == ours[0] != theirs.version
    assert approved.calibration is not None and approved.calibration.judge_kappa == 1.0
    assert approved.calibration.judge_version == ours[0]


# 17. thresholds and which judge ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("judge_kappa", -1.0), ("human_kappa_lower", 0.1), ("tpr", 0.0), ("tnr", 0.3)],
)
def test_a_threshold_below_its_floor_is_a_warning_and_still_holds(
    cli: Cli, db: Path, tmp_path: Path, name: str, value: float
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, {c: "pass" for c in agreeing()})  # says pass every time: κ 0
    out = tmp_path / "tone.toml"
    file = approve(cli, db, out)
    assert file.calibration is not None and file.calibration.judge_kappa == 0.0
    loose = ThresholdsSection(**{name: value})
    rubric_toml.dump(file.model_copy(update={"thresholds": loose}), out, force=True)
    result = cli("gate", out, "--db", db)
    floor = THRESHOLD_FLOORS[name]
    warnings = [line for line in result.out.splitlines() if line.startswith("warn")]
    assert warnings == [
        f"warn thresholds.{name} = {value} is below the floor {floor}; "
        "the gate holds the file's value"
    ]
    if name == "judge_kappa":  # the file's -1 lets the κ 0 judge through, and the gate says so
        assert result.code == 0 and "ok   judge κ 0.000" in result.out


def test_sane_thresholds_give_no_warning(cli: Cli, db: Path, tmp_path: Path) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, agreeing())
    out = tmp_path / "tone.toml"
    approve(cli, db, out)
    result = cli("gate", out, "--db", db)
    assert result.code == 0 and "warn" not in result.out and "note" not in result.out


def test_a_judge_that_is_not_the_approved_one_is_named(cli: Cli, db: Path, tmp_path: Path) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, agreeing())
    give_verdicts(db, WORSE, agreeing(DEV[:4]))
    out = tmp_path / "tone.toml"
    result = cli("judge", "approve", "--rubric", "tone", "--db", db, "--judge", "default", "--out", out)  # fmt: skip
    assert result.code == 0, result.err
    approved = rubric_toml.load(out)
    assert approved.calibration is not None
    assert approved.calibration.judge_version == JUDGE.version
    with Store.open(db) as store:
        assert approved_judge_version(store, "tone") == JUDGE.version

    worse = RubricFile.from_models(RUBRIC, WORSE).judge
    swapped = tmp_path / "swapped.toml"  # the [judge] replaced, the [calibration] kept
    rubric_toml.dump(approved.model_copy(update={"judge": worse}), swapped, force=True)
    lines = cli("gate", swapped, "--db", db).out.splitlines()
    short, approved_short = WORSE.version[:19], JUDGE.version[:19]
    assert (
        f"warn the [judge] {short} is not the judge the [calibration] was approved for "
        f"({approved_short})"
    ) in lines
    assert f"warn the [judge] {short} is not the judge approved in this project ({approved_short})" in lines  # fmt: skip

    # A file that also rewrites its [calibration] to match still differs from the project.
    calibration = approved.calibration.model_copy(update={"judge_version": WORSE.version})
    rubric_toml.dump(approved.model_copy(update={"judge": worse, "calibration": calibration}), swapped, force=True)  # fmt: skip
    lines = cli("gate", swapped, "--db", db).out.splitlines()
    assert [line for line in lines if line.startswith("warn")] == [
        f"warn the [judge] {short} is not the judge approved in this project ({approved_short})"
    ]

    # A [calibration] that does not say which judge it was read for is noted as such.
    unnamed = approved.calibration.model_copy(update={"judge_version": None})
    rubric_toml.dump(approved.model_copy(update={"calibration": unnamed}), swapped, force=True)
    result = cli("gate", swapped, "--db", db)
    assert result.code == 0 and "warn" not in result.out
    assert "note the [calibration] does not name the judge it was read for (approve again)" in result.out.splitlines()  # fmt: skip

    bare = toml_for(JUDGE, tmp_path / "bare.toml")  # `rubric export` writes no [calibration]
    lines = cli("gate", bare, "--db", db).out.splitlines()
    assert f"warn the [judge] {approved_short} has no [calibration]: nothing says it was approved" in lines  # fmt: skip


def test_a_refused_approval_is_not_the_projects_approved_judge(
    cli: Cli, db: Path, tmp_path: Path
) -> None:
    make_project(db)
    give_verdicts(db, JUDGE, {c: GOLD[c] for c in DEV})  # no test-split verdicts
    err = one_line_error(cli("judge", "approve", "--rubric", "tone", "--db", db, "--out", tmp_path / "x.toml"))  # fmt: skip
    assert "no verdicts on the test split" in err
    with Store.open(db) as store:
        assert approved_judge_version(store, "tone") is None

"""The config file and `evaltui label`'s errors, as a user meets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltui import config
from evaltui.errors import InvalidInput


def test_missing_default_config_gives_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    loaded = config.load()
    assert loaded.seed == 0 and loaded.keymap == {} and loaded.rater


def test_config_file_is_read_from_xdg_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "evaltui").mkdir()
    (tmp_path / "evaltui" / "config.toml").write_text(
        'rater = "alice"\nseed = 7\n[keymap]\n"label.pass" = "y"\n'
    )
    loaded = config.load()
    assert (loaded.rater, loaded.seed, loaded.keymap) == ("alice", 7, {"label.pass": "y"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'red'\n", "unknown setting 'colour'"),
        ("seed = 'x'\n", "seed:"),
        ("[keymap\n", "not a valid TOML config"),
        ('[keymap]\n"label.pass" = 1\n', "keymap.label.pass"),
    ],
)
def test_bad_config_names_the_setting(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as error:
        config.load(path)
    assert message in str(error.value)


def test_label_command_errors_are_one_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "evals.duckdb"
    result = cli("--db", db, "label", "--rubric", "nope")
    assert result.code == 1 and "no rubric 'nope'" in result.err and result.err.count("\n") == 1
    toml = tmp_path / "ok.toml"
    toml.write_text('[rubric]\nname = "ok"\nkind = "binary"\nquestion = "q"\n')
    assert cli("--db", db, "rubric", "import", toml).code == 0
    result = cli("--db", db, "label", "--rubric", "ok", "--session", "s1")
    assert result.code == 1 and "no session 's1'" in result.err
    result = cli("--config", tmp_path / "missing.toml", "--db", db, "label", "--rubric", "ok")
    assert result.code == 1 and "no such config file" in result.err


def test_readme_lists_every_labelling_and_judge_key() -> None:
    from evaltui.ui.screens.judge import JudgeScreen
    from evaltui.ui.screens.kinds import BinaryLabelScreen, PairwiseLabelScreen
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    for binding in [
        *BinaryLabelScreen.BINDINGS,
        *PairwiseLabelScreen.BINDINGS,
        *JudgeScreen.BINDINGS,
    ]:
        assert f"`{binding.id}`" in readme, binding.id  # type: ignore[union-attr]


def test_init_creates_a_project_once(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from evaltui.store import Store
    from evaltui.store.schema import SCHEMA_VERSION

    db = tmp_path / "new.duckdb"
    result = cli("init", db)
    assert result.code == 0 and f"created (schema {SCHEMA_VERSION})" in result.out
    assert "already a project" in cli("init", db).out
    with Store.open(db) as store:
        assert store.count_cases() == 0 and store.schema_version == SCHEMA_VERSION
    (tmp_path / "notes.duckdb").write_text("not a database\n" * 50)
    bad = cli("init", tmp_path / "notes.duckdb")
    assert bad.code == 1 and bad.err.count("\n") == 1

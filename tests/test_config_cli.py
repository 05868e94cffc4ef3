"""The config file and `evaltui label`'s errors, as a user meets them."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltui import config
from evaltui.errors import InvalidInput
from evaltui.store import Store


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


DEEP_ARRAY = '[rubric]\nname = "x"\nkind = "binary"\nquestion = "q"\nz = ' + "[" * 3000 + "]" * 3000
DEEP_TABLE = "a = " + "{b = " * 3000 + "1" + "}" * 3000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rubric", "import", "{dir}"], "{dir} is a folder, not a rubric TOML file"),
        (["gate", "{dir}"], "{dir} is a folder, not a rubric TOML file"),
        (["--config", "{dir}", "label", "--rubric", "ok"], "{dir} is a folder, not a config file"),
        (
            ["judge", "set", "--rubric", "ok", "--model", "m", "--prompt-file", "{dir}"],
            "{dir} is a folder, not a prompt template file",
        ),
        (["rubric", "import", "{deep_array}"], "nests arrays or tables too deep to read"),
        (["rubric", "import", "{deep_table}"], "nests arrays or tables too deep to read"),
        (["--config", "{deep_table}", "label", "--rubric", "ok"], "too deep to read"),
        (["rubric", "import", "{big}"], "rubric.version: Input should be less than 2147483648"),
        (["label", "--rubric", "ok", "--rater", ""], "--rater must name who is labelling"),
        (
            ["labels", "import", "{labels}", "--rubric", "ok", "--rater", ""],
            "--rater must name whose labels these are; it is empty",
        ),
        (["--config", "{empty_rater}", "label", "--rubric", "ok"], "rater: String should have"),
    ],
)
def test_what_once_ended_as_an_internal_error_is_one_sentence(
    cli, tmp_path: Path, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "evals.duckdb"
    rubric = tmp_path / "ok.toml"
    rubric.write_text('[rubric]\nname = "ok"\nkind = "binary"\nquestion = "q"\n')
    assert cli("--db", db, "rubric", "import", rubric).code == 0
    paths = {
        "dir": tmp_path / "folder.toml",
        "deep_array": tmp_path / "deep-array.toml",
        "deep_table": tmp_path / "deep-table.toml",
        "big": tmp_path / "big.toml",
        "labels": tmp_path / "labels.jsonl",
        "empty_rater": tmp_path / "config.toml",
    }
    paths["dir"].mkdir()
    paths["deep_array"].write_text(DEEP_ARRAY)
    paths["deep_table"].write_text(DEEP_TABLE)
    paths["big"].write_text(
        '[rubric]\nname = "big"\nkind = "binary"\nquestion = "q"\nversion = 2147483648\n'
    )
    paths["labels"].write_text('{"case_id": "c1", "label": "pass"}\n')
    paths["empty_rater"].write_text('rater = ""\n')
    names = {key: str(value) for key, value in paths.items()}
    result = cli("--db", db, *[arg.format(**names) for arg in args])
    assert result.code == 1, (result.out, result.err)
    assert result.err.startswith("evaltui: ") and result.err.count("\n") == 1, result.err
    assert "internal error" not in result.err
    assert message.format(**names) in result.err
    with Store.open(db) as store:
        assert [r.name for r in store.raters()] == []  # an empty rater name was never stored


def test_the_store_refuses_an_empty_rater_name(store: Store) -> None:
    with pytest.raises(InvalidInput, match="a rater's name must not be empty"):
        store.ensure_rater("")
    assert store.raters() == []


def test_config_is_read_before_or_after_the_command_like_db(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import write_rubric

    # Before, `evaltui label --config FILE` was refused by the parser.
    config = tmp_path / "config.toml"
    config.write_text('[keymap]\n"label.fail" = "n"\n', encoding="utf-8")  # refused, if read
    db = tmp_path / "p.duckdb"
    assert cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db).code == 0
    after = cli("label", "--rubric", "ok", "--db", db, "--config", config)
    before = cli("--config", config, "label", "--rubric", "ok", "--db", db)
    for result in (after, before):
        assert result.code == 1
        assert result.err.startswith("evaltui: keymap: 'label.fail' = 'n' gives 'n'"), result.err

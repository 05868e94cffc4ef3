"""Commands that write files never replace the project, another kind of file, or half a file.

`rubric export NAME evals.duckdb` (a slip for `.toml`) once replaced the
project with TOML and exited 0. Now every writer refuses a DuckDB file (with
or without --force), a file of another kind, and any existing file unless
--force is given; and it writes beside the target and renames.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from evaltui import files
from evaltui.ingest import import_cases
from evaltui.models import Rubric, RubricKind
from evaltui.store import Store
from tests.conftest import Result, write_jsonl

Cli = Callable[..., Result]
RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
N = 8


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the rubric `ok` and N labels; copy it to use it."""
    folder = tmp_path_factory.mktemp("outputs")
    path = folder / "template.duckdb"
    cases = [{"id": f"c{i}", "input": "q", "output": "a"} for i in range(N)]
    with Store.open(path) as store:
        import_cases(store, write_jsonl(folder / "cases.jsonl", cases))
        store.save_rubric(RUBRIC)
        for i in range(N):
            store.add_label(f"c{i}", RUBRIC, "alice", "pass")
    return path


@pytest.fixture
def project(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the template, as ./evals.duckdb in the working directory."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evals.duckdb"
    shutil.copyfile(template, path)
    return path


def label_count(path: Path) -> int:
    with Store.open(path, create=False) as store:
        row = store.cursor().execute("SELECT count(*) FROM labels").fetchone()
    return int(row[0]) if row else 0


def refused(result: Result) -> str:
    assert result.code == 1, (result.code, result.out, result.err)
    assert result.err.startswith("evaltui: ") and result.err.count("\n") == 1, result.err
    assert "internal error" not in result.err
    return result.err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# Never over a project --------------------------------------------------------


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_rubric_export_over_the_project_keeps_every_label(
    cli: Cli, project: Path, force: list[str]
) -> None:
    before = project.read_bytes()
    err = refused(cli("rubric", "export", "ok", "evals.duckdb", *force))
    assert "evals.duckdb is a DuckDB database" in err and "never writes over one" in err
    assert project.read_bytes() == before
    assert label_count(project) == N


@pytest.mark.parametrize("name", ["labels.csv", "labels.jsonl", "labels.parquet"])
def test_export_labels_over_a_duckdb_file_of_any_name_is_refused(
    cli: Cli, project: Path, name: str
) -> None:
    disguised = project.with_name(name)  # a project copied under an export's name
    shutil.copyfile(project, disguised)
    before = disguised.read_bytes()
    err = refused(cli("export", "labels", disguised, "--force"))
    assert "is a DuckDB database" in err
    assert disguised.read_bytes() == before
    assert label_count(project) == N


def test_a_name_duckdb_would_read_as_the_projects_wal_is_refused(cli: Cli, project: Path) -> None:
    err = refused(cli("rubric", "export", "ok", "evals.duckdb.wal"))
    assert "named like a DuckDB write-ahead log" in err
    assert not Path("evals.duckdb.wal").exists()
    assert label_count(project) == N


# Existing files --------------------------------------------------------------


def test_an_existing_rubric_file_is_replaced_only_with_force(cli: Cli, project: Path) -> None:
    out = project.with_name("ok.toml")
    out.write_text('[rubric]\nname = "old"\n', encoding="utf-8")
    out.chmod(0o640)
    err = refused(cli("rubric", "export", "ok", out))
    assert err == f"evaltui: {out} exists; give --force to replace it\n"
    assert out.read_text(encoding="utf-8") == '[rubric]\nname = "old"\n'

    result = cli("rubric", "export", "ok", out, "--force")
    assert result.code == 0, result.err
    assert 'name = "ok"' in out.read_text(encoding="utf-8")
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # the replaced file's mode is kept
    assert leftovers(out.parent) == []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_an_existing_export_is_replaced_only_with_force(
    cli: Cli, project: Path, suffix: str
) -> None:
    out = project.with_name(f"labels{suffix}")
    assert cli("export", "labels", out).code == 0
    first = out.read_bytes()
    err = refused(cli("export", "labels", out))
    assert "exists; give --force to replace it" in err
    assert out.read_bytes() == first

    result = cli("export", "labels", out, "--force")
    assert result.code == 0, result.err
    assert f"{N} label(s)" in result.out
    assert duckdb.sql(f"SELECT count(*) FROM '{out}'").fetchone() == (N,)
    assert leftovers(out.parent) == []


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.toml", b"not = [toml\n"),  # a .toml that is not TOML
        ("ok.txt", b'[rubric]\nname = "x"\n'),  # TOML under another name
        ("labels.csv", b"PAR1\x00\x01binary"),  # Parquet bytes under .csv
        ("labels.parquet", b"case_id,value\nc1,pass\n"),  # CSV under .parquet
    ],
)
def test_a_file_of_another_kind_is_never_replaced(
    cli: Cli, project: Path, name: str, content: bytes
) -> None:
    out = project.with_name(name)
    out.write_bytes(content)
    command = (
        ["rubric", "export", "ok"] if name.startswith(("notes", "ok")) else ["export", "labels"]
    )
    err = refused(cli(*command, out, "--force"))
    assert "is not a" in err and "not even with --force" in err
    assert out.read_bytes() == content


@pytest.mark.parametrize("command", [["rubric", "export", "ok"], ["export", "labels"]])
def test_a_folder_given_as_the_output_is_named(cli: Cli, project: Path, command: list[str]) -> None:
    folder = project.parent / "out"
    folder.mkdir()
    err = refused(cli(*command, folder))
    assert err == f"evaltui: {folder} is a folder; give the name of a file to write\n"
    assert list(folder.iterdir()) == []


# Never half a file -----------------------------------------------------------


def test_a_failed_export_leaves_the_old_file_and_no_part_of_the_new(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = project.with_name("labels.csv")
    assert cli("export", "labels", out).code == 0
    first = out.read_bytes()

    def copy_then_fail(self: Store, sql: str, params: object, target: Path, options: str) -> int:
        target.write_text("case_id,val")  # half written, then the disk fills up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Store, "copy_to", copy_then_fail)
    err = refused(cli("export", "labels", out, "--force"))
    assert err == f"evaltui: the disk holding {out} is full: free some space and try again\n"
    assert out.read_bytes() == first
    assert leftovers(out.parent) == []


def test_a_failed_rubric_write_leaves_the_old_file(
    cli: Cli, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = project.with_name("ok.toml")
    out.write_text("# kept\n", encoding="utf-8")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    err = refused(cli("rubric", "export", "ok", out, "--force"))
    assert err == f"evaltui: the disk holding {out} is full: free some space and try again\n"
    assert out.read_text(encoding="utf-8") == "# kept\n"
    assert leftovers(out.parent) == []


# The demo never mixes into a project -----------------------------------------


def test_demo_refuses_a_folder_that_holds_a_project(cli: Cli, project: Path) -> None:
    before = project.read_bytes()
    err = refused(cli("demo", "--dir", project.parent, "--no-ui"))
    assert err == (
        f"evaltui: {project.parent} already holds evals.duckdb; give --dir a new or empty folder\n"
    )
    assert project.read_bytes() == before
    assert not (project.parent / "sample_data").exists()

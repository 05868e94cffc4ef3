"""A project file that is damaged, foreign or not DuckDB's: one sentence, nothing fetched.

Damage is reported as damage (never as "open in another process"), with the
way back where DuckDB offers one; a WAL that is not the file's own is refused
rather than replayed; no connection evaltui opens lets DuckDB fetch or load an
extension by itself.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from evaltui.errors import ProjectDamaged, SchemaError
from evaltui.ingest import import_cases
from evaltui.models import Rubric, RubricKind
from evaltui.store import Store
from evaltui.store.db import NO_DOWNLOADS, open_duckdb
from tests.conftest import REPO, Result, write_jsonl

Cli = Callable[..., Result]
RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
HEADERS = 3 * 4096
"""DuckDB's file header and its two database headers, before block 0."""


def fill(store: Store, folder: Path, prefix: str, n: int = 12) -> None:
    """Cases `PREFIX0..` with one label of alice's each."""
    cases = [{"id": f"{prefix}{i}", "input": "q", "output": "a"} for i in range(n)]
    import_cases(store, write_jsonl(folder / f"{prefix}.jsonl", cases))
    store.save_rubric(RUBRIC)
    for i in range(n):
        store.add_label(f"{prefix}{i}", RUBRIC, "alice", "pass" if i % 2 else "fail")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed (checkpointed) project with 12 cases labelled by alice; copy it to use it."""
    folder = tmp_path_factory.mktemp("damage")
    path = folder / "template.duckdb"
    with Store.open(path) as store:
        fill(store, folder, "c")
    return path


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template project."""
    path = tmp_path / "evals.duckdb"
    shutil.copyfile(template, path)
    return path


def labels(path: Path) -> set[str]:
    with Store.open(path) as store:
        return {row[0] for row in store.cursor().execute("SELECT case_id FROM labels").fetchall()}


def one_line(result: Result) -> str:
    assert result.code == 1, (result.code, result.out, result.err)
    assert result.err.startswith("evaltui: ") and result.err.count("\n") == 1, result.err
    assert "internal error" not in result.err and "Traceback" not in result.err
    return result.err


def overwrite(path: Path, offset: int, size: int = 64) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)


# Damage ----------------------------------------------------------------------


def test_a_damaged_header_is_reported_as_damage_not_as_a_lock(cli: Cli, project: Path) -> None:
    # DuckDB's "... in block at location 4096" once read as a lock ("block").
    overwrite(project, 4096 + 8)
    with pytest.raises(ProjectDamaged) as error:
        Store.open(project)
    message = str(error.value)
    assert message.startswith(f"{project} is damaged (DuckDB: Corrupt database file")
    assert "restore it from a backup" in message
    err = one_line(cli("agreement", "--rubric", "ok", "--db", project))
    assert "is damaged" in err and "another process" not in err


def test_damage_a_query_meets_is_one_sentence(cli: Cli, project: Path) -> None:
    con = duckdb.connect(str(project), read_only=True)
    (block,) = con.execute(
        "SELECT DISTINCT block_id FROM pragma_storage_info('labels') WHERE block_id >= 0"
    ).fetchone() or (None,)
    (block_size,) = con.execute("SELECT block_size FROM pragma_database_size()").fetchone() or (0,)
    con.close()
    assert isinstance(block, int)
    overwrite(project, HEADERS + block * block_size + 8)  # the labels' data, not the catalog

    with Store.open(project) as store:  # opens: only the labels' block is bad
        assert store.count_cases() == 12
        with pytest.raises(ProjectDamaged, match=r"is damaged \(DuckDB: Corrupt database file"):
            store.current_labels("ok", "alice")
    err = one_line(cli("export", "labels", project.with_name("out.csv"), "--db", project))
    assert "is damaged" in err
    assert not project.with_name("out.csv").exists()
    assert [p.name for p in project.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_truncated_project_says_so(cli: Cli, project: Path) -> None:
    os.truncate(project, project.stat().st_size // 2)
    err = one_line(cli("export", "labels", project.with_name("out.csv"), "--db", project))
    assert f"{project} is damaged: it is shorter than DuckDB expects, as if truncated" in err


@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5", "", "٣"])
def test_a_tampered_schema_version_is_named(cli: Cli, project: Path, value: str) -> None:
    con = duckdb.connect(str(project))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [value])
    con.close()
    err = one_line(cli("agreement", "--rubric", "ok", "--db", project))
    assert f"the schema_version in its meta table is {value!r}" in err
    assert "not a version any evaltui writes" in err


def test_a_file_that_is_not_duckdb_is_named_for_what_it_is(tmp_path: Path) -> None:
    cases = {
        "notes.duckdb": b"just some text\n",
        "empty.duckdb": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(SchemaError, match="is not a DuckDB project file: it is another kind"):
        Store.open(tmp_path / "notes.duckdb")
    with pytest.raises(SchemaError, match="is not a DuckDB project file: it is an empty file"):
        Store.open(tmp_path / "empty.duckdb")
    with pytest.raises(SchemaError, match="is a folder, not a project file"):
        Store.open(tmp_path)
    assert (tmp_path / "empty.duckdb").read_bytes() == b""


# Extensions ------------------------------------------------------------------


def test_an_sqlite_file_named_duckdb_is_refused_and_nothing_is_fetched(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "evals.duckdb"
    lite = sqlite3.connect(path)
    lite.execute("CREATE TABLE labels (x)")
    lite.commit()
    lite.close()
    before = path.read_bytes()
    # DuckDB once reached for its sqlite_scanner extension on the internet here.
    err = one_line(cli("agreement", "--rubric", "ok", "--db", path))
    assert err == f"evaltui: {path} is not a DuckDB project file: it is an SQLite database\n"
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evals.duckdb"]


def test_no_connection_lets_duckdb_fetch_or_load_an_extension(store: Store, tmp_path: Path) -> None:
    settings = "SELECT current_setting('autoinstall_known_extensions'), current_setting('autoload_known_extensions')"
    assert store.cursor().execute(settings).fetchone() == (False, False)
    con = open_duckdb()
    assert con.execute(settings).fetchone() == (False, False)
    # With no extension on disk and an unreachable repository, a database type that
    # needs one fails at once, saying it is not installed: nothing was fetched.
    con.execute(f"SET extension_directory = '{tmp_path / 'extensions'}'")
    con.execute("SET custom_extension_repository = 'http://127.0.0.1:9'")
    lite = tmp_path / "lite.db"
    sqlite3.connect(lite).close()
    with pytest.raises(duckdb.Error) as error:
        con.execute(f"ATTACH '{lite}' (TYPE sqlite)")
    assert "download" not in str(error.value).lower()
    assert not (tmp_path / "extensions").exists()
    con.close()


def test_every_duckdb_connection_in_evaltui_goes_through_one_helper() -> None:
    # The helper passes NO_DOWNLOADS; a direct duckdb.connect elsewhere would not.
    assert NO_DOWNLOADS == {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    calls = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "evaltui").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"duckdb\.connect\(", line)
    ]
    assert len(calls) == 1 and calls[0].startswith("evaltui/store/db.py:"), calls


# The WAL ---------------------------------------------------------------------


def crash(path: Path, folder: Path, prefix: str) -> Path:
    """Write `prefix` cases and labels to `path` and stop as a crash would: the WAL stays."""
    store = Store.open(path)
    fill(store, folder, prefix, n=3)
    store.cursor().execute("PRAGMA disable_checkpoint_on_shutdown")
    store.close()
    wal = Path(f"{path}.wal")
    assert wal.exists()
    return wal


def test_new_projects_use_a_storage_format_whose_wal_names_its_file(project: Path) -> None:
    con = duckdb.connect(str(project), read_only=True)
    tags = con.execute(
        "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = 'evals'"
    ).fetchone()
    con.close()
    assert tags == ("v1.4.0+",)


def test_the_projects_own_wal_is_replayed(project: Path, tmp_path: Path) -> None:
    crash(project, tmp_path, "w")
    assert labels(project) == {f"c{i}" for i in range(12)} | {"w0", "w1", "w2"}


def test_a_wal_from_another_project_is_refused_not_replayed(
    cli: Cli, project: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other" / "evals.duckdb"
    other.parent.mkdir()
    wal = Path(f"{project}.wal")
    crash(other, other.parent, "f").rename(wal)

    with pytest.raises(ProjectDamaged) as error:
        Store.open(project)
    assert str(error.value).startswith(f"{wal} does not belong to {project}")
    err = one_line(cli("export", "labels", tmp_path / "out.csv", "--db", project))
    assert "does not belong to" in err and f"mv {wal} {wal}.aside" in err

    # The way out the message gives: the project as of its last checkpoint, no foreign label.
    wal.rename(f"{wal}.aside")
    assert labels(project) == {f"c{i}" for i in range(12)}


def test_a_stale_wal_of_the_same_project_is_refused(project: Path, tmp_path: Path) -> None:
    stale = tmp_path / "stale.wal"
    shutil.copyfile(crash(project, tmp_path, "s"), stale)
    Store.open(project).close()  # replays it and checkpoints: the copy is now out of date
    shutil.copyfile(stale, f"{project}.wal")
    with pytest.raises(ProjectDamaged, match=r"was written for an older copy of .*last checkpoint"):
        Store.open(project)


def test_a_damaged_wal_says_how_to_open_the_last_checkpoint(project: Path, tmp_path: Path) -> None:
    wal = crash(project, tmp_path, "d")
    data = bytearray(wal.read_bytes())
    data[-1] ^= 0xFF  # inside the last entry: its checksum no longer matches
    wal.write_bytes(bytes(data))
    with pytest.raises(ProjectDamaged) as error:
        Store.open(project)
    message = str(error.value)
    assert message.startswith(f"{wal} is damaged (DuckDB: Corrupt WAL file")
    assert f"mv {wal} {wal}.aside" in message and "as of its last checkpoint" in message
    wal.rename(f"{wal}.aside")
    assert labels(project) == {f"c{i}" for i in range(12)}


def test_a_file_in_duckdbs_older_format_cannot_tell_a_foreign_wal(tmp_path: Path) -> None:
    # The limit the README states, as measured: files made by an earlier evaltui use
    # DuckDB's default format, whose WAL does not name its database, and DuckDB 1.5.5
    # replays another file's WAL into them while opening, before evaltui can look.
    for name, rows in (("a", 30), ("b", 1)):
        con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))  # DuckDB's default format
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("CHECKPOINT")
        con.execute(f"INSERT INTO t SELECT range FROM range({rows})")
        if name == "a":
            con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.close()
    Path(f"{tmp_path / 'a.duckdb'}.wal").rename(f"{tmp_path / 'b.duckdb'}.wal")
    con = open_duckdb(str(tmp_path / "b.duckdb"))
    assert con.execute("SELECT count(*) FROM t").fetchone() == (31,)  # 30 foreign rows
    con.close()

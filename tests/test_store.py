"""The project file: schema versions, migrations, append-only labels, one process at a time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from evaltui.errors import InvalidInput, NotFound, ProjectLocked, SchemaError
from evaltui.models import Rubric, RubricKind
from evaltui.store import Store
from evaltui.store.db import migrate
from evaltui.store.schema import SCHEMA_VERSION

RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")


def add_case(store: Store, case_id: str) -> None:
    store.cursor().execute(
        "INSERT INTO cases (id, kind, input, output, metadata, tags) VALUES (?, 'single', 'q', 'a', '{}', [])",
        [case_id],
    )


def test_new_project_is_at_current_schema(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION
    assert store.count_cases() == 0


def test_file_from_an_older_schema_is_migrated_and_keeps_its_data(db: Path) -> None:
    con = duckdb.connect(str(db))
    assert migrate(con, db, target=1) == 1
    # Written as an evaltui of schema 1 would have: no `reason` column, no sessions table.
    con.execute(
        "INSERT INTO cases (id, kind, input, output, metadata, tags) VALUES ('c1', 'single', 'q', 'a', '{}', [])"
    )
    con.execute(
        "INSERT INTO rubrics VALUES ('ok', 1, 'binary', 'draft', 'Is it right?', '', '', [], [], [], now())"
    )
    con.execute(
        "INSERT INTO labels (id, case_id, rubric, rubric_version, rater, value, created_at) "
        "VALUES ('l1', 'c1', 'ok', 1, 'alice', 'pass', now())"
    )
    con.close()

    with Store.open(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        case = store.get_case("c1")
        assert case.reason is None
        assert [label.value for label in store.current_labels("ok", "alice")] == ["pass"]
        # Tables added by later migrations work.
        store.cursor().execute("SELECT count(*) FROM sessions").fetchone()
        store.cursor().execute("SELECT count(*) FROM verdicts").fetchone()


def test_file_from_a_newer_evaltui_is_refused(db: Path) -> None:
    Store.open(db).close()
    con = duckdb.connect(str(db))
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaError, match=r"newer evaltui \(schema 99"):
        Store.open(db)


def test_a_foreign_duckdb_file_is_refused(db: Path) -> None:
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE other (x INTEGER)")
    con.close()
    with pytest.raises(SchemaError, match="not an evaltui project"):
        Store.open(db)


def test_a_file_that_is_not_duckdb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("just some text\n" * 100)
    with pytest.raises(SchemaError):
        Store.open(path)


def test_labels_are_append_only_and_the_latest_row_is_current(store: Store) -> None:
    store.save_rubric(RUBRIC)
    add_case(store, "c1")
    store.add_label("c1", RUBRIC, "alice", "pass", note="fine")
    store.add_label("c1", RUBRIC, "alice", "fail", note="missed the second question")
    (current,) = store.current_labels("ok", "alice")
    assert (current.value, current.note) == ("fail", "missed the second question")

    store.add_label("c1", RUBRIC, "alice", None)  # cleared, e.g. undone
    assert store.current_labels("ok", "alice") == []
    history = store.label_history("c1", "ok", "alice")
    assert [label.value for label in history] == ["pass", "fail", None]
    assert store.count_labels(current=False) == 3


def test_a_retried_label_id_is_stored_once(store: Store) -> None:
    store.save_rubric(RUBRIC)
    add_case(store, "c1")
    store.add_label("c1", RUBRIC, "alice", "pass", label_id="same")
    store.add_label("c1", RUBRIC, "alice", "pass", label_id="same")
    assert store.count_labels(current=False) == 1


def test_label_values_must_fit_the_rubric_and_cases_must_exist(store: Store) -> None:
    store.save_rubric(RUBRIC)
    add_case(store, "c1")
    with pytest.raises(InvalidInput, match="'A' is not a label for binary rubric 'ok'"):
        store.add_label("c1", RUBRIC, "alice", "A")
    with pytest.raises(NotFound, match="no case with id 'nope'"):
        store.add_label("nope", RUBRIC, "alice", "pass")
    assert store.count_labels(current=False) == 0


def test_rubric_versions_are_immutable(store: Store) -> None:
    assert store.save_rubric(RUBRIC) is True
    assert store.save_rubric(RUBRIC) is False
    changed = RUBRIC.model_copy(update={"question": "Is it better?"})
    with pytest.raises(InvalidInput, match="give the changed rubric version 2"):
        store.save_rubric(changed)
    store.save_rubric(changed.model_copy(update={"version": 2}))
    assert store.get_rubric("ok").question == "Is it better?"
    assert store.get_rubric("ok", 1).question == "Is it right?"


HOLDER = textwrap.dedent(
    """
    import sys, time
    from evaltui.store import Store
    store = Store.open(sys.argv[1])
    print("ready", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def held(db: Path):  # type: ignore[no-untyped-def]
    """The project file, held open by another process."""
    Store.open(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "ready"
    yield holder
    holder.kill()
    holder.wait()


def test_second_process_gets_a_plain_message_naming_the_holder(
    db: Path, held: subprocess.Popen[str]
) -> None:
    with pytest.raises(ProjectLocked) as error:
        Store.open(db)
    message = str(error.value)
    assert f"PID {held.pid}" in message
    assert "evaltui serve" in message


def test_second_process_from_the_command_line_prints_one_line(
    db: Path, held: subprocess.Popen[str], tmp_path: Path
) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text('{"input": "q", "output": "a"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "evaltui", "import", str(cases), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"PID {held.pid}" in lines[0]
    assert "evaltui serve" in lines[0]
    assert "Traceback" not in result.stderr


def test_no_column_has_a_default(store: Store) -> None:
    # A Quack client (DuckDB 1.5.5) cannot attach a database whose tables have
    # column defaults, so a served project would be unreachable: inserts give
    # every value instead.
    rows = store.cursor().execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE column_default IS NOT NULL AND NOT internal"
    )
    assert rows.fetchall() == []

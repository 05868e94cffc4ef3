"""Importing cases into a served project: read on the rater's side, stored as the file would."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltui.errors import InvalidInput
from evaltui.ingest import import_cases
from evaltui.store import Store
from tests.conftest import SAMPLE, write_jsonl
from tests.served import Served

COLUMNS = "id, kind, input, messages, output, output_a, output_b, metadata, split, tags, reason"


def cases_of(db: Path) -> list[tuple[object, ...]]:
    with Store.open(db) as store:
        rows = store.cursor().execute(f"SELECT {COLUMNS} FROM cases ORDER BY id")
        return rows.fetchall()


def test_cases_imported_over_the_server_are_the_cases_a_file_import_stores(
    tmp_path: Path,
) -> None:
    plain = write_jsonl(
        tmp_path / "plain.jsonl",
        [
            {"id": f"p{i}", "input": f"q'{i}\x1b[2J", "output": "[b]a[/b]", "tags": ["x"]}
            for i in range(1200)
        ],
    )
    transcripts = SAMPLE / "support" / "cases.jsonl"  # chat transcripts: the careful path
    served_db, file_db = tmp_path / "served.duckdb", tmp_path / "file.duckdb"
    for db in (served_db, file_db):
        Store.open(db).close()

    with (
        Served(served_db, raters=["alice"]) as server,
        Store.open(server.address, token=server.tokens["alice"]) as store,
    ):
        first = import_cases(store, plain)
        second = import_cases(store, transcripts)
        again = import_cases(store, plain)
    with Store.open(file_db) as store:
        import_cases(store, plain)
        import_cases(store, transcripts)

    assert (first.added, second.added, again.added, again.read) == (1200, 64, 0, 1200)
    assert cases_of(served_db) == cases_of(file_db)
    assert len(cases_of(served_db)) == 1264


def test_a_bad_file_imported_over_the_server_stores_nothing(tmp_path: Path) -> None:
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"id": "a", "input": "q", "output": "x"}, {"id": "a", "input": "q2", "output": "y"}],
    )
    db = tmp_path / "served.duckdb"
    Store.open(db).close()
    with (
        Served(db, raters=["alice"]) as server,
        Store.open(server.address, token=server.tokens["alice"]) as store,
        pytest.raises(InvalidInput, match=r"line 2: field 'id'"),
    ):
        import_cases(store, bad)
    assert cases_of(db) == []

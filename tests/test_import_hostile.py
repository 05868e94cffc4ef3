"""Hostile and malformed files given to `evaltui import` and `evaltui labels import`.

Every test drives the command line as a user does (`evaltui.cli.main`), reads
what was printed, then opens the project to check what was (not) stored. A
bad record must be named by file, line/record/row and field, on one line of
stderr, with exit code 1 and nothing imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evaltui.cli import main
from evaltui.ingest.records import content_id
from evaltui.models import CaseKind
from evaltui.store import Store

# Helpers ---------------------------------------------------------------------


@dataclass
class Run:
    code: int
    out: str
    err: str


Cli = Callable[..., Run]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`evaltui ARGS...` in-process: exit code, stdout, stderr."""

    def _run(*args: object) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return _run


Line = dict[str, Any] | list[Any] | str | bytes


def write_lines(path: Path, lines: Sequence[Line]) -> Path:
    """A JSON lines file; dicts and lists are dumped, str and bytes written as they are."""
    raw = b""
    for line in lines:
        if isinstance(line, bytes):
            raw += line
        elif isinstance(line, str):
            raw += line.encode("utf-8")
        else:
            raw += json.dumps(line).encode("utf-8")
        raw += b"\n"
    path.write_bytes(raw)
    return path


def case_count(db: Path) -> int:
    with Store.open(db) as store:
        return store.count_cases()


def label_rows(db: Path) -> int:
    with Store.open(db) as store:
        return store.count_labels(current=False)


GOOD = [
    {"id": "g1", "input": "question one", "output": "answer one"},
    {"id": "g2", "input": "question two", "output": "answer two"},
]


def copy_project(template: Path, db: Path) -> Path:
    """A private copy of a closed project file (so each test starts from the same state)."""
    shutil.copyfile(template, db)
    wal = template.with_name(template.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, db.with_name(db.name + ".wal"))
    return db


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("seeded")
    db = folder / "project.duckdb"
    good = write_lines(folder / "good.jsonl", GOOD)
    assert main(["import", str(good), "--db", str(db)]) == 0
    assert case_count(db) == 2
    return db


@pytest.fixture
def project(tmp_path: Path, seeded_template: Path) -> Path:
    """A project that already holds two cases, so "nothing imported" means something."""
    return copy_project(seeded_template, tmp_path / "project.duckdb")


def assert_refused(result: Run, db: Path, *parts: str, cases: int = 2) -> None:
    """Exit 1, one readable line on stderr holding every part, and the project unchanged."""
    assert result.code == 1, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("evaltui: "), result.err
    assert "Traceback" not in result.err
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    assert case_count(db) == cases


def ok(i: int) -> dict[str, str]:
    return {"id": f"n{i}", "input": f"in {i}", "output": f"out {i}"}


# JSON lines ------------------------------------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        '{"id": "n3", "input": "q", "output": ',
        "{'id': 'n3', 'input': 'q', 'output': 'a'}",
        '{"id": "n3", "input": "q" "output": "a"}',
        '{"id": "n3", "input": "q", "output": "a"} {"id": "n4"}',
        '{"id": "n3", "input": "q", "output": "a"} // comment',
    ],
    ids=[
        "truncated",
        "single-quotes",
        "missing-comma",
        "two-objects",
        "comment",
    ],
)
def test_jsonl_malformed_line_in_the_middle_is_named(
    tmp_path: Path, project: Path, run: Cli, broken: str
) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), ok(2), broken, ok(4), ok(5)])
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 3: malformed JSON", "nothing was imported")


@pytest.mark.parametrize("skip_invalid", [False, True], ids=["fast", "careful"])
def test_jsonl_trailing_comma_is_accepted_by_both_paths(
    tmp_path: Path, project: Path, run: Cli, skip_invalid: bool
) -> None:
    # DuckDB's JSON reader accepts a trailing comma; the careful reader must agree with it.
    f = write_lines(
        tmp_path / "cases.jsonl",
        [ok(1), '{"id": "n2", "input": "q, ]", "output": "a", "metadata": {"k": [1,],},}'],
    )
    result = run("import", f, "--db", project, *(["--skip-invalid"] if skip_invalid else []))
    assert result.code == 0, result.err
    with Store.open(project) as store:
        case = store.get_case("n2")
    assert (case.input, case.metadata) == ("q, ]", {"k": [1]})


@pytest.mark.parametrize(
    ("line", "got"),
    [
        pytest.param(["in", "out"], "a list", id="array"),
        pytest.param('"just text"', "text", id="string"),
        pytest.param("42", "a number", id="number"),
        pytest.param("null", "null", id="null"),
    ],
)
def test_jsonl_line_that_is_not_an_object(
    tmp_path: Path, project: Path, run: Cli, line: Line, got: str
) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), line, ok(3)])
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: line 2: expected a JSON object, got {got}", "nothing was imported"
    )


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"id": "n2", "input": "q"}, "output"),
        ({"id": "n2", "input": "q", "output": None}, "output"),
        ({"id": "n2", "output": "a"}, "input"),
        ({"id": "n2", "input": None, "output": "a"}, "input"),
    ],
    ids=["output-missing", "output-null", "input-missing", "input-null"],
)
def test_jsonl_missing_or_null_required_field(
    tmp_path: Path, project: Path, run: Cli, record: dict[str, Any], field: str
) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), record, ok(3)])
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: line 2: field {field!r}: is missing or null", "nothing was imported"
    )


@pytest.mark.parametrize(
    ("record", "field", "message"),
    [
        ({"id": "n2", "input": {"q": 1}, "output": "a"}, "input", "expected text, got an object"),
        ({"id": "n2", "input": ["q", "r"], "output": "a"}, "input", "expected text, got a list"),
        ({"id": "n2", "input": "q", "output": {"a": 1}}, "output", "expected text, got an object"),
        (
            {"id": "n2", "input": "q", "output": "a", "metadata": "not an object"},
            "metadata",
            "expected a JSON object, got text",
        ),
        (
            {"id": "n2", "input": "q", "output": "a", "metadata": [1, 2]},
            "metadata",
            "expected a JSON object, got a list",
        ),
        (
            {"id": "n2", "input": "q", "output": "a", "tags": "a, b"},
            "tags",
            "expected a list of text tags, got text",
        ),
        (
            {"id": "n2", "input": "q", "output": "a", "tags": ["a", 3]},
            "tags",
            "expected a list of text tags",
        ),
        (
            {"id": {"x": 1}, "input": "q", "output": "a"},
            "id",
            "expected text or a whole number, got an object",
        ),
        (
            {"id": True, "input": "q", "output": "a"},
            "id",
            "expected text or a whole number, got true/false",
        ),
        ({"id": "  ", "input": "q", "output": "a"}, "id", "is empty"),
    ],
    ids=[
        "input-object",
        "input-list",
        "output-object",
        "metadata-string",
        "metadata-list",
        "tags-string",
        "tags-list-with-number",
        "id-object",
        "id-true",
        "id-blank",
    ],
)
def test_jsonl_wrong_type_names_line_and_field(
    tmp_path: Path, project: Path, run: Cli, record: dict[str, Any], field: str, message: str
) -> None:
    good_meta = {"metadata": {"k": "v"}, "tags": ["t"]}
    f = write_lines(
        tmp_path / "cases.jsonl", [{**ok(1), **good_meta}, record, {**ok(3), **good_meta}]
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: line 2: field {field!r}: {message}", "nothing was imported"
    )


def test_jsonl_raw_nul_byte_in_a_line_is_refused(tmp_path: Path, project: Path, run: Cli) -> None:
    bad = b'{"id": "n2", "input": "be\x00fore", "output": "a"}'
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), bad, ok(3)])
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 2: ", "nothing was imported")


@pytest.mark.parametrize("field", ["input", "output"])
def test_jsonl_escaped_nul_in_text_is_refused(
    tmp_path: Path, project: Path, run: Cli, field: str
) -> None:
    record = {**ok(2), field: "be\u0000fore"}
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), record, ok(3)])
    assert "\\u0000" in f.read_text()
    result = run("import", f, "--db", project)
    assert_refused(
        result,
        project,
        f"{f}: line 2: field {field!r}: contains a NUL character",
        "nothing was imported",
    )


@pytest.mark.parametrize(
    "bad",
    [
        b'{"id": "n2", "input": "\xff\xfe", "output": "a"}',
        b'{"id": "n2", "input": "q", "output": "caf\xe9"}',
        b'{"id": "n2", "input": "q", "output": "half \xe2\x82"}',
    ],
    ids=["ff-fe", "latin-1", "truncated-sequence"],
)
def test_jsonl_invalid_utf8_is_refused(tmp_path: Path, project: Path, run: Cli, bad: bytes) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), bad, ok(3)])
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 2: not valid UTF-8", "nothing was imported")


@pytest.mark.parametrize(
    "content",
    [b"", b"   \t  ", b"\n", b"\n\n\n\n", b"\r\n  \r\n\t\n"],
    ids=["zero-bytes", "whitespace", "one-newline", "blank-lines", "crlf-blank-lines"],
)
@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_empty_file_is_refused(
    tmp_path: Path, project: Path, run: Cli, content: bytes, suffix: str
) -> None:
    f = tmp_path / f"empty{suffix}"
    f.write_bytes(content)
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: the file is empty")


def test_jsonl_10mb_output_round_trips_exactly(tmp_path: Path, project: Path, run: Cli) -> None:
    unit = 'line with "quotes", \\ backslash, € and 🙂\n'
    big = (unit * (10_000_000 // len(unit) + 1))[:10_000_000]
    f = write_lines(tmp_path / "big.jsonl", [ok(1), {"id": "big", "input": "q", "output": big}])
    assert f.stat().st_size > 10_000_000
    result = run("import", f, "--db", project)
    assert result.code == 0, result.err
    assert "2 new cases" in result.out
    with Store.open(project) as store:
        stored = store.get_case("big").output
        assert store.count_cases() == 4
    assert stored is not None
    assert len(stored) == 10_000_000
    assert stored == big


def test_jsonl_same_id_with_different_content_names_both_lines(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl",
        [
            ok(1),
            {"id": "dup", "input": "q", "output": "first"},
            ok(3),
            {"id": "dup", "input": "q", "output": "second"},
        ],
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result,
        project,
        f"{f}: line 4: field 'id': 'dup' was already used at line 2",
        "nothing was imported",
    )


def test_jsonl_same_id_with_identical_content_is_imported_once(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    dup = {"id": "dup", "input": "q", "output": "same"}
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), dup, ok(3), dup])
    result = run("import", f, "--db", project)
    assert result.code == 0, result.err
    assert "3 new cases" in result.out
    assert "1 repeated in the file" in result.out
    with Store.open(project) as store:
        assert store.count_cases() == 5
        assert store.get_case("dup").output == "same"


# JSON arrays -----------------------------------------------------------------


def test_json_array_malformed_names_the_line_of_the_syntax_error(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = tmp_path / "cases.json"
    f.write_text(
        "[\n"
        '  {"id": "j1", "input": "q", "output": "a"},\n'
        '  {"id": "j2", "input": "q", "output": "b"},\n'
        '  {"id": "j3", "input": "q", "output": },\n'
        '  {"id": "j4", "input": "q", "output": "d"}\n'
        "]\n",
        encoding="utf-8",
    )
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 4: malformed JSON", "nothing was imported")


@pytest.mark.parametrize(
    "content",
    [
        '[\n  {"id": "j1", "input": "q", "output": "a"}\n',
        pytest.param('[\n  {"id": "j1", "input": "q", "output": "a"},\n', id="after-comma"),
    ],
    ids=["no-closing-bracket", "after-comma"],
)
def test_json_array_truncated_is_refused(
    tmp_path: Path, project: Path, run: Cli, content: str
) -> None:
    f = tmp_path / "cases.json"
    f.write_text(content, encoding="utf-8")
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 3: malformed JSON", "nothing was imported")


def test_json_file_holding_an_object_not_an_array(tmp_path: Path, project: Path, run: Cli) -> None:
    f = tmp_path / "cases.json"
    f.write_text(
        json.dumps({"cases": [{"id": "j1", "input": "q", "output": "a"}]}, indent=2),
        encoding="utf-8",
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: holds one JSON document (an object); expected an array of objects"
    )


@pytest.mark.parametrize(
    ("element", "got"),
    [
        pytest.param("oops", "text", id="string"),
        pytest.param(7, "a number", id="number"),
        pytest.param(None, "null", id="null"),
        pytest.param(["q", "a"], "a list", id="list"),
    ],
)
def test_json_array_element_that_is_not_an_object(
    tmp_path: Path, project: Path, run: Cli, element: Any, got: str
) -> None:
    f = tmp_path / "cases.json"
    records = [
        {"id": "j1", "input": "q", "output": "a"},
        element,
        {"id": "j3", "input": "q", "output": "c"},
    ]
    f.write_text(json.dumps(records, indent=1), encoding="utf-8")
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: record 2: expected a JSON object, got {got}", "nothing was imported"
    )


def test_json_array_wrong_field_type_names_the_record(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = tmp_path / "cases.json"
    records = [
        {"id": "j1", "input": "q", "output": "a"},
        {"id": "j2", "input": "q", "output": "b"},
        {"id": "j3", "input": {"nested": True}, "output": "c"},
    ]
    f.write_text(json.dumps(records), encoding="utf-8")
    result = run("import", f, "--db", project)
    assert_refused(
        result,
        project,
        f"{f}: record 3: field 'input': expected text, got an object",
        "nothing was imported",
    )


@pytest.mark.parametrize("content", ["[]", "[ ]\n", "[\n\n]\n"])
def test_json_empty_array_is_refused(tmp_path: Path, project: Path, run: Cli, content: str) -> None:
    f = tmp_path / "cases.json"
    f.write_text(content, encoding="utf-8")
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: ")
    message = result.err.split(f"{f}: ", 1)[1]
    assert any(words in message for words in ("no records", "no cases", "empty")), message
    assert "columns: json" not in message


# CSV ---------------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("header", "field"),
    [("id,input,answer", "output"), ("id,prompt,output", "input")],
)
def test_csv_missing_column_names_the_field_and_suggests_map(
    tmp_path: Path, project: Path, run: Cli, header: str, field: str
) -> None:
    f = write_csv(tmp_path / "cases.csv", f"{header}\nc1,q,a\n")
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: no column for field {field!r}", f"--map {field}=COLUMN")


def test_csv_empty_output_cell_names_the_line(tmp_path: Path, project: Path, run: Cli) -> None:
    f = write_csv(tmp_path / "cases.csv", "id,input,output\nc1,q1,a1\nc2,q2,\nc3,q3,a3\n")
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: line 3: field 'output': is missing or null", "nothing was imported"
    )


def test_csv_metadata_cell_that_is_not_json(tmp_path: Path, project: Path, run: Cli) -> None:
    f = write_csv(
        tmp_path / "cases.csv",
        'id,input,output,metadata\nc1,q1,a1,"{""k"": 1}"\nc2,q2,a2,{not json}\n',
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: line 3: field 'metadata': malformed JSON", "nothing was imported"
    )


def test_csv_metadata_cell_that_is_json_but_not_an_object(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = write_csv(tmp_path / "cases.csv", 'id,input,output,metadata\nc1,q1,a1,"[1, 2]"\n')
    result = run("import", f, "--db", project)
    assert_refused(
        result,
        project,
        f"{f}: line 2: field 'metadata': expected a JSON object, got a list",
        "nothing was imported",
    )


@pytest.mark.parametrize("extra", [[], ["--skip-invalid"]], ids=["fast-path", "careful-path"])
def test_csv_tags_are_comma_separated_and_trimmed(
    tmp_path: Path, project: Path, run: Cli, extra: list[str]
) -> None:
    f = write_csv(
        tmp_path / "cases.csv", 'id,input,output,tags\nc1,q1,a1,"a, b"\nc2,q2,a2," b ,, c "\n'
    )
    result = run("import", f, "--db", project, *extra)
    assert result.code == 0, result.err
    with Store.open(project) as store:
        assert store.get_case("c1").tags == ("a", "b")
        assert store.get_case("c2").tags == ("b", "c")


# Parquet -----------------------------------------------------------------------


def write_parquet(path: Path, select: str) -> Path:
    con = duckdb.connect()
    try:
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()
    return path


@pytest.mark.parametrize(
    ("column", "got"),
    [("{'text': 'q', 'n': 1}", "an object"), ("['q', 'r']", "a list")],
    ids=["struct", "list"],
)
def test_parquet_input_that_is_not_text(
    tmp_path: Path, project: Path, run: Cli, column: str, got: str
) -> None:
    f = write_parquet(
        tmp_path / "cases.parquet",
        f"SELECT 'p' || i AS id, {column} AS input, 'out' AS output FROM range(3) t(i)",
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result,
        project,
        f"{f}: row 1: field 'input': expected text, got {got}",
        "(2 more invalid record(s))",
        "nothing was imported",
    )


def test_parquet_null_output_names_the_row(tmp_path: Path, project: Path, run: Cli) -> None:
    f = write_parquet(
        tmp_path / "cases.parquet",
        "SELECT 'p' || i AS id, 'q' AS input, CASE WHEN i = 2 THEN NULL ELSE 'a' END AS output "
        "FROM range(4) t(i) ORDER BY i",
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: row 3: field 'output': is missing or null", "nothing was imported"
    )


@pytest.mark.parametrize(
    ("sql_input", "sql_output", "field", "stored_input", "stored_output"),
    [
        ("'q'", "true", "output", "q", "true"),
        ("'q'", "false", "output", "q", "false"),
        ("42", "'a'", "input", "42", "a"),
        ("'q'", "1.5::DOUBLE", "output", "q", "1.5"),
    ],
    ids=["bool-true-output", "bool-false-output", "integer-input", "double-output"],
)
def test_parquet_scalar_in_text_field_is_stored_as_json_text_and_reported(
    tmp_path: Path,
    project: Path,
    run: Cli,
    sql_input: str,
    sql_output: str,
    field: str,
    stored_input: str,
    stored_output: str,
) -> None:
    f = write_parquet(
        tmp_path / "cases.parquet",
        f"SELECT 'p1' AS id, {sql_input} AS input, {sql_output} AS output",
    )
    result = run("import", f, "--db", project)
    assert result.code == 0, result.err
    assert "1 new case" in result.out
    assert "1 number or true/false value(s) stored as text" in result.out
    assert f"note: {f}: row 1: field {field!r}: a number or true/false, kept as text" in result.err
    assert "Traceback" not in result.err
    with Store.open(project) as store:
        case = store.get_case("p1")
    assert case.input == stored_input
    assert case.output == stored_output


# Hostile text ------------------------------------------------------------------

HOSTILE = {
    "osc52-clipboard": "\x1b]52;c;aGVsbG8=\x07",
    "clear-screen": "\x1b[2J",
    "rich-markup": "[bold red]x[/]",
    "rtl-override": "abc\u202edef",
    "mixed": "[link=file:///etc/passwd]click[/link]\x1b[31m\r\x08\u202e\u200b\ufeff\t end",
}


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("extra", [[], ["--skip-invalid"]], ids=["fast-path", "careful-path"])
def test_hostile_text_is_stored_byte_for_byte(
    tmp_path: Path, project: Path, run: Cli, text: str, extra: list[str]
) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl",
        [{"id": "h1", "input": text, "output": text, "metadata": {"note": text}, "tags": [text]}],
    )
    result = run("import", f, "--db", project, *extra)
    assert result.code == 0, result.err
    with Store.open(project) as store:
        case = store.get_case("h1")
    assert case.output == text
    assert case.input == text
    assert case.metadata == {"note": text}
    assert case.tags == (text,)


def test_hostile_column_names_and_command_line_values_are_not_sql(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    weird = 'it\'s "odd"; DROP TABLE cases; --'
    f = write_lines(
        tmp_path / "cases.jsonl", [{"id": "w1", "input": "q", "output": "a", weird: "kept"}]
    )
    result = run("import", f, "--db", project, "--split", weird, "--tag", weird)
    assert result.code == 0, result.err
    with Store.open(project) as store:
        case = store.get_case("w1")
        assert store.count_cases() == 3
    assert case.metadata == {weird: "kept"}
    assert case.split == weird
    assert case.tags == (weird,)


# --skip-invalid ----------------------------------------------------------------


def test_skip_invalid_imports_the_rest_and_lists_every_skipped_line(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl",
        [
            ok(1),
            {"id": "n2", "input": "q"},
            ok(3),
            ok(4),
            {"id": "n5", "input": {"nested": 1}, "output": "a"},
            ok(6),
        ],
    )
    result = run("import", f, "--db", project, "--skip-invalid")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    skipped = [line for line in result.err.splitlines() if line.startswith("skipped ")]
    assert skipped == [
        f"skipped {f}: line 2: field 'output': is missing or null",
        f"skipped {f}: line 5: field 'input': expected text, got an object",
    ]
    assert f"{f}: 4 new cases; skipped 2 invalid record(s)" in result.out
    with Store.open(project) as store:
        assert store.count_cases() == 6
        ids = set(store.case_ids())
    assert {"n1", "n3", "n4", "n6"} <= ids
    assert not {"n2", "n5"} & ids


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"id": "n2", "input": ', "malformed JSON"),
        (b'{"id": "n2", "input": "\xff", "output": "a"}', "not valid UTF-8"),
        (b'{"id": "n2", "input": "\x00", "output": "a"}', "malformed JSON"),
        (["n2", "q", "a"], "expected a JSON object, got a list"),
    ],
    ids=["malformed", "invalid-utf8", "raw-nul", "array"],
)
def test_skip_invalid_skips_unparseable_lines(
    tmp_path: Path, project: Path, run: Cli, bad: Line, message: str
) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), bad, ok(3)])
    result = run("import", f, "--db", project, "--skip-invalid")
    assert result.code == 0, result.err
    assert f"skipped {f}: line 2: {message}" in result.err
    assert f"{f}: 2 new cases; skipped 1 invalid record(s)" in result.out
    assert case_count(project) == 4


def test_skip_invalid_with_nothing_valid_is_an_error(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl",
        [{"input": "q", "output": None}, {"input": {"x": 1}, "output": "a"}],
    )
    result = run("import", f, "--db", project, "--skip-invalid")
    assert result.code == 1
    assert f"{f}: no valid records; nothing was imported" in result.err
    assert "Traceback" not in result.err
    assert case_count(project) == 2


# Re-import ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_reimport_adds_nothing(tmp_path: Path, project: Path, run: Cli, suffix: str) -> None:
    f = tmp_path / f"cases{suffix}"
    if suffix == ".csv":
        write_csv(f, "id,input,output\nr1,q1,a1\nr2,q2,a2\nr3,q3,a3\n")
    else:
        write_lines(f, [{"id": f"r{i}", "input": f"q{i}", "output": f"a{i}"} for i in (1, 2, 3)])
    first = run("import", f, "--db", project)
    assert first.code == 0, first.err
    assert f"{f}: 3 new cases" in first.out
    second = run("import", f, "--db", project)
    assert second.code == 0, second.err
    assert f"{f}: 0 new cases, 3 already in the project" in second.out
    assert case_count(project) == 5


def test_content_hash_ids_are_stable_across_reimport_and_paths(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    rows = [{"input": f"q{i}", "output": f"a{i}"} for i in range(3)]
    f = write_lines(tmp_path / "noid.jsonl", rows)
    expected = {content_id(CaseKind.single, r["input"], [r["output"]]) for r in rows}

    assert run("import", f, "--db", project).code == 0
    with Store.open(project) as store:
        first_ids = set(store.case_ids()) - {"g1", "g2"}
    assert first_ids == expected

    again = run("import", f, "--db", project)
    assert f"{f}: 0 new cases, 3 already in the project" in again.out
    careful = run("import", f, "--db", project, "--skip-invalid")
    assert careful.code == 0, careful.err
    assert f"{f}: 0 new cases, 3 already in the project" in careful.out
    with Store.open(project) as store:
        assert set(store.case_ids()) - {"g1", "g2"} == expected
        assert store.count_cases() == 5


def test_content_hash_ids_agree_between_fast_and_careful_path(tmp_path: Path, run: Cli) -> None:
    rows = [{"input": "q\u202e\x1b[2J", "output": "a 🙂"}, {"input": "", "output": ""}]
    f = write_lines(tmp_path / "noid.jsonl", rows)
    fast_db, careful_db = tmp_path / "fast.duckdb", tmp_path / "careful.duckdb"
    assert run("import", f, "--db", fast_db).code == 0
    assert run("import", f, "--db", careful_db, "--skip-invalid").code == 0
    with Store.open(fast_db) as store:
        fast = store.case_ids()
    with Store.open(careful_db) as store:
        careful = store.case_ids()
    assert sorted(fast) == sorted(careful)
    assert len(fast) == 2


# --map -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["--map", "bogus=input"], ["--map 'bogus=input': unknown field 'bogus'"]),
        (["--map", "input=nope"], ["no column 'nope' (for field 'input')", "columns: id, input"]),
        (["--map", "output=output+nope"], ["no column 'nope' (for field 'output')"]),
        (["--map", "foo"], ["--map 'foo': expected FIELD=COLUMN"]),
        (["--map", "=input"], ["--map '=input': expected FIELD=COLUMN"]),
        (["--map", "input="], ["--map 'input=': expected FIELD=COLUMN"]),
        (["--map", "input=a+"], ["--map 'input=a+': empty column name"]),
        (["--map", "id=a+b"], ["only text fields can join several columns"]),
        (["--id", "id", "--map", "id=input"], ["--id or --map id=COLUMN, not both"]),
        (["--id", "nope"], ["no column 'nope' (for field 'id')"]),
    ],
    ids=[
        "unknown-field",
        "no-such-column",
        "no-such-joined-column",
        "no-equals",
        "no-field",
        "no-column",
        "empty-joined-column",
        "join-non-text",
        "id-twice",
        "id-no-such-column",
    ],
)
def test_map_errors(
    tmp_path: Path, project: Path, run: Cli, args: list[str], parts: list[str]
) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), ok(2)])
    result = run("import", f, "--db", project, *args)
    assert_refused(result, project, *parts)


# labels import -----------------------------------------------------------------


def write_rubric(path: Path, name: str, kind: str) -> Path:
    path.write_text(
        f'[rubric]\nname = "{name}"\nkind = "{kind}"\nquestion = "Is it ok?"\n', encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def labelled_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("labelled")
    db = folder / "labels.duckdb"
    singles = write_lines(
        folder / "singles.jsonl",
        [{"id": f"c{i}", "input": f"q{i}", "output": f"a{i}"} for i in (1, 2, 3)],
    )
    pairs = write_lines(
        folder / "pairs.jsonl", [{"id": "p1", "input": "q", "output_a": "x", "output_b": "y"}]
    )
    for f in (singles, pairs):
        assert main(["import", str(f), "--db", str(db)]) == 0
    for name, kind in (("ok", "binary"), ("pref", "pairwise")):
        rubric = write_rubric(folder / f"{name}.toml", name, kind)
        assert main(["rubric", "import", str(rubric), "--db", str(db)]) == 0
    seed = write_lines(folder / "seed.jsonl", [{"case_id": "c3", "label": "pass"}])
    argv = ["labels", "import", str(seed), "--db", str(db), "--rater", "ann", "--rubric", "ok"]
    assert main(argv) == 0
    assert label_rows(db) == 1
    assert case_count(db) == 4
    return db


@pytest.fixture
def labelled(tmp_path: Path, labelled_template: Path) -> Path:
    """A project with single cases c1..c3, pair case p1, rubrics ok/pref, and one label."""
    return copy_project(labelled_template, tmp_path / "labels.duckdb")


def assert_labels_refused(result: Run, db: Path, *parts: str) -> None:
    assert_refused(result, db, *parts, cases=4)
    assert label_rows(db) == 1


def test_labels_unknown_case_id(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = write_lines(
        tmp_path / "l.jsonl",
        [
            {"case_id": "c1", "label": "pass"},
            {"case_id": "nope", "label": "fail"},
            {"case_id": "c2", "label": "pass"},
        ],
    )
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok")
    assert_labels_refused(
        result,
        labelled,
        f"{f}: line 2: field 'case_id': no case with id 'nope' in the project",
        "nothing was imported",
    )


def test_labels_raw_value_not_in_values_map(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = write_lines(
        tmp_path / "l.jsonl",
        [{"id": "c1", "score": 1}, {"id": "c2", "score": 0}, {"id": "c3", "score": 2}],
    )
    result = run(
        "labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok",
        "--value", "score", "--values", "1=pass,0=fail",
    )  # fmt: skip
    assert_labels_refused(
        result,
        labelled,
        f"{f}: line 3: field 'score': '2' is not in --values",
        "nothing was imported",
    )


@pytest.mark.parametrize("value", ["maybe", "A", "tie", "", "passed"])
def test_labels_value_not_valid_for_binary_rubric(
    tmp_path: Path, labelled: Path, run: Cli, value: str
) -> None:
    f = write_lines(
        tmp_path / "l.jsonl",
        [{"case_id": "c1", "label": "pass"}, {"case_id": "c2", "label": value}],
    )
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok")
    assert_labels_refused(
        result,
        labelled,
        f"{f}: line 2: field 'label': {value!r} is not a label of binary rubric 'ok'",
        "nothing was imported",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "expected a label value"),
        (True, "expected a label value"),
        (["pass"], "expected a label value"),
    ],
    ids=["null", "true", "list"],
)
def test_labels_value_of_wrong_type(
    tmp_path: Path, labelled: Path, run: Cli, value: Any, message: str
) -> None:
    f = write_lines(
        tmp_path / "l.jsonl",
        [{"case_id": "c1", "label": "pass"}, {"case_id": "c2", "label": value}],
    )
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok")
    assert_labels_refused(result, labelled, f"{f}: line 2: field 'label': {message}")


def test_labels_values_map_to_a_label_the_rubric_lacks(
    tmp_path: Path, labelled: Path, run: Cli
) -> None:
    f = write_lines(tmp_path / "l.jsonl", [{"case_id": "c1", "label": "1"}])
    result = run(
        "labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok",
        "--values", "1=yes",
    )  # fmt: skip
    assert_labels_refused(result, labelled, "--values 1=yes: 'yes' is not a label of binary rubric")


@pytest.mark.parametrize(
    ("args", "part"),
    [
        ([], "no 'label' or 'value' column; name one with --value COLUMN"),
        (["--value", "score"], "no column 'score' (--value)"),
    ],
    ids=["default", "named"],
)
def test_labels_missing_value_column(
    tmp_path: Path, labelled: Path, run: Cli, args: list[str], part: str
) -> None:
    f = write_lines(tmp_path / "l.jsonl", [{"case_id": "c1", "verdict": "pass"}])
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok", *args)
    assert_labels_refused(result, labelled, f"{f}: ", part)


def test_labels_missing_case_id_column(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = write_lines(tmp_path / "l.jsonl", [{"case": "c1", "label": "pass"}])
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok")
    assert_labels_refused(
        result, labelled, f"{f}: no 'case_id' or 'id' column; name one with --case-id COLUMN"
    )


def test_labels_pairwise_rubric_given_single_cases(
    tmp_path: Path, labelled: Path, run: Cli
) -> None:
    f = write_lines(
        tmp_path / "l.jsonl", [{"case_id": "p1", "label": "A"}, {"case_id": "c1", "label": "B"}]
    )
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "pref")
    assert_labels_refused(
        result,
        labelled,
        f"{f}: line 2: field 'case_id': case 'c1' is single; rubric 'pref' is pairwise",
        "nothing was imported",
    )


def test_labels_binary_rubric_given_a_pair_case(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = write_lines(tmp_path / "l.jsonl", [{"case_id": "p1", "label": "pass"}])
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok")
    assert_labels_refused(
        result, labelled, f"{f}: line 1: field 'case_id': case 'p1' is pair; rubric 'ok' is binary"
    )


def test_labels_same_case_twice_in_a_file(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = write_lines(
        tmp_path / "l.jsonl",
        [{"case_id": "c1", "label": "pass"}, {"case_id": "c1", "label": "fail"}],
    )
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok")
    assert_labels_refused(
        result, labelled, f"{f}: line 2: field 'case_id': case 'c1' was labelled at line 1"
    )


def test_labels_malformed_line_names_it(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = write_lines(
        tmp_path / "l.jsonl",
        [{"case_id": "c1", "label": "pass"}, '{"case_id": "c2", "label": ', b'{"x": "\xff"}'],
    )
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok")
    assert_labels_refused(
        result, labelled, f"{f}: line 2: malformed JSON", "(1 more invalid record(s))"
    )


def test_labels_unknown_rubric(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = write_lines(tmp_path / "l.jsonl", [{"case_id": "c1", "label": "pass"}])
    result = run("labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "nope")
    assert_labels_refused(result, labelled, "no rubric 'nope'")


def test_labels_reimport_adds_nothing(tmp_path: Path, labelled: Path, run: Cli) -> None:
    f = tmp_path / "l.csv"
    f.write_text("case_id,value,note\nc1,1,looks fine\nc2,0,\n", encoding="utf-8")
    args = ("--db", labelled, "--rater", "bob", "--rubric", "ok", "--values", "1=pass,0=fail")
    first = run("labels", "import", f, *args)
    assert first.code == 0, first.err
    assert f"{f}: 2 new label(s)" in first.out
    second = run("labels", "import", f, *args)
    assert second.code == 0, second.err
    assert f"{f}: 0 new label(s), 2 unchanged" in second.out
    assert label_rows(labelled) == 3
    with Store.open(labelled) as store:
        current = {lb.case_id: (lb.value, lb.note) for lb in store.current_labels("ok", "bob")}
    assert current == {"c1": ("pass", "looks fine"), "c2": ("fail", "")}


# The real console script -------------------------------------------------------


def run_script(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVALTUI_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "evaltui", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def assert_script_refused(proc: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("evaltui: ")
    for part in parts:
        assert part in lines[0]
    assert proc.stdout == ""


def test_script_malformed_jsonl_prints_one_line(tmp_path: Path, project: Path) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), ok(2), "{oops", ok(4), ok(5)])
    proc = run_script("import", f, "--db", project, cwd=tmp_path)
    assert_script_refused(proc, f"{f}: line 3: malformed JSON", "nothing was imported")
    assert case_count(project) == 2


def test_script_invalid_utf8_and_nul_print_one_line(tmp_path: Path, project: Path) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl",
        [ok(1), b'{"id": "x", "input": "\xff\xfe", "output": "\x00"}', ok(3)],
    )
    proc = run_script("import", f, "--db", project, cwd=tmp_path)
    assert_script_refused(proc, f"{f}: line 2: not valid UTF-8")
    assert case_count(project) == 2


def test_script_labels_unknown_case_prints_one_line(tmp_path: Path, labelled: Path) -> None:
    f = write_lines(tmp_path / "l.jsonl", [{"case_id": "ghost", "label": "pass"}])
    proc = run_script(
        "labels", "import", f, "--db", labelled, "--rater", "ann", "--rubric", "ok", cwd=tmp_path
    )
    assert_script_refused(proc, f"{f}: line 1: field 'case_id': no case with id 'ghost'")
    assert label_rows(labelled) == 1


# Beyond the brief: files real tools write ------------------------------------


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("cases.jsonl", b'{"id": "b1", "input": "q", "output": "a"}\n'),
        ("cases.json", b'[{"id": "b1", "input": "q", "output": "a"}]\n'),
    ],
    ids=["jsonl", "json"],
)
def test_utf8_bom_at_start_of_json_file_is_accepted(
    tmp_path: Path, project: Path, run: Cli, name: str, body: bytes
) -> None:
    f = tmp_path / name
    f.write_bytes(b"\xef\xbb\xbf" + body)
    result = run("import", f, "--db", project)
    assert result.code == 0, result.err
    with Store.open(project) as store:
        assert store.get_case("b1").output == "a"


def test_utf8_bom_at_start_of_csv_file_is_accepted(tmp_path: Path, project: Path, run: Cli) -> None:
    f = tmp_path / "cases.csv"
    f.write_bytes(b"\xef\xbb\xbfid,input,output\nb1,q,a\n")
    result = run("import", f, "--db", project)
    assert result.code == 0, result.err
    with Store.open(project) as store:
        assert store.get_case("b1").output == "a"


def test_csv_multiline_cells_round_trip(tmp_path: Path, project: Path, run: Cli) -> None:
    f = tmp_path / "cases.csv"
    f.write_bytes(b'id,input,output\nm1,"line one\nline two","a, ""quoted""\r\nthird"\n')
    result = run("import", f, "--db", project)
    assert result.code == 0, result.err
    with Store.open(project) as store:
        case = store.get_case("m1")
    assert case.input == "line one\nline two"
    assert case.output == 'a, "quoted"\r\nthird'


def test_csv_line_number_after_multiline_cell(tmp_path: Path, project: Path, run: Cli) -> None:
    f = tmp_path / "cases.csv"
    # Line 1 header; the record m1 spans lines 2-4; the bad record m2 is on line 5.
    f.write_text('id,input,output\nm1,"one\ntwo\nthree",a\nm2,q,\n', encoding="utf-8")
    result = run("import", f, "--db", project)
    assert_refused(result, project, "field 'output': is missing or null")
    assert f"{f}: line 5:" in result.err or f"{f}: row 2:" in result.err, result.err


# Files that are not plain files, too large, or changing ------------------------


def run_briefly(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script, given little time: a read that blocks or never ends fails the test."""
    env = {k: v for k, v in os.environ.items() if k != "EVALTUI_DEBUG"}
    return subprocess.run(
        [sys.executable, "-m", "evaltui", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=20,
        check=False,
    )


def special_file(folder: Path, kind: str, name: str) -> Path:
    path = folder / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")  # a name the importer accepts, for a file without end
    else:
        path.mkdir()
    return path


SPECIAL = {
    "fifo": "is a named pipe (FIFO), not a regular file",
    "device": "is a character device, not a regular file",
    "folder": "is a folder, not a file",
}


READERS = {
    "import": "import input.jsonl --db DB",
    "labels-import": "labels import input.jsonl --db DB --rater ann --rubric ok",
    "judge-import": "judge import input.jsonl --db DB --rubric ok --judge j --model m",
    "rubric-import": "rubric import input.toml --db DB",
    "config": "--config input.toml label --rubric ok --db DB",
    "prompt-file": "judge set --db DB --rubric ok --model m --prompt-file input.txt",
}
"""Every command that reads a file the user names, with that file as `input.*`."""


@pytest.mark.parametrize("kind", sorted(SPECIAL))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_only_regular_files_are_read(
    tmp_path: Path, labelled: Path, run: Cli, kind: str, reader: str
) -> None:
    words = READERS[reader].split()
    name = next(word for word in words if word.startswith("input."))
    f = special_file(tmp_path, kind, name)
    args = [str(f) if word == name else str(labelled) if word == "DB" else word for word in words]
    expected = f"{f}: {SPECIAL[kind]}"
    if kind == "folder" and name != "input.jsonl":  # a text file the user names: what it should be
        expected = f"{f} is a folder, not a"
    if kind == "fifo":  # in a child process, so that a read that blocks fails the test
        proc = run_briefly(*args, cwd=tmp_path)
        assert_script_refused(proc, expected)
    else:
        assert_refused(run(*args), labelled, expected, cases=4)
    assert label_rows(labelled) == 1


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_file_over_the_size_limit_is_refused_before_it_is_read(
    tmp_path: Path, project: Path, run: Cli, suffix: str
) -> None:
    f = tmp_path / f"huge{suffix}"
    with f.open("wb") as out:
        out.truncate(2 * 1024**3 + 1)  # sparse: no disk used, and nothing reads it
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: is 2,147,483,649 bytes, over the 2 GiB limit for an import file"
    )


def test_a_toml_file_over_its_size_limit_is_refused(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = tmp_path / "rubric.toml"
    with f.open("wb") as out:
        out.truncate(16 * 1024**2 + 1)
    result = run("rubric", "import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: is 16,777,217 bytes, over the 16 MiB limit for a rubric TOML file"
    )


@pytest.mark.parametrize("where", ["file", "wal"])
@pytest.mark.parametrize("command", ["init", "import"])
def test_a_named_pipe_as_project_is_refused_before_duckdb_opens_it(
    tmp_path: Path, where: str, command: str
) -> None:
    db = tmp_path / "project.duckdb"
    if where == "file":
        os.mkfifo(db)
        pipe = db
    else:
        assert main(["init", str(db)]) == 0
        pipe = db.with_name(db.name + ".wal")
        pipe.unlink(missing_ok=True)
        os.mkfifo(pipe)
    good = write_lines(tmp_path / "good.jsonl", GOOD)
    args = ["init", db] if command == "init" else ["import", good, "--db", db]
    proc = run_briefly(*args, cwd=tmp_path)
    assert_script_refused(proc, f"{pipe}: is a named pipe (FIFO), not a regular file")


def test_a_folder_as_project_is_refused(tmp_path: Path, run: Cli) -> None:
    folder = tmp_path / "project.duckdb"
    folder.mkdir()
    good = write_lines(tmp_path / "good.jsonl", GOOD)
    result = run("import", good, "--db", folder)
    assert result.code == 1
    assert result.err.strip() == f"evaltui: {folder}: is a folder, not a project file"


class _TruncateAfterInsert:
    """A store cursor that truncates a file right after the import's INSERT has read it."""

    def __init__(self, cursor: Any, path: Path, keep: int) -> None:
        self._cursor = cursor
        self._path = path
        self._keep = keep

    def execute(self, sql: str, params: Any = None) -> Any:
        result = self._cursor.execute(sql, params)
        if sql.lstrip().startswith("INSERT INTO cases"):
            with self._path.open("r+b") as f:
                f.truncate(self._keep)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.mark.parametrize("cut", ["mid-line", "line-end"])
@pytest.mark.parametrize("path", ["fast", "careful"])
def test_a_file_truncated_during_import_imports_nothing(
    tmp_path: Path, project: Path, run: Cli, monkeypatch: pytest.MonkeyPatch, cut: str, path: str
) -> None:
    records: list[dict[str, Any]] = [ok(i) for i in range(1, 6)]
    if path == "careful":  # a transcript is checked message by message, in Python
        records[0] = {"id": "n1", "messages": [{"role": "user", "content": "hi"}], "output": "a"}
    f = write_lines(tmp_path / "cases.jsonl", records)
    first_two = len(b"".join(f.read_bytes().splitlines(keepends=True)[:2]))
    keep = first_two + (10 if cut == "mid-line" else 0)
    real = Store.transaction

    @contextmanager
    def truncating(self: Store) -> Iterator[Any]:
        with real(self) as cur:
            yield _TruncateAfterInsert(cur, f, keep)

    monkeypatch.setattr(Store, "transaction", truncating)
    result = run("import", f, "--db", project)
    monkeypatch.undo()
    assert_refused(
        result, project, f"{f}: the file changed while it was being read; nothing was imported"
    )


def test_a_file_changed_between_the_check_and_the_read_imports_nothing(
    tmp_path: Path, project: Path, run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evaltui.ingest.cases as cases

    f = write_lines(tmp_path / "cases.jsonl", [ok(1), ok(2)])
    real = cases.check_input_file

    def check_then_append(path: Path) -> Any:
        checked = real(path)
        with path.open("ab") as out:
            out.write(json.dumps(ok(3)).encode() + b"\n")
        return checked

    monkeypatch.setattr(cases, "check_input_file", check_then_append)
    result = run("import", f, "--db", project)
    monkeypatch.undo()
    assert_refused(result, project, f"{f}: the file changed while it was being read")


def test_labels_file_changed_while_read_imports_nothing(
    tmp_path: Path, labelled: Path, run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evaltui.ingest.labels as labels

    f = write_lines(tmp_path / "l.jsonl", [{"case_id": "c1", "label": "pass"}])
    real = labels.check_input_file

    def check_then_append(path: Path) -> Any:
        checked = real(path)
        with path.open("ab") as out:
            out.write(b'{"case_id": "c2", "label": "fail"}\n')
        return checked

    monkeypatch.setattr(labels, "check_input_file", check_then_append)
    result = run("labels", "import", f, "--db", labelled, "--rater", "bob", "--rubric", "ok")
    monkeypatch.undo()
    assert_labels_refused(result, labelled, f"{f}: the file changed while it was being read")


# JSON nested too deeply ----------------------------------------------------------


def nested(depth: int) -> str:
    """JSON text of `depth` levels, alternating arrays and objects."""
    opening = "".join("[" if level % 2 else '{"k": ' for level in range(depth))
    closing = "".join("]" if level % 2 else "}" for level in reversed(range(depth)))
    return opening + "1" + closing


def deep_record(depth: int, number: int = 3) -> str:
    """A JSONL record whose metadata makes the whole record `depth` levels deep."""
    return f'{{"id": "n{number}", "input": "q", "output": "a", "metadata": {nested(depth - 1)}}}'


@pytest.mark.parametrize(
    ("name", "body", "line"),
    [
        ("cases.jsonl", "\n".join([json.dumps(ok(1)), json.dumps(ok(2)), deep_record(10_000)]), 3),
        (
            "cases.json",
            "[\n" + json.dumps(ok(1)) + ",\n" + deep_record(10_000)[:-1] + ', "x": 1}\n]',
            3,
        ),
        ("cases.json", "[" * 10_000 + "]" * 10_000, 1),
    ],
    ids=["jsonl", "json-array", "bare-array"],
)
def test_script_json_nested_10000_deep_is_refused_not_a_crash(
    tmp_path: Path, project: Path, name: str, body: str, line: int
) -> None:
    f = tmp_path / name
    f.write_text(body + "\n", encoding="utf-8")
    proc = run_script("import", f, "--db", project, cwd=tmp_path)
    assert_script_refused(
        proc,
        f"{f}: line {line}: JSON nested more than 64 levels deep, the most evaltui reads",
        "nothing was imported",
    )
    assert case_count(project) == 2


def test_script_csv_metadata_cell_nested_deeply_is_refused_not_a_crash(
    tmp_path: Path, project: Path
) -> None:
    # DuckDB's json_merge_patch (metadata with extra columns) crashes on this one.
    deep = "[" * 400_000 + "]" * 400_000
    f = write_csv(
        tmp_path / "cases.csv", f'id,input,output,metadata,extra\nd1,q,a,"{{""k"": {deep}}}",e\n'
    )
    proc = run_script("import", f, "--db", project, cwd=tmp_path)
    assert_script_refused(
        proc, "field 'metadata': JSON nested more than 64 levels deep", "nothing was imported"
    )
    assert case_count(project) == 2


@pytest.mark.parametrize(
    ("header", "good", "deep"),
    [
        ("id,input,output,metadata", "{}", nested(65)),
        ("id,output,messages", '[{"role": "user", "content": "hi"}]', "[" + nested(64) + "]"),
    ],
    ids=["metadata", "messages"],
)
def test_csv_json_cell_nested_past_the_limit_names_line_and_field(
    tmp_path: Path, project: Path, run: Cli, header: str, good: str, deep: str
) -> None:
    field = header.rsplit(",", 1)[1]
    rows = [header] + [
        ",".join(["d" + str(n), *(["q"] if "input" in header else []), "a", f'"{cell}"'])
        for n, cell in ((1, good.replace('"', '""')), (2, deep.replace('"', '""')))
    ]
    f = write_csv(tmp_path / "cases.csv", "\n".join(rows) + "\n")
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: line 3: field {field!r}: JSON nested more than 64 levels deep"
    )


def test_json_nested_exactly_to_the_limit_imports(tmp_path: Path, project: Path, run: Cli) -> None:
    f = tmp_path / "cases.jsonl"
    f.write_text(deep_record(64) + "\n", encoding="utf-8")
    assert run("import", f, "--db", project).code == 0
    assert case_count(project) == 3
    f.write_text(deep_record(65, number=4) + "\n", encoding="utf-8")
    assert_refused(run("import", f, "--db", project), project, f"{f}: line 1: JSON nested", cases=3)


def test_brackets_inside_strings_do_not_count(tmp_path: Path, project: Path, run: Cli) -> None:
    text = "[{" * 500 + ' \\" ' + "}]" * 10  # code-like output, with an escaped quote
    records = [
        {"id": "s1", "input": "q", "output": text},
        {
            "id": "s2",
            "input": "q",
            "output": "a",
            "metadata": {"items": [{"i": i} for i in range(100)]},
        },
    ]
    f = write_lines(tmp_path / "cases.jsonl", records)
    assert run("import", f, "--db", project).code == 0
    c = write_csv(
        tmp_path / "cases.csv",
        'id,input,output,metadata\ns3,q,a,"{""list"": [' + ", ".join(["{}"] * 100) + ']}"\n',
    )
    assert run("import", c, "--db", project).code == 0
    with Store.open(project) as store:
        assert store.get_case("s1").output == text
        assert len(store.get_case("s3").metadata["list"]) == 100
    assert case_count(project) == 5


def test_labels_import_refuses_json_nested_too_deeply(
    tmp_path: Path, labelled: Path, run: Cli
) -> None:
    f = tmp_path / "l.jsonl"
    f.write_text('{"case_id": "c1", "label": "pass", "note": ' + nested(1000) + "}\n")
    result = run("labels", "import", f, "--db", labelled, "--rater", "bob", "--rubric", "ok")
    assert_labels_refused(result, labelled, f"{f}: line 1: JSON nested more than 64 levels deep")


def test_json_document_nested_across_lines_is_not_a_crash(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    # A .json file not starting with `[` is read as lines, then parsed whole to explain itself.
    f = tmp_path / "cases.json"
    f.write_text('{"k":\n' + "[\n" * 5000 + "]\n" * 5000 + "}\n", encoding="utf-8")
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 1: malformed JSON", "nothing was imported")


# Text that is not text: lone surrogates and invalid UTF-8 -------------------------


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"id": "n2", "input": "\\ud800", "output": "a"}', "input"),
        ('{"id": "n2", "input": "q", "output": "half \\udc00 pair"}', "output"),
        ('{"id": "n2", "input": "q", "output": "a", "metadata": {"m": ["\\uDBFF"]}}', "metadata"),
        ('{"id": "n2", "input": "q", "output": "a", "\\ud800": 1}', "\\ud800"),
    ],
    ids=["input", "low-surrogate", "nested-metadata", "column-name"],
)
def test_jsonl_lone_surrogate_names_line_and_field(
    tmp_path: Path, project: Path, run: Cli, line: str, field: str
) -> None:
    f = write_lines(tmp_path / "cases.jsonl", [ok(1), line, ok(3)])
    result = run("import", f, "--db", project)
    assert_refused(
        result, project, f"{f}: line 2: field ", "not valid UTF-8 text (a lone surrogate \\u"
    )
    assert field in result.err
    assert "internal error" not in result.err


def test_json_array_lone_surrogate_names_record_and_field(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = tmp_path / "cases.json"
    f.write_text(
        '[{"id": "n1", "input": "q", "output": "a"},\n{"id": "n2", "input": "\\ud800", "output": "a"}]'
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result,
        project,
        f"{f}: record 2: field 'input': not valid UTF-8 text (a lone surrogate \\ud800)",
        "nothing was imported",
    )


def test_csv_json_cell_with_lone_surrogate_names_line_and_field(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = write_csv(
        tmp_path / "cases.csv",
        'id,input,output,metadata\nn1,q,a,{}\nn2,q,a,"{""m"": ""\\ud800""}"\n',
    )
    result = run("import", f, "--db", project)
    assert_refused(
        result,
        project,
        f"{f}: line 3: field 'metadata': not valid UTF-8 text (a lone surrogate \\ud800)",
    )


@pytest.mark.parametrize(
    "bad",
    [b"caf\xe9", b"\xed\xa0\x80", b"half \xe2\x82"],
    ids=["latin-1", "utf8-encoded-surrogate", "truncated-sequence"],
)
def test_csv_invalid_utf8_names_the_line(
    tmp_path: Path, project: Path, run: Cli, bad: bytes
) -> None:
    f = tmp_path / "cases.csv"
    f.write_bytes(b"id,input,output\nn1,q,a\nn2,q," + bad + b"\nn3,q,a\n")
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 3: not valid UTF-8 (byte ", "nothing was imported")


def test_jsonl_utf8_encoded_surrogate_is_not_valid_utf8(
    tmp_path: Path, project: Path, run: Cli
) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl", [ok(1), b'{"id": "n2", "input": "\xed\xa0\x80", "output": "a"}']
    )
    result = run("import", f, "--db", project)
    assert_refused(result, project, f"{f}: line 2: not valid UTF-8")


def test_skip_invalid_skips_a_lone_surrogate(tmp_path: Path, project: Path, run: Cli) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl", [ok(1), '{"id": "n2", "input": "\\ud800", "output": "a"}', ok(3)]
    )
    result = run("import", f, "--db", project, "--skip-invalid")
    assert result.code == 0, result.err
    assert f"skipped {f}: line 2: field 'input': not valid UTF-8 text" in result.err
    assert case_count(project) == 4


def test_a_surrogate_pair_is_one_character(tmp_path: Path, project: Path, run: Cli) -> None:
    f = write_lines(
        tmp_path / "cases.jsonl",
        [
            '{"id": "e1", "input": "\\ud83d\\ude00", "output": "a", "metadata": {"m": "\\ud83d\\ude00"}}'
        ],
    )
    assert run("import", f, "--db", project).code == 0
    with Store.open(project) as store:
        case = store.get_case("e1")
    assert case.input == "\N{GRINNING FACE}"
    assert case.metadata == {"m": "\N{GRINNING FACE}"}


def test_labels_note_with_lone_surrogate_names_line_and_field(
    tmp_path: Path, labelled: Path, run: Cli
) -> None:
    f = write_lines(
        tmp_path / "l.jsonl",
        [
            {"case_id": "c2", "label": "fail"},
            '{"case_id": "c1", "label": "pass", "note": "\\ud800"}',
        ],
    )
    result = run("labels", "import", f, "--db", labelled, "--rater", "bob", "--rubric", "ok")
    assert_labels_refused(result, labelled, f"{f}: line 2: field 'note': not valid UTF-8 text")

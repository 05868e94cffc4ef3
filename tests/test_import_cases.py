"""`evaltui import` on well-formed files: every format, chat transcripts, mapping, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from evaltui.models import CaseKind
from evaltui.store import Store
from tests.conftest import SAMPLE, write_jsonl

SUPPORT = SAMPLE / "support" / "cases.jsonl"


def stored(db: Path) -> list[tuple[object, ...]]:
    with Store.open(db) as store:
        return [
            (
                c.id,
                c.kind,
                c.input,
                c.messages,
                c.output,
                c.output_a,
                c.output_b,
                c.metadata,
                c.split,
                c.tags,
            )
            for c in (store.get_case(i) for i in store.case_ids())
        ]


def test_support_sample_imports_chats_with_tool_calls(cli, db: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("import", SUPPORT, "--db", db)
    assert result.code == 0, result.err
    assert "64 new cases" in result.out
    lines = [json.loads(line) for line in SUPPORT.read_text().splitlines()]
    with Store.open(db) as store:
        assert store.case_ids() == [r["id"] for r in lines]  # import order is kept
        for record in lines:
            case = store.get_case(record["id"])
            assert case.output == record["output"]
            assert case.metadata == record["metadata"]
            assert case.split == record["split"]
            assert list(case.tags) == sorted(set(record["tags"]))
            if "messages" in record:
                assert case.input is None
                assert case.messages is not None
                assert [m.model_dump(exclude_none=True) for m in case.messages] == [
                    {k: v for k, v in m.items() if v is not None} for m in record["messages"]
                ]
            else:
                assert case.input == record["input"]
        with_tools = [r for r in lines if any(m.get("tool_calls") for m in r.get("messages", []))]
        assert with_tools, "the sample should have tool calls"
        case = store.get_case(with_tools[0]["id"])
        assert case.messages is not None
        call = next(m for m in case.messages if m.tool_calls)
        assert call.tool_calls is not None and call.tool_calls[0].function.name


def test_chat_without_output_column_judges_the_last_assistant_turn(
    cli, tmp_path: Path, db: Path
) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(
        tmp_path / "chats.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "Where is my order?"},
                    {"role": "assistant", "content": [{"type": "text", "text": "It shipped."}]},
                ]
            }
        ],
    )
    assert cli("import", path, "--db", db).code == 0
    ((_, kind, input_, messages, output, *_),) = stored(db)
    assert (kind, input_, output) == ("single", None, "It shipped.")
    assert messages is not None and [m.role for m in messages] == ["user"]


def test_fast_and_careful_paths_store_the_same_cases(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [
        {
            "input": f"q{i}",
            "output": f"a{i}",
            "metadata": {"n": i, "k": "v"},
            "tags": ["x", "b"],
            "extra": i,
        }
        for i in range(20)
    ]
    path = write_jsonl(tmp_path / "cases.jsonl", records)
    fast, careful = tmp_path / "fast.duckdb", tmp_path / "careful.duckdb"
    assert cli("import", path, "--db", fast, "--split", "trusted", "--tag", "a").code == 0
    # --skip-invalid always takes the careful, record-by-record path.
    assert (
        cli(
            "import", path, "--db", careful, "--split", "trusted", "--tag", "a", "--skip-invalid"
        ).code
        == 0
    )
    assert stored(fast) == stored(careful)
    first = stored(fast)[0]
    assert str(first[0]).startswith("c-")
    assert first[7] == {"n": 0, "k": "v", "extra": 0}
    assert first[9] == ("a", "b", "x")


def test_csv_and_parquet_import_with_map(cli, tmp_path: Path, db: Path) -> None:  # type: ignore[no-untyped-def]
    csv = tmp_path / "pairs.csv"
    csv.write_text(
        'qid,prompt,left,right,topic\n7,"Say hi, twice",hi hi,"hello\nhello",greet\n8,Count,1 2,1 2 3,math\n'
    )
    result = cli(
        "import", csv, "--db", db, "--id", "qid", "--map", "input=prompt",
        "--map", "output_a=left", "--map", "output_b=right",
    )  # fmt: skip
    assert result.code == 0, result.err
    with Store.open(db) as store:
        case = store.get_case("7")
        assert (case.kind, case.input, case.output_a, case.output_b) == (
            CaseKind.pair, "Say hi, twice", "hi hi", "hello\nhello",
        )  # fmt: skip
        assert case.metadata == {"topic": "greet"}
    parquet = tmp_path / "cases.parquet"
    duckdb.sql(
        f"COPY (SELECT 'p' || i AS id, 'in ' || i AS input, 'out' AS output, i AS n "
        f"FROM range(5) t(i)) TO '{parquet}' (FORMAT parquet)"
    )
    assert cli("import", parquet, "--db", db).code == 0
    with Store.open(db) as store:
        assert store.get_case("p3").metadata == {"n": 3}
        assert store.count_cases() == 7


def test_provenance_is_recorded(cli, tmp_path: Path, db: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "input": "q", "output": "a"}])
    assert cli("import", path, "--db", db, "--reason", "regression from ticket 12").code == 0
    with Store.open(db) as store:
        case = store.get_case("x")
    assert case.source == str(path.resolve())
    assert case.reason == "regression from ticket 12"
    assert case.imported_at is not None


def test_db_may_be_given_before_or_after_the_command(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "input": "q", "output": "a"}])
    before, after = tmp_path / "before.duckdb", tmp_path / "after.duckdb"
    assert cli("--db", before, "import", path).code == 0
    assert cli("import", path, "--db", after).code == 0
    for db in (before, after):
        with Store.open(db) as store:
            assert store.case_ids() == ["x"]
    assert not (tmp_path / "evals.duckdb").exists()


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    for argv in (["import"], ["labels", "import", "x.csv"], ["frobnicate"]):
        result = subprocess.run(
            [sys.executable, "-m", "evaltui", *argv], capture_output=True, text=True, cwd=tmp_path
        )
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1, result.stderr
        assert "--help" in result.stderr


def test_a_value_larger_than_duckdbs_default_buffer_imports_whole(
    cli, tmp_path: Path, db: Path
) -> None:  # type: ignore[no-untyped-def]
    # Past DuckDB's default 32 MB JSON buffer: the importer retries with a larger one.
    # Into a project that has cases, so the row count after the insert reads it too.
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "small", "input": "q", "output": "a"}])
    assert cli("import", first, "--db", db).code == 0
    huge = "long reply " * (3 * 1024 * 1024 + 1024)
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "big", "input": "q", "output": huge}])
    result = cli("import", path, "--db", db)
    assert result.code == 0, result.err
    assert "1 new case" in result.out
    with Store.open(db) as store:
        assert store.get_case("big").output == huge

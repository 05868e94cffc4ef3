"""The careful path of an import: read records one by one and say exactly what is wrong.

The fast path hands a whole file to DuckDB. When DuckDB refuses it, or when
bad rows are to be skipped, this module reads the file record by record,
names the line and field of every problem, and turns the good records into
validated cases.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from pydantic import ValidationError

from evaltui.errors import InvalidInput
from evaltui.ingest.formats import Format, reader_sql
from evaltui.ingest.mapping import TEXT_JOIN, Resolved
from evaltui.ingest.nesting import MAX_DEPTH, too_deep
from evaltui.models import Case, CaseKind
from evaltui.store.db import open_duckdb

_SEP = "\x1f"
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
"""Where JSON text may spell a surrogate; a lone one is not text and cannot be stored."""


def content_id(kind: CaseKind, input_text: str, outputs: list[str]) -> str:
    """The stable id of a case given without one: a hash of what is judged.

    The same formula runs in SQL on the fast path (`sha256` of the fields joined
    by the unit separator), so both paths give the same id to the same case.

    >>> content_id(CaseKind.single, "hi", ["hello"])
    'c-6871df546bb1f0f0'
    """
    payload = _SEP.join([kind.value, input_text, *outputs])
    return "c-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Problem:
    """One bad record: where it is and what is wrong with which field."""

    location: str
    """`line 12`, `record 3` or `row 7`."""
    field: str | None
    message: str

    def describe(self, path: Path) -> str:
        """`FILE:line 12: field 'output': expected text, got a number`."""
        where = f"{path}: {self.location}"
        if self.field:
            return f"{where}: field {self.field!r}: {self.message}"
        return f"{where}: {self.message}"


Record = tuple[str, dict[str, Any] | Problem]


def read_records(path: Path, fmt: Format) -> Iterator[Record]:
    """Yield `(location, record)` for every record, or `(location, Problem)` for a broken one.

    A JSON array that does not parse cannot be split into records, so that
    raises InvalidInput instead.
    """
    if fmt is Format.jsonl:
        yield from _read_jsonl(path)
    elif fmt is Format.json:
        yield from _read_json_array(path)
    else:
        yield from _read_with_duckdb(path, fmt)


def _read_jsonl(path: Path) -> Iterator[Record]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"line {number}"
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield (
                    where,
                    Problem(where, None, f"not valid UTF-8 (byte {e.start + 1} of the line)"),
                )
                continue
            try:
                value = loads_lenient(text)
            except json.JSONDecodeError as e:
                if number == 1 and path.suffix.lower() == ".json":
                    _refuse_single_document(path)
                yield where, Problem(where, None, f"malformed JSON: {e.msg} (column {e.colno})")
                continue
            if not isinstance(value, dict):
                yield where, Problem(where, None, f"expected a JSON object, got {_kind(value)}")
                continue
            if _SURROGATE_ESCAPE.search(text) and (problem := _lone_surrogate(where, value)):
                yield where, problem
                continue
            yield where, value


def _refuse_single_document(path: Path) -> None:
    """A `.json` file that is one pretty-printed document, not an array: say so plainly."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return  # the line's own problem is reported instead
    raise InvalidInput(
        f"{path}: holds one JSON document ({_kind(value)}); expected an array of objects "
        "or one object per line; nothing was imported"
    )


def _read_json_array(path: Path) -> Iterator[Record]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InvalidInput(f"{path}: line {line}: not valid UTF-8; nothing was imported") from None
    try:
        value = loads_lenient(text)
    except json.JSONDecodeError as e:
        raise InvalidInput(
            f"{path}: line {e.lineno}: malformed JSON: {e.msg} (column {e.colno}); "
            "nothing was imported"
        ) from None
    if not isinstance(value, list):
        raise InvalidInput(
            f"{path}: expected a JSON array of objects, got {_kind(value)}; nothing was imported"
        )
    escapes = _SURROGATE_ESCAPE.search(text) is not None
    for number, item in enumerate(value, start=1):
        where = f"record {number}"
        if not isinstance(item, dict):
            yield where, Problem(where, None, f"expected a JSON object, got {_kind(item)}")
        elif escapes and (problem := _lone_surrogate(where, item)):
            yield where, problem
        else:
            yield where, item


def _lone_surrogate(where: str, record: dict[str, Any]) -> Problem | None:
    """The Problem of a record holding a lone surrogate (JSON's `\\ud800`), in a key or value."""
    for key, value in record.items():
        found = _surrogate_in(key) or _surrogate_in(value)
        if found is not None:
            return Problem(where, key, _surrogate_message(found))
    return None


def _surrogate_in(value: Any) -> str | None:
    if isinstance(value, str):
        match = _SURROGATE.search(value)
        return match.group() if match else None
    if isinstance(value, list):
        return next((s for item in value if (s := _surrogate_in(item)) is not None), None)
    if isinstance(value, dict):
        for key, item in value.items():
            found = _surrogate_in(key) or _surrogate_in(item)
            if found is not None:
                return found
    return None


def _surrogate_message(surrogate: str) -> str:
    return f"not valid UTF-8 text (a lone surrogate \\u{ord(surrogate):04x})"


def loads_lenient(text: str) -> Any:
    """`json.loads`, also accepting trailing commas as DuckDB's JSON reader does.

    Both import paths must accept the same files, and DuckDB reads `{"a": 1,}`.

    >>> loads_lenient('{"a": [1, 2,], "b": "x,}",}')
    {'a': [1, 2], 'b': 'x,}'}
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        try:
            return json.loads(_without_trailing_commas(text))
        except json.JSONDecodeError:
            raise error from None


def _without_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = escaped = False
    pending: int | None = None  # index in `out` of a comma that may be trailing
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending is not None:
            out[pending] = ""
        if char == ",":
            pending = len(out)
        elif not char.isspace():
            pending = None
        in_string = char == '"'
        out.append(char)
    return "".join(out)


def _read_with_duckdb(path: Path, fmt: Format) -> Iterator[Record]:
    # CSV and Parquet: DuckDB reads them (dialect sniffing, types). Parquet
    # records are numbered as rows; CSV records by the line they start on.
    con = open_duckdb()
    try:
        lines = _csv_record_lines(con, path) if fmt is Format.csv else None
        cur = con.execute(f"SELECT * FROM {reader_sql(fmt)}", [str(path)])
        names = [d[0] for d in cur.description or []]
        number = 0
        while batch := cur.fetchmany(2048):
            for row in batch:
                number += 1
                if lines is not None and number <= len(lines):
                    where = f"line {lines[number - 1]}"
                else:
                    where = f"row {number}"
                yield where, dict(zip(names, row, strict=True))
    except duckdb.Error as e:
        if fmt is Format.csv and "unicode" in str(e).lower():
            _refuse_invalid_utf8(path)
        raise InvalidInput(f"{path}: {_first_line(str(e))}; nothing was imported") from None
    finally:
        con.close()


def _refuse_invalid_utf8(path: Path) -> None:
    """Name the first line of a text file that is not valid UTF-8 (DuckDB's CSV error does not)."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InvalidInput(
                    f"{path}: line {number}: not valid UTF-8 (byte {e.start + 1} of the line); "
                    "nothing was imported"
                ) from None


def _csv_record_lines(con: duckdb.DuckDBPyConnection, path: Path) -> list[int] | None:
    """The line each data record of a CSV file starts on (cells may span lines).

    Uses the dialect DuckDB detected; None when Python's reader and DuckDB
    disagree on the number of records, so rows are numbered instead.
    """
    dialect = con.execute("SELECT Delimiter, Quote FROM sniff_csv(?)", [str(path)]).fetchone()
    count = con.execute(f"SELECT count(*) FROM {reader_sql(Format.csv)}", [str(path)]).fetchone()
    if dialect is None or count is None:
        return None
    delimiter, quote = dialect
    if not quote or quote == "(empty)":  # DuckDB's word for "no quoting seen"
        quote = '"'
    starts: list[int] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, quotechar=quote)
            previous_end = 0
            for _ in reader:
                starts.append(previous_end + 1)
                previous_end = reader.line_num
    except (csv.Error, UnicodeDecodeError, TypeError):
        return None
    data = starts[1:]  # the first record is the header
    return data if len(data) == count[0] else None


def to_case(
    record: dict[str, Any],
    resolved: Resolved,
    *,
    location: str,
    text_cells: bool,
    split: str | None,
    tags: tuple[str, ...],
    converted: list[Problem] | None = None,
) -> Case | Problem:
    """Turn one record into a validated case, or the Problem that stops it.

    `text_cells` is true for CSV, whose cells are all text: JSON-valued fields
    (`messages`, `metadata`) are parsed from it and `tags` are comma-separated.
    A number or true/false in a text field is kept as its JSON text (a model
    can answer `true`), and noted in `converted`.
    """
    values: dict[str, Any] = {"kind": resolved.kind}
    for name, columns in resolved.fields.items():
        cells = [record.get(c) for c in columns]
        if len(columns) > 1:
            for column, cell in zip(columns, cells, strict=True):
                if cell is not None and not isinstance(cell, str):
                    return Problem(location, column, f"expected text, got {_kind(cell)}")
            joined = TEXT_JOIN.join(c for c in cells if c)
            values[name] = joined or None
        else:
            values[name] = cells[0]
    try:
        for note in _scalars_to_text(values):
            if converted is not None:
                converted.append(Problem(location, note, "a number or true/false, kept as text"))
        _coerce(values, text_cells)
        chat_without_output = values.get("messages") is not None and values.get("output") is None
        if chat_without_output and resolved.kind is CaseKind.single:
            _take_final_reply(values)
        _require(values, resolved)
    except _FieldError as e:
        return Problem(location, e.field, e.message)
    extra = {c: record.get(c) for c in resolved.extra if record.get(c) is not None}
    values["metadata"] = {**(values.get("metadata") or {}), **extra}
    if split is not None:
        values["split"] = split
    values["tags"] = tuple(sorted(set(values.get("tags") or ()) | set(tags)))
    for name in ("input", "output", "output_a", "output_b"):
        text = values.get(name)
        if isinstance(text, str) and "\x00" in text:
            return Problem(location, name, "contains a NUL character")
    if values.get("id") is None:
        values["id"] = _hash_id(values)
    try:
        return Case.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        return Problem(location, field, _plain(err["msg"]))


def _require(values: dict[str, Any], resolved: Resolved) -> None:
    if values.get("input") is None and values.get("messages") is None:
        field = "input" if "input" in resolved.fields else "messages"
        raise _FieldError(field, "is missing or null")
    needed = ["output_a", "output_b"] if resolved.kind is CaseKind.pair else ["output"]
    if "id" in resolved.fields:
        needed.append("id")
    for name in needed:
        if values.get(name) is None:
            raise _FieldError(name, "is missing or null")


class _FieldError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _scalars_to_text(values: dict[str, Any]) -> list[str]:
    changed = []
    for name in ("input", "output", "output_a", "output_b"):
        value = values.get(name)
        if isinstance(value, bool | int | float):
            values[name] = json.dumps(value)
            changed.append(name)
    return changed


def _coerce(values: dict[str, Any], text_cells: bool) -> None:
    """Check field types strictly (no silent number-to-text) and parse text-encoded fields."""
    for name in ("input", "output", "output_a", "output_b", "split", "reason"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            raise _FieldError(name, f"expected text, got {_kind(value)}")
    if values.get("id") is not None:
        value = values["id"]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _FieldError("id", f"expected text or a whole number, got {_kind(value)}")
        values["id"] = str(value)
        if not values["id"].strip():
            raise _FieldError("id", "is empty")
    for name in ("messages", "metadata"):
        value = values.get(name)
        if text_cells and isinstance(value, str):
            if too_deep(value):
                raise _FieldError(
                    name, f"JSON nested more than {MAX_DEPTH} levels deep, the most evaltui reads"
                )
            try:
                values[name] = value = json.loads(value)
            except json.JSONDecodeError as e:
                raise _FieldError(name, f"malformed JSON: {e.msg}") from None
            if (surrogate := _surrogate_in(value)) is not None:
                raise _FieldError(name, _surrogate_message(surrogate))
        if name == "messages" and value is not None and not isinstance(value, list):
            raise _FieldError(name, f"expected a list of messages, got {_kind(value)}")
        if name == "metadata" and value is not None and not isinstance(value, dict):
            raise _FieldError(name, f"expected a JSON object, got {_kind(value)}")
    if isinstance(values.get("messages"), list):
        values["messages"] = [_flatten_content(m) for m in values["messages"]]
    tags = values.get("tags")
    if text_cells and isinstance(tags, str):
        values["tags"] = [t.strip() for t in tags.split(",") if t.strip()]
    elif tags is not None and not (
        isinstance(tags, list) and all(isinstance(t, str) for t in tags)
    ):
        raise _FieldError("tags", f"expected a list of text tags, got {_kind(tags)}")


def _flatten_content(message: Any) -> Any:
    # OpenAI allows content as a list of parts; keep the text parts, joined.
    if isinstance(message, dict) and isinstance(message.get("content"), list):
        parts = message["content"]
        texts = [
            p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text"
        ]
        return {**message, "content": "\n".join(texts)}
    return message


def _take_final_reply(values: dict[str, Any]) -> None:
    """With no output column, a chat's last assistant turn is the output being judged."""
    messages = values["messages"]
    if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        values["output"] = messages[-1].get("content") or ""
        values["messages"] = messages[:-1]
    else:
        raise _FieldError(
            "output", "missing, and the transcript does not end with an assistant turn"
        )


def _hash_id(values: dict[str, Any]) -> str:
    kind = values["kind"]
    if values.get("messages") is not None:
        input_text = json.dumps(values["messages"], sort_keys=True, ensure_ascii=False)
    else:
        input_text = values.get("input") or ""
    names = ("output_a", "output_b") if kind is CaseKind.pair else ("output",)
    return content_id(kind, input_text, [values.get(n) or "" for n in names])


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _plain(message: str) -> str:
    return message[0].lower() + message[1:] if message else message


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text

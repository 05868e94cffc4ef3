"""`evaltui import`: cases from JSONL, JSON, CSV or Parquet, all or nothing.

A file is imported in one DuckDB statement (the fast path) whenever its
column types allow; every row is checked inside that statement and any bad
value aborts it, so nothing is half-imported. When DuckDB refuses the file,
or bad rows are to be skipped, the careful path in `records` reads it record
by record to name the line and field, and the good records go through the
fast path from a normalised temporary file.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from evaltui.errors import InvalidInput
from evaltui.ingest.formats import (
    Format,
    InputFile,
    check_input_file,
    ends_with,
    needs_large_objects,
    reader_sql,
)
from evaltui.ingest.mapping import Resolved, parse_map, resolve
from evaltui.ingest.nesting import MAX_DEPTH
from evaltui.ingest.records import Problem, read_records, to_case
from evaltui.models import Case, CaseKind
from evaltui.store import Store
from evaltui.store.db import now, open_duckdb

__all__ = ["ImportReport", "import_cases", "parse_map"]

_TEXT_FIELDS = ("input", "output", "output_a", "output_b")
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                  "UINTEGER", "UBIGINT", "UHUGEINT"}  # fmt: skip


@dataclass
class ImportReport:
    """What an import did."""

    path: Path
    read: int
    """Records in the file that were valid."""
    added: int
    """Cases new to the project."""
    skipped: list[str] = field(default_factory=list)
    """One line per record left out by `--skip-invalid`, naming line and field."""
    duplicates: list[str] = field(default_factory=list)
    """Records repeating an earlier record of the same file (kept once)."""
    converted: list[str] = field(default_factory=list)
    """Text fields given as a number or true/false, stored as that JSON text."""

    @property
    def already_present(self) -> int:
        """Valid records whose case id the project already had."""
        return self.read - self.added

    def summary(self) -> str:
        """One line for the terminal."""
        text = f"{self.path}: {self.added} new case{'s' if self.added != 1 else ''}"
        if self.already_present:
            text += f", {self.already_present} already in the project"
        if self.duplicates:
            text += f", {len(self.duplicates)} repeated in the file"
        if self.converted:
            text += f"; {len(self.converted)} number or true/false value(s) stored as text"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} invalid record(s)"
        return text


class _FastPathRefused(Exception):
    """The file needs the careful path (types DuckDB cannot check in SQL, or a bad row)."""


def import_cases(
    store: Store,
    path: Path | str,
    *,
    kind: CaseKind | None = None,
    mapping: dict[str, list[str]] | None = None,
    split: str | None = None,
    tags: Sequence[str] = (),
    reason: str | None = None,
    skip_invalid: bool = False,
) -> ImportReport:
    """Import the cases in `path` into the project; all or nothing unless `skip_invalid`.

    Re-importing a file adds nothing: cases keep their given id, or get one
    hashed from their content. A file that changes while it is read (say, is
    truncated) imports nothing, whichever step notices.
    """
    path = Path(path)
    checked = check_input_file(path)
    try:
        return _import(store, checked, kind, mapping, split, tags, reason, skip_invalid)
    except (InvalidInput, duckdb.Error):
        checked.check_unchanged()  # a file that changed explains any error
        raise


def _import(
    store: Store,
    checked: InputFile,
    kind: CaseKind | None,
    mapping: dict[str, list[str]] | None,
    split: str | None,
    tags: Sequence[str],
    reason: str | None,
    skip_invalid: bool,
) -> ImportReport:
    path, fmt = checked.path, checked.format
    columns = _columns(path, fmt, skip_invalid=skip_invalid)
    resolved = resolve(path, list(columns), mapping or {}, kind=kind)
    options = _Options(
        source=str(path.resolve()),
        split=split,
        tags=tuple(sorted(set(tags))),
        reason=reason,
        checked=checked,
    )
    if not skip_invalid:
        try:
            return _fast_import(store, path, fmt, columns, resolved, options)
        except _FastPathRefused:
            pass
    return _careful_import(store, path, fmt, resolved, options, skip_invalid=skip_invalid)


@dataclass(frozen=True)
class _Options:
    source: str
    split: str | None
    tags: tuple[str, ...]
    reason: str | None
    checked: InputFile
    """The file given to import; it must not change before the import commits."""


def _columns(path: Path, fmt: Format, *, skip_invalid: bool) -> dict[str, str]:
    """The file's columns and DuckDB types.

    When DuckDB cannot read the file, the careful reader collects the columns
    of the valid records instead (type "ANY", which sends the import down the
    careful path) and, unless bad records are to be skipped, names the first
    broken one.
    """
    con = open_duckdb()
    try:
        for large_objects in (False, True):
            sql = f"DESCRIBE SELECT * FROM {reader_sql(fmt, large_objects=large_objects)}"
            try:
                rows = con.execute(sql, [str(path)]).fetchall()
                return {name: type_ for name, type_, *_ in rows}
            except duckdb.Error as error:
                if not needs_large_objects(error):
                    break
    finally:
        con.close()
    names: dict[str, str] = {}
    for _, record in read_records(path, fmt):
        if isinstance(record, Problem):
            if not skip_invalid:
                raise InvalidInput(record.describe(path) + "; nothing was imported")
            continue
        for key in record:
            names.setdefault(key, "ANY")
    if not names:
        raise InvalidInput(f"{path}: no records found; nothing was imported")
    return names


def _fast_import(
    store: Store,
    path: Path,
    fmt: Format,
    columns: dict[str, str],
    resolved: Resolved,
    options: _Options,
    *,
    normalised: bool = False,
) -> ImportReport:
    if fmt is Format.json and not ends_with(path, b"]"):
        # DuckDB reads the records of a truncated array without complaint.
        raise _FastPathRefused("the JSON array is not closed")
    before = store.count_cases()
    insert = partial(
        _insert, store, path, fmt, columns, resolved, options, normalised=normalised, before=before
    )
    try:
        try:
            added, read = insert(large_objects=False)
        except duckdb.Error as error:
            if not needs_large_objects(error):
                raise
            added, read = insert(large_objects=True)
    except duckdb.Error as error:
        if normalised:
            raise InvalidInput(f"{path}: {str(error).strip().splitlines()[0]}") from None
        options.checked.check_unchanged()
        raise _FastPathRefused(str(error)) from None
    return ImportReport(path=path, read=read, added=added)


def _insert(
    store: Store,
    path: Path,
    fmt: Format,
    columns: dict[str, str],
    resolved: Resolved,
    options: _Options,
    *,
    normalised: bool,
    before: int,
    large_objects: bool,
) -> tuple[int, int]:
    """Run the one INSERT of the fast path; return the cases it added and the records read.

    It commits only if the file given is still the one that was checked.
    """
    select = _select_sql(
        fmt, columns, resolved, options, normalised=normalised, large_objects=large_objects
    )
    params = [options.source, now(), options.reason, str(path)]
    if store.server is not None:
        return _insert_served(store, select, params, before=before, checked=options.checked)
    # Into an empty project everything is new: skipping the anti-join keeps
    # DuckDB's parallel batch insert (a repeated id still fails on the key).
    new_only = " WHERE new.id NOT IN (SELECT id FROM cases)" if before else ""
    with store.transaction() as cur:
        cur.execute(
            f"INSERT INTO cases ({_CASE_FIELDS}) SELECT * FROM ({select}) AS new{new_only}",
            params,
        )
        row = cur.fetchone()
        added = int(row[0]) if row else 0
        read = _count_records(path, fmt, columns, large_objects) if before else added
        options.checked.check_unchanged()
    return added, read


def _count_records(path: Path, fmt: Format, columns: dict[str, str], large_objects: bool) -> int:
    """How many records the file holds (some were already in the project)."""
    # Only the first column is read to count rows, which DuckDB does cheaply.
    first = next(iter(columns))
    con = open_duckdb()
    try:
        row = con.execute(
            f"SELECT count(1) FROM (SELECT {_q(first)} FROM "
            f"{reader_sql(fmt, large_objects=large_objects)})",
            [str(path)],
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


_CASE_FIELDS = (
    "id, kind, input, messages, output, output_a, output_b, metadata, split, tags, source, "
    "imported_at, reason"
)
_SERVED_CHUNK = 500


def _insert_served(
    store: Store, select: str, params: list[Any], *, before: int, checked: InputFile
) -> tuple[int, int]:
    """The fast path for a served project: the file is read and checked here, on the
    rater's machine (the server may not see it), and the rows sent in chunks, all in
    one transaction."""
    con = open_duckdb()
    try:
        rows = con.execute(f"SELECT * FROM ({select})", params).fetchall()
    finally:
        con.close()
    checked.check_unchanged()
    width = len(_CASE_FIELDS.split(","))
    new_only = " WHERE new.id NOT IN (SELECT id FROM cases)" if before else ""
    added = 0
    with store.transaction() as cur:
        for at in range(0, len(rows), _SERVED_CHUNK):
            chunk = rows[at : at + _SERVED_CHUNK]
            values = ", ".join(["(" + ", ".join(["?"] * width) + ")"] * len(chunk))
            cur.execute(
                f"INSERT INTO cases ({_CASE_FIELDS}) SELECT * FROM (VALUES {values}) "
                f"AS new({_CASE_FIELDS}){new_only}",
                [value for row in chunk for value in row],
            )
            row = cur.fetchone()
            added += int(row[0]) if row else 0
        checked.check_unchanged()
    return added, len(rows)


def _select_sql(
    fmt: Format,
    columns: dict[str, str],
    resolved: Resolved,
    options: _Options,
    *,
    normalised: bool,
    large_objects: bool = False,
) -> str:
    """SQL that reads the file, checks every row and yields rows in the `cases` layout.

    Parameters, in order: source, imported_at, reason, file path.
    Raises _FastPathRefused when a column's type cannot be checked in SQL.
    """
    fields = resolved.fields
    reader = reader_sql(fmt, _NORMAL_TYPES if normalised else None, large_objects=large_objects)
    if "messages" in fields and not normalised:
        raise _FastPathRefused("chat transcripts are checked message by message")

    def type_of(column: str) -> str:
        return columns.get(column, "ANY")

    def text(name: str) -> str:
        cols = fields[name]
        for c in cols:
            if type_of(c) != "VARCHAR":
                raise _FastPathRefused(f"{c} is {type_of(c)}")
        if len(cols) == 1:
            expr = _q(cols[0])
        else:
            parts = ", ".join(f"nullif({_q(c)}, '')" for c in cols)
            expr = f"nullif(concat_ws(chr(10) || chr(10), {parts}), '')"
        return f"CASE WHEN {expr} IS NULL OR contains({expr}, chr(0)) THEN error('bad {name}') ELSE {expr} END"

    def optional_text(name: str, override: str | None) -> str:
        if override is not None:
            return _literal(override)
        if name not in fields:
            return "NULL"
        cols = fields[name]
        if any(type_of(c) != "VARCHAR" for c in cols):
            raise _FastPathRefused(f"{name} is not text")
        return (
            _q(cols[0])
            if len(cols) == 1
            else f"concat_ws(chr(10) || chr(10), {', '.join(map(_q, cols))})"
        )

    select: dict[str, str] = {}
    kind = resolved.kind
    if "messages" in fields:
        # Only normalised files reach here with a transcript: each record was
        # checked to have exactly one of input and messages.
        input_sql = _q("input") if "input" in fields else "NULL"
    else:
        input_sql = text("input")
    outputs = ("output_a", "output_b") if kind is CaseKind.pair else ("output",)
    output_sql = {name: text(name) for name in outputs}
    if "id" in fields:
        column = fields["id"][0]
        if type_of(column) in _INTEGER_TYPES:
            ident = f"CAST({_q(column)} AS VARCHAR)"
        elif type_of(column) == "VARCHAR":
            ident = _q(column)
        else:
            raise _FastPathRefused(f"id is {type_of(column)}")
        select["id"] = (
            f"CASE WHEN trim(coalesce({ident}, '')) = '' THEN error('bad id') ELSE {ident} END"
        )
    else:
        payload = ", ".join([f"'{kind.value}'", input_sql, *output_sql.values()])
        select["id"] = f"'c-' || left(sha256(concat_ws(chr(31), {payload})), 16)"
    select["kind"] = f"'{kind.value}'"
    select["input"] = input_sql
    select["messages"] = (
        f"CAST({_q(fields['messages'][0])} AS JSON)" if "messages" in fields else "NULL"
    )
    for name in ("output", "output_a", "output_b"):
        select[name] = output_sql.get(name, "NULL")
    select["metadata"] = _metadata_sql(fields, resolved.extra, type_of, checked=normalised)
    select["split"] = optional_text("split", options.split)
    select["tags"] = _tags_sql(fields, type_of, fmt, options.tags)
    select["source"] = "?::VARCHAR"
    select["imported_at"] = "?::TIMESTAMP"
    select["reason"] = "coalesce(?::VARCHAR, " + optional_text("reason", None) + ")"
    body = ",\n  ".join(f"{expr} AS {name}" for name, expr in select.items())
    return f"SELECT\n  {body}\nFROM {reader}"


def _metadata_sql(
    fields: dict[str, list[str]], extra: list[str], type_of: object, *, checked: bool
) -> str:
    """The metadata column; `checked` when the careful path has measured its depth already."""
    assert callable(type_of)
    base = "'{}'::JSON"
    if "metadata" in fields:
        column = fields["metadata"][0]
        kind = type_of(column)
        if kind.startswith("STRUCT") or kind.startswith("MAP"):
            base = f"coalesce(to_json({_q(column)}), '{{}}'::JSON)"
        elif kind in ("JSON", "VARCHAR"):
            # JSON held as text is parsed here, so it was not part of the file's
            # nesting check: text with more opening brackets than the nesting
            # limit is left to the careful path, which measures its depth.
            text = f"CAST({_q(column)} AS VARCHAR)"
            opens = f"length({text}) - length(translate({text}, '[{{', ''))"
            value = f"TRY_CAST({_q(column)} AS JSON)"
            guard = "" if checked else f"WHEN {opens} > {MAX_DEPTH} THEN error('deep metadata') "
            base = (
                f"CASE WHEN {_q(column)} IS NULL THEN '{{}}'::JSON {guard}"
                f"WHEN json_type({value}) = 'OBJECT' THEN {value} ELSE error('bad metadata') END"
            )
        else:
            raise _FastPathRefused(f"metadata is {kind}")
    if not extra:
        return base
    pairs = ", ".join(f"{_literal(c)}, {_q(c)}" for c in extra)
    # A null member is dropped by the merge, as the careful path drops it.
    return f"json_merge_patch({base}, json_object({pairs}))"


def _tags_sql(
    fields: dict[str, list[str]], type_of: object, fmt: Format, extra: tuple[str, ...]
) -> str:
    assert callable(type_of)
    added = "[" + ", ".join(_literal(t) for t in extra) + "]::VARCHAR[]"
    if "tags" not in fields:
        return added
    column = fields["tags"][0]
    kind = type_of(column)
    if kind == "VARCHAR[]":
        given = f"coalesce({_q(column)}, [])"
    elif kind == "VARCHAR" and fmt is Format.csv:
        given = (
            f"list_filter(list_transform(string_split(coalesce({_q(column)}, ''), ','), "
            "t -> trim(t)), t -> t <> '')"
        )
    else:
        raise _FastPathRefused(f"tags is {kind}")
    if any(type_of(c) == "VARCHAR[]" for c in fields["tags"]):
        given = f"CASE WHEN list_contains({given}, NULL) THEN error('bad tags') ELSE {given} END"
    return f"list_sort(list_distinct(list_concat({given}, {added})))"


def _careful_import(
    store: Store,
    path: Path,
    fmt: Format,
    resolved: Resolved,
    options: _Options,
    *,
    skip_invalid: bool,
) -> ImportReport:
    problems: list[Problem] = []
    converted: list[Problem] = []
    duplicates: list[str] = []
    kept: dict[str, tuple[str, Case]] = {}
    for location, record in read_records(path, fmt):
        if isinstance(record, Problem):
            problems.append(record)
            continue
        case = to_case(
            record,
            resolved,
            location=location,
            text_cells=fmt is Format.csv,
            split=options.split,
            tags=options.tags,
            converted=converted,
        )
        if isinstance(case, Problem):
            problems.append(case)
            continue
        if case.id in kept:
            first_location, first = kept[case.id]
            if _content(first) != _content(case):
                problems.append(
                    Problem(location, "id", f"{case.id!r} was already used at {first_location}")
                )
            else:
                duplicates.append(f"{path}: {location}: same case as {first_location}")
            continue
        kept[case.id] = (location, case)
    if problems and not skip_invalid:
        more = f" ({len(problems) - 1} more invalid record(s))" if len(problems) > 1 else ""
        raise InvalidInput(f"{problems[0].describe(path)}{more}; nothing was imported")
    if not kept:
        raise InvalidInput(f"{path}: no valid records; nothing was imported")
    with tempfile.TemporaryDirectory(prefix="evaltui-import-") as tmp:
        normal = Path(tmp) / "cases.jsonl"
        with normal.open("w", encoding="utf-8") as out:
            for _, case in kept.values():
                out.write(_normal_line(case) + "\n")
        normal_resolved = Resolved(
            kind=resolved.kind,
            fields={name: [name] for name in _normal_fields(resolved)},
        )
        report = _fast_import(
            store,
            normal,
            Format.jsonl,
            _NORMAL_TYPES,
            normal_resolved,
            _Options(options.source, None, (), options.reason, options.checked),
            normalised=True,
        )
    report.path = path
    report.skipped = [p.describe(path) for p in problems]
    report.duplicates = duplicates
    report.converted = [p.describe(path) for p in converted]
    return report


def _normal_fields(resolved: Resolved) -> list[str]:
    fields = ["id", *(f for f in ("input", "messages") if f in resolved.fields)]
    fields += ["output_a", "output_b"] if resolved.kind is CaseKind.pair else ["output"]
    return [*fields, "metadata", "split", "tags"]


def _normal_line(case: Case) -> str:
    data = case.model_dump(mode="json", include=set(_NORMAL_KEYS))
    if data.get("messages") is not None:
        # Kept as a JSON string so DuckDB stores the transcript exactly as validated.
        data["messages"] = json.dumps(data["messages"], ensure_ascii=False)
    data["metadata"] = data.get("metadata") or {}
    return json.dumps(data, ensure_ascii=False)


_NORMAL_TYPES = {
    "id": "VARCHAR",
    "input": "VARCHAR",
    "messages": "VARCHAR",
    "output": "VARCHAR",
    "output_a": "VARCHAR",
    "output_b": "VARCHAR",
    "metadata": "JSON",
    "split": "VARCHAR",
    "tags": "VARCHAR[]",
}
"""The fixed schema of the normalised file the careful path writes."""
_NORMAL_KEYS = tuple(_NORMAL_TYPES)


def _content(case: Case) -> dict[str, object]:
    return case.model_dump(include={"input", "messages", "output", "output_a", "output_b"})


def _q(identifier: str) -> str:
    """A quoted SQL identifier (column names come from the user's file)."""
    return '"' + identifier.replace('"', '""') + '"'


def _literal(value: str) -> str:
    """A quoted SQL string literal, for values fixed by the user's own command line."""
    return "'" + value.replace("'", "''") + "'"

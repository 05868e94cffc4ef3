"""File formats evaltui reads and writes, and the DuckDB reader for each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from evaltui.errors import InvalidInput
from evaltui.files import Stamp, check_changed, check_file
from evaltui.ingest.nesting import check_nesting

# A JSON value larger than DuckDB's default buffer is still a valid case. The
# limit is raised only for files that need it: a large buffer makes DuckDB read
# the file in one piece, which halves import speed on ordinary files.
_MAX_OBJECT_BYTES = 1024 * 1024 * 1024


class Format(StrEnum):
    """A file format, named as users name it."""

    jsonl = "jsonl"
    json = "json"
    csv = "csv"
    parquet = "parquet"


_SUFFIXES = {
    ".jsonl": Format.jsonl,
    ".ndjson": Format.jsonl,
    ".json": Format.json,
    ".csv": Format.csv,
    ".tsv": Format.csv,
    ".parquet": Format.parquet,
    ".pq": Format.parquet,
}


@dataclass(frozen=True)
class InputFile:
    """An input file that passed `check_input_file`, and what it looked like then."""

    path: Path
    format: Format
    stamp: Stamp

    def check_unchanged(self) -> None:
        """Raise InvalidInput if the file changed since it was checked (say, while being read)."""
        check_changed(self.path, self.stamp)


def check_input_file(path: Path) -> InputFile:
    """Check an input file before anything reads it, and detect its format.

    It must be a regular file of at most 2 GiB (`evaltui.files`), not empty,
    of a known type, and JSON in it may nest at most `MAX_DEPTH` levels
    (deeper JSON crashes DuckDB's reader). Raises InvalidInput otherwise.
    """
    stamp = check_file(path)
    fmt = detect_format(path)
    if fmt in (Format.jsonl, Format.json):
        check_nesting(path, lines=fmt is Format.jsonl)
    return InputFile(path, fmt, stamp)


def detect_format(path: Path) -> Format:
    """The format of a regular file, by suffix; a `.json` file holding lines is JSONL.

    Raises InvalidInput for an empty or unknown file. Call `check_input_file`
    instead, unless the file was checked already.
    """
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise InvalidInput(f"{path}: unknown file type {path.suffix or '(none)'!r}; use {known}")
    with path.open("rb") as f:
        head = f.read(65536).removeprefix(b"\xef\xbb\xbf").lstrip()  # a UTF-8 BOM is allowed
    if not head:
        raise InvalidInput(f"{path}: the file is empty")
    if fmt is Format.json and not head.startswith(b"["):
        fmt = Format.jsonl
    return fmt


def ends_with(path: Path, char: bytes) -> bool:
    """Whether the file's last non-blank byte is `char` (a JSON array must end in `]`)."""
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 4096))
        return f.read().rstrip().endswith(char)


def output_format(path: Path) -> Format:
    """The format to write, by suffix (`.json` writes JSON lines)."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput(f"{path}: unknown output type; use .jsonl, .csv or .parquet")
    return Format.jsonl if fmt is Format.json else fmt


def needs_large_objects(error: Exception) -> bool:
    """Whether DuckDB refused a JSON file only because one value exceeds its buffer."""
    return "maximum_object_size" in str(error)


def reader_sql(
    fmt: Format, columns: dict[str, str] | None = None, *, large_objects: bool = False
) -> str:
    """A DuckDB table function reading the file given as the first parameter (`?`).

    `columns` (name -> DuckDB type) fixes the schema of a JSON lines file
    instead of letting DuckDB detect it; `large_objects` lets a single JSON
    value be up to 1 GB.
    """
    size = f", maximum_object_size={_MAX_OBJECT_BYTES}" if large_objects else ""
    if fmt is Format.jsonl:
        schema = ""
        if columns:
            # Names and types are ours (never the user's), so inlining them is safe.
            schema = ", columns={" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
        return f"read_json(?, format='newline_delimited', records='true'{size}{schema})"
    if fmt is Format.json:
        return f"read_json(?, format='array', records='true'{size})"
    if fmt is Format.csv:
        # CSV carries no types: every cell is text, and JSON-valued fields are parsed later.
        return "read_csv(?, all_varchar=true, header=true)"
    return "read_parquet(?)"

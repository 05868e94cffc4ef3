"""The nesting scan agrees with a parser on how deep JSON nests, at every block boundary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaltui.ingest import nesting
from evaltui.ingest.nesting import MAX_DEPTH, too_deep

# Strings full of what could fool a scan: brackets, quotes, backslashes, newlines.
tricky_text = st.text(alphabet='[]{}"\\\n\tué ', max_size=8)
shallow = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=8,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A record nested near the limit: a shallow value wrapped in levels of lists and objects."""
    value = draw(shallow)
    for _ in range(draw(st.integers(0, MAX_DEPTH + 2))):
        value = [value] if draw(st.booleans()) else {draw(tricky_text): value}
    return {"id": draw(tricky_text), "k": value}


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(records(), min_size=1, max_size=6),
    chunk=st.sampled_from([3, 7, 64, 4096]),
    ascii_only=st.booleans(),
    indent=st.sampled_from([None, 1]),
)
def test_scan_matches_the_parsed_depth(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[dict[str, Any]],
    chunk: int,
    ascii_only: bool,
    indent: int | None,
) -> None:
    monkeypatch.setattr(nesting, "_CHUNK", chunk)
    lines = tmp_path / "cases.jsonl"
    lines.write_text("\n".join(json.dumps(r, ensure_ascii=ascii_only) for r in rows) + "\n")
    first_deep = next((n for n, r in enumerate(rows, start=1) if depth(r) > MAX_DEPTH), None)
    assert nesting._jsonl_too_deep(lines) == first_deep
    array = tmp_path / "cases.json"
    array.write_text(json.dumps(rows, ensure_ascii=ascii_only, indent=indent))
    found = nesting._array_too_deep(array)
    assert (found is not None) == (depth(rows) > MAX_DEPTH)
    for row in rows:
        assert too_deep(json.dumps(row)) == (depth(row) > MAX_DEPTH)


def test_a_line_longer_than_a_block_is_scanned_as_it_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nesting, "_CHUNK", 16)

    def line(levels: int) -> str:
        """A record `levels` deep, behind a string of brackets longer than a block."""
        arrays = levels - 1
        return '{"pad": "' + "[" * 80 + '", "k": ' + "[" * arrays + "]" * arrays + "}"

    f = tmp_path / "cases.jsonl"
    shallow_line = json.dumps({"text": "x" * 100, "k": [[1]]})
    f.write_text(
        "\n".join([shallow_line, line(MAX_DEPTH), line(MAX_DEPTH + 1)])
    )  # no final newline
    assert nesting._jsonl_too_deep(f) == 3
    f.write_text("\n".join([shallow_line, line(MAX_DEPTH)]))
    assert nesting._jsonl_too_deep(f) is None

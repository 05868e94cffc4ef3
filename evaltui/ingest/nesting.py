"""How deeply a JSON file nests, found before any parser sees it.

DuckDB's JSON reader recurses once per level and crashes the process on
JSON nested some ten thousand levels deep; Python's parser stops near a
thousand. Real cases nest a handful of levels (a chat transcript about six),
so evaltui reads at most `MAX_DEPTH` and says so.

The scan is a vectorised pass over the bytes. JSON lines are checked line by
line, as both readers parse them: a line can only nest as deeply as it has
opening brackets, so only lines with more than `MAX_DEPTH` of them (in
strings or not) are scanned exactly. A JSON array is one document, scanned
exactly throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaltui.errors import InvalidInput

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects evaltui reads in JSON."""

_CHUNK = 4 * 1024 * 1024
# Opening brackets and newlines, every opening bracket as `[`.
_OPENS = bytes.maketrans(b"{", b"[")
_NOT_OPENS = bytes(b for b in range(256) if b not in b"[{\n")
_TOO_MANY_OPENS = b"[" * (MAX_DEPTH + 1)
# What decides the depth: quotes, brackets (as `[` and `]`) and newlines.
_STRUCTURE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}\n')
_QUOTE, _OPEN, _CLOSE, _NEWLINE, _BACKSLASH = b'"[]\n\\'


def check_nesting(path: Path, *, lines: bool) -> None:
    """Raise InvalidInput naming the first line that nests deeper than `MAX_DEPTH`.

    `lines` is true for JSON lines, false for a JSON array.
    """
    line = _jsonl_too_deep(path) if lines else _array_too_deep(path)
    if line is not None:
        raise InvalidInput(
            f"{path}: line {line}: JSON nested more than {MAX_DEPTH} levels deep, the most "
            "evaltui reads; nothing was imported"
        )


def too_deep(text: str) -> bool:
    """Whether one JSON text (a CSV cell, say) nests deeper than `MAX_DEPTH`.

    >>> too_deep('{"a": [[1]]}'), too_deep("[" * 65 + "]" * 65), too_deep('"' + "[" * 99 + '"')
    (False, True, False)
    """
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    data = text.encode("utf-8", "surrogatepass")
    return _deepest(_reduce(data), _State(), lines=False) is not None


@dataclass
class _State:
    """Where a scan stands at the end of a piece: in a string or not, and how deep."""

    in_string: bool = False
    depth: int = 0


class _Scanner:
    """The exact scan, fed the file piece by piece in order."""

    def __init__(self, *, lines: bool) -> None:
        self.lines = lines
        self.line = 1
        """The line the next piece starts on."""
        self._state = _State()
        self._backslashes = b""  # they escape the next piece's first byte

    def feed(self, piece: bytes) -> int | None:
        """The first line nesting deeper than `MAX_DEPTH` in `piece`, or None."""
        data = self._backslashes + piece
        kept = data.rstrip(b"\\")
        self._backslashes = data[len(kept) :]
        structure = _reduce(kept)
        found = _deepest(structure, self._state, lines=self.lines)
        if found is not None:
            return self.line + found
        self.line += structure.count(b"\n")
        return None

    def skip(self, newlines: int) -> None:
        """Pass over whole lines known to be shallow (JSON lines only)."""
        self.line += newlines


def _jsonl_too_deep(path: Path) -> int | None:
    """The first line (1-based) nesting deeper than `MAX_DEPTH`, or None."""
    scanner = _Scanner(lines=True)
    unfinished = b""  # bytes of the line the last block ended in, not yet scanned
    unfinished_opens = b""
    mid_line = False  # part of the current line was scanned already
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            opens = block.translate(_OPENS, _NOT_OPENS)
            end = opens.rfind(b"\n")
            if end < 0:
                unfinished += block
                unfinished_opens += opens
                if len(unfinished) >= _CHUNK:  # a long line is scanned as it comes
                    if (found := scanner.feed(unfinished)) is not None:
                        return found
                    unfinished = unfinished_opens = b""
                    mid_line = True
                continue
            cut = block.rfind(b"\n") + 1
            if mid_line or _TOO_MANY_OPENS in unfinished_opens + opens[:end]:
                if (found := scanner.feed(unfinished + block[:cut])) is not None:
                    return found
            else:
                scanner.skip(opens.count(b"\n"))
            mid_line = False
            unfinished, unfinished_opens = block[cut:], opens[end + 1 :]
    if mid_line or _TOO_MANY_OPENS in unfinished_opens:
        return scanner.feed(unfinished)
    return None


def _array_too_deep(path: Path) -> int | None:
    """The first line (1-based) at which a JSON document nests deeper than `MAX_DEPTH`."""
    scanner = _Scanner(lines=False)
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            if (found := scanner.feed(block)) is not None:
                return found
    return None


def _reduce(data: bytes) -> bytes:
    """The bytes that decide the depth: quotes that open or close strings, brackets, newlines.

    Every byte a backslash escapes goes first (a backslash run is paired
    from its start, as JSON reads it), so every quote left delimits a string.
    """
    if b"\\" in data:
        a = np.frombuffer(data, dtype=np.uint8)
        at = np.flatnonzero(a == _BACKSLASH)
        starts_run = np.ones(at.size, dtype=bool)
        starts_run[1:] = at[1:] != at[:-1] + 1
        index = np.arange(at.size)
        run_start = np.maximum.accumulate(np.where(starts_run, index, 0))
        escaped = at[(index - run_start) % 2 == 0] + 1
        cleared = a.copy()
        cleared[escaped[escaped < a.size]] = 0  # 0 is not kept below
        data = cleared.tobytes()
    return data.translate(_STRUCTURE, _NOT_STRUCTURE)


def _deepest(structure: bytes, state: _State, *, lines: bool) -> int | None:
    """The first line (0-based, in `structure`) deeper than `MAX_DEPTH`, or None; updates `state`.

    A string never holds a raw newline in valid JSON, and both parsers stop
    at one, so a newline ends any string. With `lines`, it also ends the
    record, and the depth starts again at 0. A stray closing bracket counts
    as going no shallower than 0, which can only overstate the depth.
    """
    if not structure:
        return None
    a = np.frombuffer(structure, dtype=np.uint8)
    newline = a == _NEWLINE
    line = np.cumsum(newline)  # a newline belongs to the line it starts
    quote = a == _QUOTE
    quotes_before = np.cumsum(quote) - quote
    at_line_start = np.concatenate(([-int(state.in_string)], quotes_before[newline]))
    in_string = ((quotes_before - at_line_start[line]) & 1).astype(bool)
    step = ((a == _OPEN) & ~in_string).astype(np.int64) - ((a == _CLOSE) & ~in_string)
    level = np.cumsum(step) + state.depth
    if lines:
        # Each line's own running minimum, by lowering every line far below
        # the ones before it (a line's newline holds its starting level).
        span = int(max(level.max(), 0) - min(level.min(), 0)) + 1
        level -= line * span
    floor = np.minimum.accumulate(np.concatenate(([0], level)))[1:]
    depth = level - floor
    over = np.flatnonzero(depth > MAX_DEPTH)
    if over.size:
        return int(line[over[0]])
    state.depth = int(depth[-1])
    state.in_string = bool((quotes_before[-1] + quote[-1] - at_line_start[line[-1]]) & 1)
    return None

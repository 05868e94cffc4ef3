"""Moving through cases while labelling: filters, a cursor, A/B order, undo.

This is the labelling screen's logic without the screen, so it is tested on
its own and stays fast: the cursor walks cases by DuckDB rowid (import
order) one query at a time and never loads the whole project.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from typing import Any

from evaltui.errors import InvalidInput
from evaltui.store import Store


@dataclass(frozen=True)
class CaseFilter:
    """Which cases to walk: by split, tags, metadata fields and an explicit id list."""

    split: str | None = None
    tags: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    case_ids: tuple[str, ...] | None = None
    """A session's sample; None means every case."""
    kind: str | None = None
    """`single` or `pair`: the kind of case the rubric judges."""

    @classmethod
    def parse(
        cls, text: str, *, case_ids: tuple[str, ...] | None = None, kind: str | None = None
    ) -> CaseFilter:
        """Parse `split=trusted tag=vip topic=returns` (metadata fields by name).

        >>> CaseFilter.parse('split=trusted tag=vip "locale=en GB"').metadata
        (('locale', 'en GB'),)
        """
        try:
            words = shlex.split(text)
        except ValueError as e:
            raise InvalidInput(f"filter {text!r}: {e}") from None
        split: str | None = None
        tags: list[str] = []
        metadata: list[tuple[str, str]] = []
        for word in words:
            key, sep, value = word.partition("=")
            if not sep or not key or not value:
                raise InvalidInput(
                    f"filter {word!r}: expected FIELD=VALUE, e.g. split=trusted tag=vip topic=returns"
                )
            if key == "split":
                split = value
            elif key in ("tag", "tags"):
                tags.append(value)
            else:
                metadata.append((key, value))
        return cls(
            split=split, tags=tuple(tags), metadata=tuple(metadata), case_ids=case_ids, kind=kind
        )

    def describe(self) -> str:
        """The filter as the user would type it ('' for none)."""
        words = []
        if self.split is not None:
            words.append(f"split={self.split}")
        words += [f"tag={t}" for t in self.tags]
        words += [f"{k}={v}" for k, v in self.metadata]
        return " ".join(shlex.quote(w) for w in words)

    def sql(self) -> tuple[str, list[Any]]:
        """A WHERE condition over `cases` and its parameters."""
        parts = ["TRUE"]
        params: list[Any] = []
        if self.kind is not None:
            parts.append("kind = ?")
            params.append(self.kind)
        if self.split is not None:
            parts.append("split = ?")
            params.append(self.split)
        for tag in self.tags:
            parts.append("list_contains(tags, ?)")
            params.append(tag)
        for key, value in self.metadata:
            # The key is data from the user: it goes in as a JSON path parameter.
            parts.append("json_extract_string(metadata, ?) = ?")
            params += ['$."' + key.replace('"', '\\"') + '"', value]
        if self.case_ids is not None:
            parts.append("list_contains(?::VARCHAR[], id)")
            params.append(list(self.case_ids))
        return " AND ".join(parts), params


@dataclass
class Position:
    """Where the cursor is: the case's rowid and id, and its place in the filtered list."""

    rowid: int
    case_id: str
    index: int
    """0-based place among the filtered cases."""


class CaseCursor:
    """Walks the filtered cases of a project in import order, one query per move."""

    def __init__(self, store: Store, case_filter: CaseFilter | None = None) -> None:
        self.store = store
        self.filter = case_filter or CaseFilter()
        self._where, self._params = self.filter.sql()
        row = (
            store.cursor()
            .execute(f"SELECT count(*) FROM cases WHERE {self._where}", self._params)
            .fetchone()
        )
        self.total = int(row[0]) if row else 0
        """How many cases pass the filter."""
        self.position: Position | None = None

    def _one(self, condition: str, params: list[Any], order: str) -> tuple[int, str] | None:
        row = (
            self.store.cursor()
            .execute(
                f"SELECT rowid, id FROM cases WHERE {self._where} AND {condition} "
                f"ORDER BY rowid {order} LIMIT 1",
                [*self._params, *params],
            )
            .fetchone()
        )
        return (int(row[0]), str(row[1])) if row else None

    def _index_of(self, rowid: int) -> int:
        row = (
            self.store.cursor()
            .execute(
                f"SELECT count(*) FROM cases WHERE {self._where} AND rowid < ?",
                [*self._params, rowid],
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def _land(self, found: tuple[int, str] | None, index: int | None = None) -> Position | None:
        if found is None:
            return None
        rowid, case_id = found
        self.position = Position(rowid, case_id, self._index_of(rowid) if index is None else index)
        return self.position

    def first(self) -> Position | None:
        """Go to the first case."""
        return self._land(self._one("TRUE", [], "ASC"), 0)

    def next(self) -> Position | None:
        """Go to the next case; None (staying put) at the end."""
        if self.position is None:
            return self.first()
        here = self.position
        return self._land(self._one("rowid > ?", [here.rowid], "ASC"), here.index + 1)

    def previous(self) -> Position | None:
        """Go to the previous case; None (staying put) at the start."""
        if self.position is None:
            return self.first()
        here = self.position
        return self._land(self._one("rowid < ?", [here.rowid], "DESC"), here.index - 1)

    def go_to(self, case_id: str) -> Position | None:
        """Go to a case by id; None when no case passing the filter has it."""
        return self._land(self._one("id = ?", [case_id], "ASC"))

    def next_unlabelled(self, rubric: str, rater: str, *, wrap: bool = True) -> Position | None:
        """Go to the next case (after this one, then from the start) the rater has not labelled."""
        unlabelled = "id NOT IN (SELECT case_id FROM current_labels WHERE rubric = ? AND rater = ?)"
        after = self.position.rowid if self.position is not None else -1
        found = self._one(f"rowid > ? AND {unlabelled}", [after, rubric, rater], "ASC")
        if found is None and wrap:
            found = self._one(unlabelled, [rubric, rater], "ASC")
        return self._land(found)

    def labelled_count(self, rubric: str, rater: str) -> int:
        """How many of the filtered cases the rater has a current label for."""
        row = (
            self.store.cursor()
            .execute(
                f"SELECT count(*) FROM cases WHERE {self._where} AND id IN "
                "(SELECT case_id FROM current_labels WHERE rubric = ? AND rater = ?)",
                [*self._params, rubric, rater],
            )
            .fetchone()
        )
        return int(row[0]) if row else 0


def shown_swapped(seed: int, rater: str, case_id: str) -> bool:
    """Whether B is shown on the left for this rater and case: a fair coin, fixed by the seed.

    The same rater sees a case the same way every time; different raters and
    cases get independent orders, which is what cancels position bias.

    >>> shown_swapped(0, "alice", "c1") == shown_swapped(0, "alice", "c1")
    True
    """
    digest = hashlib.sha256(f"{seed}\x1f{rater}\x1f{case_id}".encode()).digest()
    return digest[0] % 2 == 1


def to_case_orientation(shown_value: str, swapped: bool) -> str:
    """A pairwise pick made on the screen (left = shown A) in the case's own A/B terms.

    >>> to_case_orientation("A", True), to_case_orientation("tie", True)
    ('B', 'tie')
    """
    if not swapped or shown_value == "tie":
        return shown_value
    return "B" if shown_value == "A" else "A"


@dataclass
class UndoEntry:
    """A label written in this sitting, with the state it replaced (to restore on undo)."""

    case_id: str
    previous_value: str | None
    previous_note: str = ""
    previous_tags: tuple[str, ...] = ()
    previous_swapped: bool | None = None


@dataclass
class Pace:
    """Cases per minute over the labels written in this sitting."""

    started: float
    count: int = 0

    def per_minute(self, now: float) -> float:
        """Labels per minute since the sitting started (0 before the first)."""
        minutes = (now - self.started) / 60
        return self.count / minutes if minutes > 0 and self.count else 0.0

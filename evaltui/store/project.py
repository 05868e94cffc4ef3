"""The project store: one DuckDB file, queried through cursors, returning domain models."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from evaltui.errors import DiskFull, InvalidInput, NotFound
from evaltui.models import Case, Judge, Label, Rater, RaterKind, Rubric, RubricStatus
from evaltui.store import guard
from evaltui.store.db import (
    Connection,
    Cursor,
    connect,
    export_disk_full,
    insert_or_ignore,
    migrate,
    now,
    transaction,
)
from evaltui.store.literals import literal
from evaltui.store.rows import (
    CASE_COLUMNS,
    LABEL_COLUMNS,
    RUBRIC_COLUMNS,
    case_from_row,
    label_from_row,
    rubric_from_row,
)
from evaltui.store.server import Address, ServerConnection, is_address

_LABEL_CHUNK = 2000

DEFAULT_DB = Path("evals.duckdb")
"""The project file used when `--db` is not given."""


class Store:
    """An open project. One per process; every call uses its own cursor.

    Every write is committed before the method returns, so a label the caller
    was told about survives the process being killed.
    """

    def __init__(
        self,
        con: Connection,
        path: Path | str,
        *,
        server: ServerConnection | None = None,
        rater: str | None = None,
    ) -> None:
        self._con = con
        self.path = path
        """Where the project lives: a file path, or `quack:HOST:PORT` for a served project."""
        self.server = server
        """The connection to `evaltui serve`, or None when the project is a file opened here."""
        self.rater = rater
        """The rater a server token belongs to; None for a file (the rater is chosen per call)."""
        self._known_raters: set[str] = set()

    @classmethod
    def open(
        cls, path: Path | str = DEFAULT_DB, *, create: bool = True, token: str | None = None
    ) -> Self:
        """Open the project at `path`: a file (created and migrated as needed) or a server.

        A `quack:HOST:PORT` path connects to `evaltui serve` with `token`.
        """
        if is_address(str(path)):
            return cls.connect(Address.parse(str(path)), token)
        if not create and not Path(path).exists():
            raise NotFound(f"no project at {path}; create one with 'evaltui init {path}'")
        con = connect(path)
        try:
            migrate(con, path)
        except BaseException:
            con.close()
            raise
        return cls(con, path)

    @classmethod
    def connect(cls, address: Address, token: str | None) -> Self:
        """Connect to a project served at `address`; the token names the rater."""
        con, rater = ServerConnection.open(address, token)
        return cls(con, str(address), server=con, rater=rater)

    def close(self) -> None:
        """Close the connection (for a file, a checkpoint folds the WAL into it)."""
        self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cursor(self) -> Cursor:
        """A fresh cursor on the project's one connection."""
        cur: Cursor = self._con.cursor()
        return cur

    def transaction(self) -> Any:
        """A cursor in a transaction, committed on success (`with store.transaction() as cur`)."""
        return transaction(self._con)

    def check_own(self, rater: str) -> None:
        """Refuse a write in another rater's name over a server: the token is the rater."""
        if self.rater is not None and rater != self.rater:
            raise InvalidInput(
                f"this token belongs to {self.rater}; on a served project every label, deferral "
                f"and adjudication is stored as {self.rater}, not {rater}"
            )

    def own_statement(self, template: str, params: list[Any], column: str) -> tuple[str, list[Any]]:
        """A statement that appends rows naming a rater; over a server, checked there too."""
        if self.server is None:
            return template, params
        return guard.own_statement(template, params, column, self.server.token)

    @property
    def location(self) -> str:
        """Where the project is, for a status line: the file, or the server and who we are there."""
        if self.server is None:
            return f"file {self.path}"
        return f"server {self.path} as {self.rater}"

    @property
    def connection_state(self) -> str:
        """'file' for a file; for a server 'connected', 'reconnecting' or 'lost'."""
        return "file" if self.server is None else self.server.state

    def ping(self) -> bool:
        """Whether the project answers (a served one reconnects if it had dropped)."""
        return True if self.server is None else self.server.ping()

    def copy_to(self, sql: str, params: Sequence[Any], out: Path, options: str) -> int:
        """Write a query's rows to the file `out` on this machine with DuckDB's COPY."""
        # COPY takes its target as a literal, not a parameter; the path is quoted.
        target = literal(str(out))
        if self.server is not None:
            try:
                return self.server.copy_to(sql, params, target, options)
            except DiskFull:  # the file is written here, not on the server
                raise export_disk_full(out) from None
        cur = self.cursor()
        cur.execute(f"COPY ({sql}) TO {target} ({options})", list(params))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        row = self.cursor().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert row is not None
        return int(row[0])

    # Cases ---------------------------------------------------------------

    def count_cases(self) -> int:
        """How many cases the project holds."""
        row = self.cursor().execute("SELECT count(*) FROM cases").fetchone()
        return int(row[0]) if row else 0

    def case_ids(self) -> list[str]:
        """Every case id, in import order."""
        return [
            r[0] for r in self.cursor().execute("SELECT id FROM cases ORDER BY rowid").fetchall()
        ]

    def get_case(self, case_id: str) -> Case:
        """The case with this id."""
        cur = self.cursor()
        row = cur.execute(f"SELECT {CASE_COLUMNS} FROM cases WHERE id = ?", [case_id]).fetchone()
        if row is None:
            raise NotFound(f"no case with id {case_id!r}")
        return case_from_row(row)

    def cases(self, offset: int = 0, limit: int = 100) -> list[Case]:
        """A window of cases in import order (never the whole table)."""
        rows = (
            self.cursor()
            .execute(
                f"SELECT {CASE_COLUMNS} FROM cases ORDER BY rowid LIMIT ? OFFSET ?",
                [limit, offset],
            )
            .fetchall()
        )
        return [case_from_row(r) for r in rows]

    def cases_by_id(self, case_ids: Sequence[str]) -> list[Case]:
        """The cases with these ids, in the order given; an unknown id is an error."""
        rows = (
            self.cursor()
            .execute(
                f"SELECT {CASE_COLUMNS} FROM cases WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                [list(case_ids)],
            )
            .fetchall()
        )
        found = {c.id: c for c in map(case_from_row, rows)}
        missing = [c for c in case_ids if c not in found]
        if missing:
            raise NotFound(f"no case with id {missing[0]!r}")
        return [found[c] for c in case_ids]

    # Rubrics -------------------------------------------------------------

    def save_rubric(self, rubric: Rubric) -> bool:
        """Store a rubric version; False when that exact version is already stored.

        A different text under an existing name and version is refused: versions
        are immutable because labels record the version they were made under.
        """
        try:
            existing = self.get_rubric(rubric.name, rubric.version)
        except NotFound:
            existing = None
        if existing is not None:
            if _rubric_text(existing) == _rubric_text(rubric):
                return False
            raise InvalidInput(
                f"rubric {rubric.name!r} version {rubric.version} already exists with different "
                f"text; give the changed rubric version {self.latest_rubric_version(rubric.name) + 1}"
            )
        self.cursor().execute(
            f"INSERT INTO rubrics ({RUBRIC_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [
                rubric.name,
                rubric.version,
                rubric.kind.value,
                rubric.status.value,
                rubric.question,
                rubric.pass_,
                rubric.fail,
                list(rubric.checklist),
                list(rubric.examples_pass),
                list(rubric.examples_fail),
                rubric.created_at or now(),
            ],
        )
        return True

    def set_rubric_status(self, name: str, version: int, status: RubricStatus) -> None:
        """Move a rubric version along its lifecycle (its text never changes)."""
        self.get_rubric(name, version)  # a clear error for an unknown rubric
        self.cursor().execute(
            "UPDATE rubrics SET status = ? WHERE name = ? AND version = ?",
            [status.value, name, version],
        )

    def latest_rubric_version(self, name: str) -> int:
        """The highest stored version of a rubric, 0 when there is none."""
        row = (
            self.cursor()
            .execute("SELECT coalesce(max(version), 0) FROM rubrics WHERE name = ?", [name])
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_rubric(self, name: str, version: int | None = None) -> Rubric:
        """A rubric version; the latest when `version` is None."""
        cur = self.cursor()
        if version is None:
            row = cur.execute(
                f"SELECT {RUBRIC_COLUMNS} FROM rubrics WHERE name = ? ORDER BY version DESC LIMIT 1",
                [name],
            ).fetchone()
        else:
            row = cur.execute(
                f"SELECT {RUBRIC_COLUMNS} FROM rubrics WHERE name = ? AND version = ?",
                [name, version],
            ).fetchone()
        if row is None:
            known = ", ".join(r.name for r in self.rubrics()) or "none yet"
            which = name if version is None else f"{name} version {version}"
            raise NotFound(
                f"no rubric {which!r} in {self.path} (rubrics: {known}); "
                "add one with 'evaltui rubric import FILE.toml'"
            )
        return rubric_from_row(row)

    def rubrics(self) -> list[Rubric]:
        """The latest version of every rubric, by name."""
        rows = (
            self.cursor()
            .execute(
                f"SELECT {RUBRIC_COLUMNS} FROM rubrics QUALIFY version = max(version) OVER "
                "(PARTITION BY name) ORDER BY name"
            )
            .fetchall()
        )
        return [rubric_from_row(r) for r in rows]

    # Judges --------------------------------------------------------------

    def save_judge(self, judge: Judge) -> bool:
        """Store a judge version; False when that version is already stored.

        Two processes saving the same new version at once both succeed (one row).
        """
        cur = self.cursor()
        if cur.execute("SELECT 1 FROM judges WHERE version = ?", [judge.version]).fetchone():
            return False
        insert_or_ignore(
            cur,
            "INSERT OR IGNORE INTO judges VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                judge.version,
                judge.rubric,
                judge.name,
                judge.model,
                judge.api_base,
                judge.prompt,
                json.dumps(judge.params, sort_keys=True),
                list(judge.few_shot),
                now(),
                judge.source,
            ],
        )
        return True

    def judges(self, rubric: str) -> list[Judge]:
        """Every judge version of a rubric, oldest first."""
        rows = (
            self.cursor()
            .execute(
                "SELECT name, rubric, model, api_base, prompt, params, few_shot, source FROM judges "
                "WHERE rubric = ? ORDER BY created_at, rowid",
                [rubric],
            )
            .fetchall()
        )
        return [
            Judge(
                name=r[0],
                rubric=r[1],
                model=r[2],
                api_base=r[3],
                prompt=r[4],
                params=json.loads(r[5]),
                few_shot=tuple(r[6]),
                source=r[7],
            )
            for r in rows
        ]

    # Sessions ------------------------------------------------------------

    def session_case_ids(self, name: str) -> tuple[str, ...]:
        """The sample of cases of a calibration session."""
        row = (
            self.cursor().execute("SELECT case_ids FROM sessions WHERE name = ?", [name]).fetchone()
        )
        if row is None:
            raise NotFound(f"no session {name!r} in {self.path}")
        return tuple(row[0])

    # Raters --------------------------------------------------------------

    def ensure_rater(self, name: str, kind: RaterKind = RaterKind.human) -> Rater:
        """The rater with this name, registering it on first use."""
        if not name.strip():
            raise InvalidInput("a rater's name must not be empty")
        if name in self._known_raters and kind is RaterKind.human:
            return Rater(name=name, kind=kind)
        cur = self.cursor()
        row = cur.execute("SELECT name, kind FROM raters WHERE name = ?", [name]).fetchone()
        if row is None:
            cur.execute("INSERT OR IGNORE INTO raters VALUES (?, ?, ?)", [name, kind.value, now()])
            row = (name, kind.value)
        rater = Rater(name=row[0], kind=RaterKind(row[1]))
        if rater.kind is RaterKind.human:
            self._known_raters.add(name)
        return rater

    def raters(self) -> list[Rater]:
        """Every known rater."""
        rows = self.cursor().execute("SELECT name, kind FROM raters ORDER BY name").fetchall()
        return [Rater(name=r[0], kind=RaterKind(r[1])) for r in rows]

    # Labels --------------------------------------------------------------

    def add_label(
        self,
        case_id: str,
        rubric: Rubric,
        rater: str,
        value: str | None,
        *,
        note: str = "",
        tags: Sequence[str] = (),
        shown_swapped: bool | None = None,
        seconds: float | None = None,
        label_id: str | None = None,
        source: str | None = None,
        case_known: bool = False,
    ) -> Label:
        """Append a label row (value None clears) and return it once committed.

        A retry with the same `label_id` is ignored, so a write repeated after a
        dropped connection is never stored twice. `case_known` skips the check
        that the case exists, for callers that just read it (the labelling screen).
        """
        if value is not None and value not in rubric.values:
            raise InvalidInput(
                f"{value!r} is not a label for {rubric.kind.value} rubric {rubric.name!r} "
                f"(use {', '.join(rubric.values)})"
            )
        if not case_known and not self._case_exists(case_id):
            raise NotFound(f"no case with id {case_id!r}")
        self.ensure_rater(rater)
        label = Label(
            id=label_id or uuid.uuid4().hex,
            case_id=case_id,
            rubric=rubric.name,
            rubric_version=rubric.version,
            rater=rater,
            value=value,
            note=note,
            tags=tuple(tags),
            shown_swapped=shown_swapped,
            seconds=seconds,
            created_at=now(),
            source=source,
        )
        self.insert_labels([label])
        return label

    def _case_exists(self, case_id: str) -> bool:
        return bool(self.cursor().execute("SELECT 1 FROM cases WHERE id = ?", [case_id]).fetchone())

    def insert_labels(self, labels: Iterable[Label]) -> None:
        """Append many already-validated label rows in one transaction."""
        rows = list(labels)
        if not rows:
            return
        for rater in {lb.rater for lb in rows}:
            self.check_own(rater)
        token = self.server.token if self.server is not None else None
        if len(rows) == 1 and token is None:  # the labelling screen's case: its own commit
            lb = rows[0]
            self.cursor().execute(
                f"INSERT OR IGNORE INTO labels (seq, {LABEL_COLUMNS}) "
                "VALUES (nextval('label_seq'), ?,?,?,?,?,?,?,?,?,?,?,?)",
                [lb.id, lb.case_id, lb.rubric, lb.rubric_version, lb.rater, lb.value, lb.note,
                 list(lb.tags), lb.shown_swapped, lb.seconds, lb.created_at or now(), lb.source],
            )  # fmt: skip
            return
        if len(rows) == 1:  # over a server the one statement checks the rater there
            _insert_label_chunk(self.cursor(), rows, token)
            return
        # One statement per chunk: each column goes in as a list, unnested in step.
        # Chunks keep a served project's statements (values written inline) small.
        with self.transaction() as cur:
            for at in range(0, len(rows), _LABEL_CHUNK):
                _insert_label_chunk(cur, rows[at : at + _LABEL_CHUNK], token)

    def current_labels(self, rubric: str, rater: str | None = None) -> list[Label]:
        """Each rater's current label per case under a rubric (all versions)."""
        sql = f"SELECT {LABEL_COLUMNS} FROM current_labels WHERE rubric = ?"
        params: list[Any] = [rubric]
        if rater is not None:
            sql += " AND rater = ?"
            params.append(rater)
        rows = self.cursor().execute(sql + " ORDER BY seq", params).fetchall()
        return [label_from_row(r) for r in rows]

    def label_history(self, case_id: str, rubric: str, rater: str) -> list[Label]:
        """Every row ever written for one rater, case and rubric, oldest first."""
        rows = (
            self.cursor()
            .execute(
                f"SELECT {LABEL_COLUMNS} FROM labels WHERE case_id = ? AND rubric = ? AND rater = ? "
                "ORDER BY seq",
                [case_id, rubric, rater],
            )
            .fetchall()
        )
        return [label_from_row(r) for r in rows]

    def label_counts(self, rubric: str) -> dict[str, int]:
        """How many current labels each rater has under a rubric."""
        rows = (
            self.cursor()
            .execute(
                "SELECT rater, count(*) FROM current_labels WHERE rubric = ? GROUP BY rater "
                "ORDER BY rater",
                [rubric],
            )
            .fetchall()
        )
        return {r[0]: int(r[1]) for r in rows}

    def current_label(self, case_id: str, rubric: str, rater: str) -> Label | None:
        """One rater's current label for one case, or None."""
        row = (
            self.cursor()
            .execute(
                f"SELECT {LABEL_COLUMNS} FROM labels WHERE case_id = ? AND rubric = ? AND rater = ? "
                "ORDER BY seq DESC LIMIT 1",
                [case_id, rubric, rater],
            )
            .fetchone()
        )
        if row is None or row[5] is None:
            return None
        return label_from_row(row)

    def labels_for_case(self, case_id: str, rubric: str) -> list[Label]:
        """Every rater's current label for one case."""
        rows = (
            self.cursor()
            .execute(
                f"SELECT {LABEL_COLUMNS} FROM current_labels WHERE case_id = ? AND rubric = ? "
                "ORDER BY rater",
                [case_id, rubric],
            )
            .fetchall()
        )
        return [label_from_row(r) for r in rows]

    def tags_in_use(self, rubric: str) -> list[str]:
        """Failure-mode tags used on any label of a rubric, most used first."""
        rows = (
            self.cursor()
            .execute(
                "SELECT tag FROM (SELECT unnest(tags) AS tag FROM current_labels WHERE rubric = ?) "
                "GROUP BY tag ORDER BY count(*) DESC, tag",
                [rubric],
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def set_deferred(self, case_id: str, rubric: str, rater: str, deferred: bool) -> None:
        """Flag (or unflag) a case for the rater to come back to."""
        self.check_own(rater)
        self.cursor().execute(
            *self.own_statement(
                guard.DEFERRAL_INSERT, [case_id, rubric, rater, deferred, now()], "rater"
            )
        )

    def deferred(self, rubric: str, rater: str) -> list[str]:
        """The cases the rater has flagged for later, oldest flag first."""
        rows = (
            self.cursor()
            .execute(
                "SELECT case_id FROM (SELECT case_id, deferred, seq, row_number() OVER "
                "(PARTITION BY case_id ORDER BY seq DESC) AS rn FROM deferrals "
                "WHERE rubric = ? AND rater = ?) WHERE rn = 1 AND deferred ORDER BY seq",
                [rubric, rater],
            )
            .fetchall()
        )
        return [r[0] for r in rows]

    def count_labels(self, rubric: str | None = None, *, current: bool = True) -> int:
        """How many labels (current ones, or every row when `current` is False)."""
        table = "current_labels" if current else "labels"
        if rubric is None:
            row = self.cursor().execute(f"SELECT count(*) FROM {table}").fetchone()
        else:
            row = (
                self.cursor()
                .execute(f"SELECT count(*) FROM {table} WHERE rubric = ?", [rubric])
                .fetchone()
            )
        return int(row[0]) if row else 0


def _rubric_text(rubric: Rubric) -> dict[str, Any]:
    return rubric.model_dump(exclude={"created_at", "status"})


def _label_columns(rows: Sequence[Label]) -> list[list[Any]]:
    return [
        [lb.id for lb in rows],
        [lb.case_id for lb in rows],
        [lb.rubric for lb in rows],
        [lb.rubric_version for lb in rows],
        [lb.rater for lb in rows],
        [lb.value for lb in rows],
        [lb.note for lb in rows],
        [list(lb.tags) for lb in rows],
        [lb.shown_swapped for lb in rows],
        [lb.seconds for lb in rows],
        [lb.created_at or now() for lb in rows],
        [lb.source for lb in rows],
    ]


def _insert_label_chunk(cur: Cursor, rows: Sequence[Label], token: str | None) -> None:
    """Labels as one statement; with a server token, the server checks each row's rater."""
    if token is None:
        cur.execute(guard.LABELS_INSERT, _label_columns(rows))
    else:
        cur.execute(*guard.own_statement(guard.LABELS_INSERT, _label_columns(rows), "rater", token))

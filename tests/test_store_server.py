"""The store over `evaltui serve`: literals that mean what DuckDB's parameters mean, a served
project that behaves like the file, one client's threads sharing one server session, and a
connection that is mended after the server or the network drops."""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from evaltui.errors import EvaltuiError, InvalidInput, NotFound
from evaltui.models import AdjudicationCause, Label, Rubric, RubricKind, RubricStatus
from evaltui.store import Store, coding, guard
from evaltui.store import project as store_project
from evaltui.store.db import now
from evaltui.store.literals import inline, literal
from evaltui.store.server import RETRY_FOR, ConnectionLost, ServerUnreachable, WriteConflict
from tests.served import Served, free_port

RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
RUBRIC_STATUS = guard.UPDATES[0]
"""The update of a rubric's status, one of the few a served project admits."""
CASES = ("c1", "c2", "c3")
HOSTILE = (
    "it's \"fine\" x'); DROP TABLE labels; --\n/* ? */ ? [bold]red[/bold] \\' \\0 \0 end 😀 \u202e"
)
"""A note that would break any statement that pasted it in unquoted."""

PROPERTY = settings(max_examples=150, deadline=None)


# SQL literals ----------------------------------------------------------------------------------

INT_EDGES = [0, 2**7, 2**15, 2**31, 2**32, 2**53, 2**63, 2**64, 2**127, 2**128, 2**200]
INTS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.sampled_from(INT_EDGES).flatmap(
        lambda edge: st.integers(min_value=edge - 2, max_value=edge + 1).flatmap(
            lambda n: st.sampled_from([n, -n])
        )
    ),
)
FLOAT_EDGES = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324, 2.2250738585072014e-308]
FLOATS = st.one_of(
    st.floats(),  # nan, both infinities, subnormals and -0.0 included
    st.sampled_from([*FLOAT_EDGES, 1.7976931348623157e308, 1e16, 1e-7, 0.1]),
)
PIECES = [
    "'", "''", '"', "\\", "\\'", "\0", "\n", "\r", "\t", "?", "$1", "$$", "--", "/*", "*/", ";",
    "[bold]", "[/]", "[link=x]", "\x1b[31m", "%s", "{0}", "\\n", "\\x00", "\\u0000", "E'", "😀",
    "\u202e", "é", "\ufeff", "\U0010ffff", "chr(0)", "||", ")", "(", "DROP TABLE t", " ",
]  # fmt: skip
TEXTS = st.one_of(st.text(), st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "str": TEXTS,
    "int": INTS,
    "float": FLOATS,
    "bool": st.booleans(),
    "none": st.none(),
    "datetime": st.datetimes(),
    "date": st.dates(),
    "bytes": st.binary(),
}


def lists_of(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Lists (some nested) whose items are of one kind, with NULLs among them.

    No NaN in a list: DuckDB's Python binding turns a NaN inside a list into NULL (a bare
    NaN stays NaN), which a literal that keeps the NaN need not copy.
    """
    items = items.filter(lambda item: not (isinstance(item, float) and math.isnan(item)))
    flat = st.lists(items | st.none(), max_size=5)
    return flat | st.lists(flat | st.none(), max_size=4)


@pytest.fixture(scope="module")
def local() -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB of this process, to compare a literal with the parameter it stands for."""
    con = duckdb.connect(":memory:")
    yield con
    con.close()


def as_parameter(con: duckdb.DuckDBPyConnection, value: Any) -> tuple[Any, ...] | None:
    return con.execute("SELECT ?, typeof(?)", [value, value]).fetchone()


def as_literal(con: duckdb.DuckDBPyConnection, value: Any) -> tuple[Any, ...] | None:
    return con.execute(inline("SELECT ?, typeof(?)", [value, value])).fetchone()


def assert_literal_means_the_parameter(con: duckdb.DuckDBPyConnection, value: Any) -> None:
    """The inlined value reads back as the bound one: same value (repr, so nan and -0.0
    count) and same DuckDB type. A value DuckDB refuses as a parameter must not be sent as
    some other value instead."""
    try:
        expected = as_parameter(con, value)
    except duckdb.Error:
        try:
            got = as_literal(con, value)
        except (ValueError, TypeError, duckdb.Error):
            return
        assert got is not None
        assert repr(got[0]) == repr(value), (
            f"DuckDB refuses {value!r} as a parameter, but its literal "
            f"{literal(value)} was read back as {got!r}"
        )
        return
    got = as_literal(con, value)
    assert repr(got) == repr(expected), f"literal {literal(value)}"


@pytest.mark.parametrize("kind", sorted(SCALARS))
@PROPERTY
@given(data=st.data())
def test_a_literal_reads_back_as_the_parameter_would(
    local: duckdb.DuckDBPyConnection, kind: str, data: st.DataObject
) -> None:
    assert_literal_means_the_parameter(local, data.draw(SCALARS[kind], label=kind))


@pytest.mark.parametrize("kind", sorted(SCALARS))
@PROPERTY
@given(data=st.data())
def test_a_list_literal_reads_back_as_the_parameter_would(
    local: duckdb.DuckDBPyConnection, kind: str, data: st.DataObject
) -> None:
    assert_literal_means_the_parameter(local, data.draw(lists_of(SCALARS[kind]), label=kind))


@pytest.mark.parametrize(
    "value",
    [-(2**31), 2**63, 2**64 - 1, -(2**63)],
    ids=["int32-min", "2**63", "uint64-max", "int64-min"],
)
def test_integers_at_the_edges_of_duckdbs_types_keep_their_type(
    local: duckdb.DuckDBPyConnection, value: int
) -> None:
    assert_literal_means_the_parameter(local, value)


def test_an_integer_beyond_128_bits_is_not_sent_as_a_rounded_double(
    local: duckdb.DuckDBPyConnection,
) -> None:
    assert_literal_means_the_parameter(local, 2**200 + 1)


@pytest.mark.parametrize("value", ["0.00000000001", "1.5", "-123456789.0123456789012"])
def test_a_decimal_reads_back_unchanged(local: duckdb.DuckDBPyConnection, value: str) -> None:
    got = as_literal(local, Decimal(value))
    assert got is not None and got[0] == Decimal(value), f"literal {literal(Decimal(value))}"


@PROPERTY
@given(
    moment=st.datetimes(
        timezones=st.builds(
            timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
        )
    )
    | st.datetimes(timezones=st.timezones())
)
def test_an_aware_datetime_is_the_same_instant(
    local: duckdb.DuckDBPyConnection, moment: datetime
) -> None:
    # DuckDB cannot bind an aware datetime here (it wants pytz), so the instant is checked.
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    try:
        got = local.execute(f"SELECT epoch_us({literal(moment)}), typeof({literal(moment)})")
    except duckdb.Error:
        return  # refused (an offset with microseconds) rather than moved
    assert got.fetchone() == (expected, "TIMESTAMP WITH TIME ZONE")


def test_question_marks_in_strings_identifiers_and_comments_are_left_alone(
    local: duckdb.DuckDBPyConnection,
) -> None:
    sql = (
        'SELECT \'?\' AS "q?", ? AS "a""?" -- is this ? a parameter\n'
        ", /* nor ? this */ 'it''s ?' AS s, ? AS \"b\" /* ? */ -- ?"
    )
    text = inline(sql, ["x'?", 7])
    cur = local.execute(text)
    assert (
        cur.fetchall() == local.execute(sql, ["x'?", 7]).fetchall() == [("?", "x'?", "it's ?", 7)]
    )
    assert [d[0] for d in cur.description] == ["q?", 'a"?', "s", "b"]
    assert inline("SELECT 1 -- ?", None) == "SELECT 1 -- ?"
    assert inline("SELECT '?'", []) == "SELECT '?'"


@pytest.mark.parametrize(
    ("sql", "values"),
    [
        ("SELECT ?", []),
        ("SELECT ?, ?", [1]),
        ("SELECT ?", [1, 2]),
        ("SELECT 1", [1]),
        ("SELECT '?'", [1]),
        ('SELECT 1 AS "?"', [1]),
        ("SELECT 1 -- ?", [1]),
        ("SELECT 1 /* ? */", [1]),
    ],
)
def test_a_count_of_values_that_does_not_fit_is_refused(sql: str, values: list[Any]) -> None:
    with pytest.raises(ValueError, match=r"\?"):
        inline(sql, values)


@pytest.mark.parametrize(
    "value",
    [object(), {"a": 1}, {1, 2}, 1j, [1, object()], [[{"x": 1}]]],
    ids=["object", "dict", "set", "complex", "list-with-object", "nested-dict"],
)
def test_a_value_with_no_literal_is_a_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match="no SQL literal"):
        inline("SELECT ?", [value])


@pytest.mark.parametrize("value", ["\ud800", "ok \udfff", ["fine", "\udc80x"]], ids=repr)
def test_a_lone_surrogate_is_refused_not_sent(value: Any) -> None:
    with pytest.raises(ValueError):
        inline("SELECT ?", [value])


@PROPERTY
@given(value=TEXTS)
@example(value="x'); DROP TABLE t; --")
@example(value="x'; DELETE FROM t WHERE ''='")
@example(value="\0'); DROP TABLE t; --")
@example(value="x' || (SELECT 'injected') || '")
def test_a_hostile_string_is_stored_verbatim_and_nothing_else_runs(
    local: duckdb.DuckDBPyConnection, value: str
) -> None:
    local.execute("CREATE OR REPLACE TABLE t (k INTEGER, v VARCHAR)")
    local.execute("INSERT INTO t VALUES (0, 'before')")
    # execute() runs every statement in its text: an escape from the quotes would run.
    local.execute(inline("INSERT INTO t VALUES (?, ?)", [1, value]))
    assert local.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [(0, "before"), (1, value)]
    assert local.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (1,)


# A served project ------------------------------------------------------------------------------


def add_cases(store: Store, *ids: str) -> None:
    for case_id in ids:
        store.cursor().execute(
            "INSERT INTO cases (id, kind, input, output, metadata, tags) "
            "VALUES (?, 'single', 'q', 'a', '{}', [])",
            [case_id],
        )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project file with three cases and no rubric."""
    path = tmp_path / "evals.duckdb"
    with Store.open(path) as store:
        add_cases(store, *CASES)
    return path


@pytest.fixture
def server(project: Path) -> Iterator[Served]:
    with Served(project, raters=["alice", "bob"]) as served:
        yield served


@contextlib.contextmanager
def connected(address: str, token: str) -> Iterator[Store]:
    store = Store.open(address, token=token)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def remote(server: Served) -> Iterator[Store]:
    """alice's store on the served project."""
    with connected(server.address, server.tokens["alice"]) as store:
        yield store


def label_rows(store: Store, label_id: str) -> int:
    row = store.cursor().execute("SELECT count(*) FROM labels WHERE id = ?", [label_id]).fetchone()
    assert row is not None
    return int(row[0])


def shape(label: Label | None) -> tuple[Any, ...] | None:
    """What a label says, without its random id and its time."""
    if label is None:
        return None
    assert isinstance(label.created_at, datetime)
    return (
        label.case_id,
        label.rubric,
        label.rubric_version,
        label.rater,
        label.value,
        label.note,
        label.tags,
        label.shown_swapped,
        label.seconds,
        label.source,
    )


def typical_round(
    store: Store, bob: Store | None = None, carol: Store | None = None
) -> list[object]:
    """What a labelling session does to a project; returns what it saw along the way.

    On a served project each rater writes with their own token (`bob`, `carol`).
    """
    bob, carol = bob or store, carol or store
    seen: list[object] = []
    assert store.save_rubric(RUBRIC) is True
    assert store.save_rubric(RUBRIC) is False
    with pytest.raises(InvalidInput, match="already exists with different text"):
        store.save_rubric(RUBRIC.model_copy(update={"question": "Is it better?"}))
    assert store.get_rubric("ok").status is RubricStatus.draft
    store.set_rubric_status("ok", 1, RubricStatus.approved)  # an UPDATE
    assert store.get_rubric("ok", 1).status is RubricStatus.approved
    with pytest.raises(NotFound):
        store.set_rubric_status("nope", 1, RubricStatus.approved)
    rubric = store.get_rubric("ok")
    seen.append(rubric.model_dump(exclude={"created_at"}))

    store.add_label(
        "c1", rubric, "alice", "pass", note=HOSTILE, tags=["a'b", "?", "--"], seconds=1.5
    )
    store.add_label("c1", rubric, "alice", "fail", note="second look", shown_swapped=True)
    store.add_label("c2", rubric, "alice", "pass", label_id="retried", seconds=0.0)
    store.add_label("c2", rubric, "alice", "pass", label_id="retried")  # a retry: ignored
    bob.add_label("c3", rubric, "bob", "fail", tags=["tone"])
    bob.add_label("c3", rubric, "bob", None)  # cleared
    with pytest.raises(InvalidInput, match="'maybe' is not a label"):
        store.add_label("c1", rubric, "alice", "maybe")
    with pytest.raises(NotFound, match="no case with id 'nope'"):
        store.add_label("nope", rubric, "alice", "pass")
    assert label_rows(store, "retried") == 1

    history = store.label_history("c1", "ok", "alice")
    assert [label.value for label in history] == ["pass", "fail"]
    assert history[0].note == HOSTILE
    assert history[0].tags == ("a'b", "?", "--")
    seen += [shape(label) for label in history]
    seen += [shape(label) for label in store.current_labels("ok")]
    seen += [shape(label) for label in store.current_labels("ok", "bob")]
    seen += [shape(label) for label in store.labels_for_case("c1", "ok")]
    seen.append(shape(store.current_label("c3", "ok", "bob")))
    seen.append(store.label_counts("ok"))
    seen.append(store.count_labels(current=False))
    seen.append(store.tags_in_use("ok"))
    seen.append([rater.name for rater in store.raters()])

    # Failure modes: INSERT ... RETURNING, then UPDATEs.
    tone = coding.create_mode(store, "ok", "tone", "how it 'sounds'")
    facts = coding.create_mode(store, "ok", "facts")
    assert facts.id != tone.id
    with pytest.raises(InvalidInput, match="already exists"):
        coding.create_mode(store, "ok", "tone")
    coding.rename_mode(store, tone.id, "tone of voice")
    current = store.current_label("c1", "ok", "alice")
    assert current is not None
    coding.assign(store, current, facts.id)
    coding.merge_modes(store, facts.id, tone.id)
    seen.append([(m.id, m.name, m.description) for m in coding.modes(store, "ok")])
    seen.append([(r.mode.name, r.count, r.examples) for r in coding.ranking(store, "ok")])
    assert [(r.mode.name, r.count) for r in coding.ranking(store, "ok")] == [("tone of voice", 1)]

    coding.adjudicate(carol, "c1", "ok", "pass", AdjudicationCause.rubric_gap, HOSTILE, "carol")
    gold = coding.adjudications(store, "ok")
    assert gold["c1"].rationale == HOSTILE
    seen.append({c: (a.value, a.cause, a.rationale, a.adjudicator) for c, a in gold.items()})

    store.set_deferred("c2", "ok", "alice", True)
    store.set_deferred("c3", "ok", "alice", True)
    store.set_deferred("c2", "ok", "alice", False)
    assert store.deferred("ok", "alice") == ["c3"]
    seen.append(store.deferred("ok", "bob"))
    return seen


def test_a_served_project_behaves_like_the_file(project: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin.duckdb"
    shutil.copyfile(project, twin)
    with Store.open(twin) as store:
        store.ensure_rater("carol")  # serve made each token holder a rater
        on_file = typical_round(store)

    with Served(project, raters=["alice", "bob", "carol"]) as served:
        store = Store.open(served.address, token=served.tokens["alice"])
        bob = Store.open(served.address, token=served.tokens["bob"])
        carol = Store.open(served.address, token=served.tokens["carol"])
        with store, bob, carol:
            assert store.connection_state == "connected"
            assert store.location == f"server {served.address} as alice"
            on_server = typical_round(store, bob, carol)
            assert store.connection_state == "connected"
    assert on_server == on_file

    # What the server wrote is in the file, verbatim, with nothing dropped.
    with Store.open(project) as store:
        (first, _) = store.label_history("c1", "ok", "alice")
        assert first.note == HOSTILE
        assert store.count_labels(current=False) == 5
        assert store.get_rubric("ok").status is RubricStatus.approved


def test_an_error_inside_a_transaction_rolls_back_everything_on_the_server(
    remote: Store,
) -> None:
    remote.save_rubric(RUBRIC)
    with pytest.raises(RuntimeError, match="changed my mind"), remote.transaction() as cur:
        cur.execute("INSERT INTO raters VALUES ('zed', 'human', ?)", [now()])
        remote.add_label("c1", RUBRIC, "alice", "pass", label_id="in-tx")
        coding.create_mode(remote, "ok", "never")
        remote.set_rubric_status("ok", 1, RubricStatus.retired)
        raise RuntimeError("changed my mind")
    assert "zed" not in [r.name for r in remote.raters()]
    assert label_rows(remote, "in-tx") == 0
    assert coding.modes(remote, "ok") == []
    assert remote.get_rubric("ok").status is RubricStatus.draft

    # A statement the server refuses: the same, and the session is not left in a failed
    # transaction (the next statements, and the next transaction, work).
    with pytest.raises(duckdb.Error, match=r"(?i)duplicate key"), remote.transaction() as cur:
        cur.execute("INSERT INTO raters VALUES ('yan', 'human', ?)", [now()])
        cur.execute("INSERT INTO raters VALUES ('yan', 'human', ?)", [now()])
    assert "yan" not in [r.name for r in remote.raters()]
    remote.add_label("c2", RUBRIC, "alice", "fail", label_id="after")
    with remote.transaction() as cur:
        cur.execute("INSERT INTO raters VALUES ('yan', 'human', ?)", [now()])
    assert "yan" in [r.name for r in remote.raters()]
    assert label_rows(remote, "after") == 1
    with pytest.raises(duckdb.Error, match=r"(?i)duplicate key"):
        remote.cursor().execute("INSERT INTO raters VALUES ('yan', 'human', ?)", [now()])
    assert remote.count_labels(current=False) == 1
    assert remote.connection_state == "connected"


def test_a_wrong_token_and_no_token_are_refused(server: Served) -> None:
    with pytest.raises(EvaltuiError, match="refused the token"):
        Store.open(server.address, token="not-a-token")
    with pytest.raises(InvalidInput, match="needs the token"):
        Store.open(server.address)


# One client, several threads -------------------------------------------------------------------


def test_threads_share_the_connection_without_losing_or_mixing_writes(remote: Store) -> None:
    remote.save_rubric(RUBRIC)
    remote.ensure_rater("alice")
    writes = 150
    errors: list[BaseException] = []
    counts_seen: list[tuple[int, int]] = []
    pings: list[bool] = []
    start = threading.Barrier(3)
    writer_done = threading.Event()

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                start.wait(timeout=30)
                work()
            except BaseException as error:
                errors.append(error)

        return run

    def write() -> None:
        try:
            for n in range(writes):
                remote.add_label(
                    CASES[n % 3], RUBRIC, "alice", ("pass", "fail")[n % 2], label_id=f"w{n}",
                    case_known=True,
                )  # fmt: skip
        finally:
            writer_done.set()

    def read_and_transact() -> None:
        n = 0
        while not writer_done.is_set() or n < 5:
            remote.current_labels("ok")
            remote.label_counts("ok")
            with remote.transaction() as cur:
                cur.execute("INSERT INTO raters VALUES (?, 'human', ?)", [f"kept{n}", now()])
                first = cur.execute("SELECT count(*) FROM labels").fetchone()
                time.sleep(0.01)  # the writer is waiting to be let in
                second = cur.execute("SELECT count(*) FROM labels").fetchone()
                assert first is not None and second is not None
                counts_seen.append((first[0], second[0]))
            # A transaction rolled back: a label of the writer's must not have slipped into it.
            with contextlib.suppress(RuntimeError), remote.transaction() as cur:
                cur.execute("INSERT INTO raters VALUES (?, 'human', ?)", [f"dropped{n}", now()])
                time.sleep(0.01)
                raise RuntimeError("roll back")
            n += 1

    def heartbeat() -> None:
        while not writer_done.is_set():
            pings.append(remote.ping())
            time.sleep(0.005)

    threads = [
        threading.Thread(target=guarded(job)) for job in (write, read_and_transact, heartbeat)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert remote.count_labels(current=False) == writes
    ids = {r[0] for r in remote.cursor().execute("SELECT id FROM labels").fetchall()}
    assert ids == {f"w{n}" for n in range(writes)}
    names = {r.name for r in remote.raters()}
    assert {f"kept{n}" for n in range(len(counts_seen))} <= names
    assert not any(name.startswith("dropped") for name in names)
    # Inside a transaction nothing of the writer's arrived: the lock kept it out.
    assert all(first == second for first, second in counts_seen)
    assert len(counts_seen) >= 5
    assert all(pings)


def test_a_write_that_conflicts_with_another_raters_transaction_waits_for_it(
    server: Served,
) -> None:
    with (
        connected(server.address, server.tokens["alice"]) as alice,
        connected(server.address, server.tokens["bob"]) as bob,
    ):
        alice.save_rubric(RUBRIC)
        outcome: list[object] = []

        def bob_retires() -> None:
            try:
                bob.set_rubric_status("ok", 1, RubricStatus.retired)
                outcome.append("stored")
            except BaseException as error:
                outcome.append(error)

        with alice.transaction() as cur:
            cur.execute(RUBRIC_STATUS, ["approved", "ok", 1])
            other = threading.Thread(target=bob_retires)
            other.start()
            time.sleep(0.5)  # bob's UPDATE meets alice's open one on the same row
        other.join(timeout=RETRY_FOR + 10)
        # The server rolled bob's statement back: it was never applied, so sending it again
        # once alice committed is safe (the docstring of store/server.py promises as much).
        assert outcome == ["stored"]
        assert alice.get_rubric("ok").status is RubricStatus.retired


# A dropped server --------------------------------------------------------------------------------


class Restarts:
    """`evaltui serve` started again on the same file and port, later; all stopped at the end.

    No --rater: the tokens issued before are kept in the file.
    """

    def __init__(self, project: Path) -> None:
        self.project = project
        self.servers: list[Served] = []
        self._threads: list[threading.Thread] = []

    def later(self, port: int, delay: float) -> threading.Thread:
        def run() -> None:
            time.sleep(delay)
            self.servers.append(Served(self.project, raters=(), port=port).start())

        thread = threading.Thread(target=run)
        thread.start()
        self._threads.append(thread)
        return thread

    def close(self) -> None:
        for thread in self._threads:
            thread.join(timeout=60)  # so no server starts after the test has ended
        for served in self.servers:
            served.stop()


@pytest.fixture
def restarts(project: Path) -> Iterator[Restarts]:
    started = Restarts(project)
    try:
        yield started
    finally:
        started.close()


def test_a_label_written_while_the_server_restarts_is_stored_once(
    project: Path, restarts: Restarts
) -> None:
    first = Served(project, raters=["alice"]).start()
    restarts.servers.append(first)
    with connected(first.address, first.tokens["alice"]) as store:
        states: list[str] = []
        assert store.server is not None
        store.server.on_state = states.append
        store.save_rubric(RUBRIC)
        store.add_label("c1", RUBRIC, "alice", "pass", label_id="before")
        first.kill()
        back = restarts.later(first.port, 1.5)
        began = time.monotonic()
        label = store.add_label("c1", RUBRIC, "alice", "fail", label_id="during")
        took = time.monotonic() - began
        back.join(timeout=60)
        assert 1.0 < took < RETRY_FOR
        assert label.id == "during"
        assert store.connection_state == "connected"
        assert states[0] == "reconnecting" and states[-1] == "connected"
        assert label_rows(store, "before") == label_rows(store, "during") == 1
        assert [lb.value for lb in store.label_history("c1", "ok", "alice")] == ["pass", "fail"]
        assert store.rater == "alice"


def test_a_server_gone_longer_than_retry_for_is_reported_then_found_again(
    project: Path, restarts: Restarts
) -> None:
    first = Served(project, raters=["alice"]).start()
    restarts.servers.append(first)
    with connected(first.address, first.tokens["alice"]) as store:
        assert store.server is not None
        store.server.retry_for = 1.0
        store.save_rubric(RUBRIC)
        first.kill()
        began = time.monotonic()
        with pytest.raises(ServerUnreachable) as caught:
            store.add_label("c1", RUBRIC, "alice", "pass", label_id="patient")
        took = time.monotonic() - began
        assert 0.9 < took < 5.0
        message = str(caught.value)
        assert isinstance(caught.value, EvaltuiError)
        assert first.address in message and "try again" in message
        assert "\n" not in message and "IO Error" not in message
        assert store.connection_state == "lost"
        assert store.ping() is False

        restarts.later(first.port, 0.0).join(timeout=60)
        assert store.ping() is True
        assert store.connection_state == "connected"
        # The rater presses the key again: the same label id, stored once.
        store.add_label("c1", RUBRIC, "alice", "pass", label_id="patient")
        store.add_label("c1", RUBRIC, "alice", "pass", label_id="patient")
        assert label_rows(store, "patient") == 1


def test_a_server_restart_inside_a_transaction_is_a_connection_lost(
    project: Path, restarts: Restarts
) -> None:
    first = Served(project, raters=["alice"]).start()
    restarts.servers.append(first)
    with connected(first.address, first.tokens["alice"]) as store:
        lost = pytest.raises(ConnectionLost, match="may not have been stored")
        with lost, store.transaction() as cur:
            cur.execute("INSERT INTO raters VALUES ('zed', 'human', ?)", [now()])
            first.kill()
            restarts.later(first.port, 1.0)
            cur.execute("SELECT count(*) FROM raters")
        assert "zed" not in [r.name for r in store.raters()]  # it was never committed
        with store.transaction() as cur:
            cur.execute("INSERT INTO raters VALUES ('yan', 'human', ?)", [now()])
        assert "yan" in [r.name for r in store.raters()]
        assert store.connection_state == "connected"


# A dropped network, through a relay the test controls --------------------------------------------


class Relay:
    """A TCP relay between a client and `evaltui serve` that can be cut like a cable, or made to
    lose the server's reply to one request (the request itself arrives and runs)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.port = 0
        self.sent = bytearray()
        """Every byte the client sent, to count what reached the server."""
        self._lose_after: bytes | None = None
        self._cut_on_loss = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    @property
    def address(self) -> str:
        return f"quack:127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Listen (again, on the same port)."""
        listener = socket.create_server(("127.0.0.1", self.port))
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and close every open connection."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def lose_reply_to(self, marker: bytes, *, then_cut: bool = False) -> None:
        """Drop the connection instead of delivering the reply to the next request with `marker`;
        with `then_cut`, the relay is cut as that reply arrives (down until `restore`)."""
        with self._lock:
            self._lose_after = marker
            self._cut_on_loss = then_cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, upstream]
            doomed = threading.Event()
            threading.Thread(
                target=self._pump, args=(client, upstream, doomed, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, doomed, False), daemon=True
            ).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, doomed: threading.Event, up: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                if up:
                    with self._lock:
                        self.sent += data
                        if self._lose_after is not None and self._lose_after in data:
                            self._lose_after = None
                            doomed.set()  # before the request goes on, so before any reply
                elif doomed.is_set():
                    if self._cut_on_loss:  # the request ran: now the network goes down
                        self._cut_on_loss = False
                        self.cut()
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def relayed(server: Served) -> Iterator[tuple[Relay, Store]]:
    """alice's store, reaching the server through a relay."""
    relay = Relay(server.port)
    try:
        with connected(relay.address, server.tokens["alice"]) as store:
            store.save_rubric(RUBRIC)
            store.ensure_rater("alice")
            yield relay, store
    finally:
        relay.cut()


def test_a_cut_connection_is_mended_without_a_server_restart(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    relay.cut()
    relay.restore()
    assert store.current_labels("ok") == []  # the first statement after the cut just works

    states: list[str] = []
    assert store.server is not None
    store.server.on_state = states.append
    relay.cut()
    timer = threading.Timer(1.0, relay.restore)
    timer.start()
    try:
        # An UPDATE the server never received is sent again once it can be.
        store.set_rubric_status("ok", 1, RubricStatus.approved)
    finally:
        timer.join()
    assert states == ["reconnecting", "connected"]
    relay.cut()
    timer = threading.Timer(0.5, relay.restore)
    timer.start()
    try:
        store.add_label("c1", RUBRIC, "alice", "pass", label_id="through")
    finally:
        timer.join()
    assert store.get_rubric("ok").status is RubricStatus.approved
    assert label_rows(store, "through") == 1
    assert store.connection_state == "connected"


def test_a_label_whose_reply_was_lost_is_sent_again_and_stored_once(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    marker = b"INSERT OR IGNORE INTO labels"
    relay.lose_reply_to(marker)
    store.add_label("c1", RUBRIC, "alice", "pass", label_id="once", case_known=True)
    assert relay.sent.count(marker) == 2  # it ran, its reply was lost, it was sent again
    assert label_rows(store, "once") == 1
    assert store.connection_state == "connected"


def test_a_plain_write_whose_reply_was_lost_is_reported_not_repeated(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    relay.lose_reply_to(b"INSERT INTO deferrals")
    with pytest.raises(ConnectionLost, match="may not have been stored"):
        store.set_deferred("c1", "ok", "alice", True)
    assert relay.sent.count(b"INSERT INTO deferrals") == 1
    row = store.cursor().execute("SELECT count(*) FROM deferrals").fetchone()
    assert row == (1,)  # it did run once; sending it again would have stored it twice
    assert store.connection_state == "connected"


def test_a_batch_whose_commit_reply_was_lost_is_stored_once_when_retried(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    labels = [
        Label(
            id=f"batch{n}", case_id=case_id, rubric="ok", rubric_version=1, rater="alice",
            value="pass", created_at=now(),
        )
        for n, case_id in enumerate(CASES)
    ]  # fmt: skip
    relay.lose_reply_to(b"COMMIT")
    with pytest.raises(ConnectionLost):
        store.insert_labels(labels)
    assert store.count_labels(current=False) == 3  # committed; only the reply was lost
    store.insert_labels(labels)  # the retry, with the same ids
    assert [label_rows(store, f"batch{n}") for n in range(3)] == [1, 1, 1]
    assert store.count_labels(current=False) == 3


def test_a_reply_lost_inside_a_transaction_is_a_connection_lost_and_stores_nothing(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    relay.lose_reply_to(b"INSERT INTO raters")
    with pytest.raises(ConnectionLost), store.transaction() as cur:
        cur.execute("INSERT INTO raters VALUES ('zed', 'human', ?)", [now()])
        cur.execute(RUBRIC_STATUS, ["retired", "ok", 1])
    assert "zed" not in [r.name for r in store.raters()]
    assert store.get_rubric("ok").status is RubricStatus.draft
    with store.transaction() as cur:  # no transaction left half open on this side
        cur.execute("INSERT INTO raters VALUES ('yan', 'human', ?)", [now()])
    assert "yan" in [r.name for r in store.raters()]


# Opening an address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["quack:", "quack:host:99999", "quack:ho st:1", "quack:localhost:0", "quack:host:port"],
)
def test_a_malformed_address_is_refused_readably(address: str) -> None:
    with pytest.raises(EvaltuiError, match="is not a server address; write it as quack:HOST:PORT"):
        Store.open(address, token="t")


def test_nothing_listening_is_reported_at_once() -> None:
    address = f"quack:127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(ServerUnreachable, match="nothing answers at") as caught:
        Store.open(address, token="t")
    assert time.monotonic() - began < min(3.0, RETRY_FOR / 3)
    assert address in str(caught.value)
    assert "\n" not in str(caught.value)


# Review mends: a lost reply then a lasting outage, a server given up on, a lasting conflict,
# labels imported in chunks ---------------------------------------------------------------------


def test_a_label_whose_reply_was_lost_before_a_lasting_outage_may_have_been_stored(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    assert store.server is not None
    store.server.retry_for = 1.0
    marker = b"INSERT OR IGNORE INTO labels"
    relay.lose_reply_to(marker, then_cut=True)  # the label runs, then the network goes down
    began = time.monotonic()
    with pytest.raises(ConnectionLost, match="may not have been stored") as caught:
        store.add_label("c1", RUBRIC, "alice", "pass", label_id="landed", case_known=True)
    took = time.monotonic() - began
    assert 0.9 < took < 5.0  # it kept trying for retry_for, then gave up
    assert "nothing was stored" not in str(caught.value)
    assert relay.sent.count(marker) == 1
    assert store.connection_state == "lost"
    relay.restore()
    assert label_rows(store, "landed") == 1  # it had been stored: "nothing" would have lied
    assert store.connection_state == "connected"


def test_a_read_whose_reply_was_lost_is_not_reported_as_a_write(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    assert store.server is not None
    store.server.retry_for = 0.5
    relay.lose_reply_to(b"FROM current_labels", then_cut=True)
    with pytest.raises(ServerUnreachable) as caught:
        store.current_labels("ok")
    assert not isinstance(caught.value, ConnectionLost)
    assert "during a write" not in str(caught.value)
    relay.restore()


def test_a_server_given_up_on_gets_one_attempt_per_statement_until_it_is_back(
    relayed: tuple[Relay, Store],
) -> None:
    relay, store = relayed
    assert store.server is not None
    store.server.retry_for = 0.5
    relay.cut()
    with pytest.raises(ServerUnreachable):
        store.current_labels("ok")
    assert store.connection_state == "lost"

    store.server.retry_for = 5.0
    for _ in range(2):  # each step fails at once, not after another 5 s
        began = time.monotonic()
        with pytest.raises(ServerUnreachable, match="lost the server"):
            store.add_label("c1", RUBRIC, "alice", "pass", label_id="later", case_known=True)
        assert time.monotonic() - began < 1.5
        assert store.connection_state == "lost"

    relay.restore()
    sent = len(relay.sent)
    began = time.monotonic()
    store.add_label("c1", RUBRIC, "alice", "pass", label_id="later", case_known=True)
    assert time.monotonic() - began < 1.5
    assert relay.sent[sent:].count(b"INSERT OR IGNORE INTO labels") == 1  # one attempt did it
    assert store.connection_state == "connected"
    assert label_rows(store, "later") == 1


def test_a_write_conflict_that_outlasts_retry_for_is_a_readable_error(server: Served) -> None:
    with (
        connected(server.address, server.tokens["alice"]) as alice,
        connected(server.address, server.tokens["bob"]) as bob,
    ):
        alice.save_rubric(RUBRIC)
        assert bob.server is not None
        bob.server.retry_for = 0.5
        with alice.transaction() as cur:
            cur.execute(RUBRIC_STATUS, ["approved", "ok", 1])
            began = time.monotonic()
            with pytest.raises(WriteConflict) as caught:  # alice's transaction stays open
                bob.set_rubric_status("ok", 1, RubricStatus.retired)
            took = time.monotonic() - began
        assert 0.4 < took < 5.0  # it did wait for alice, for retry_for
        error = caught.value
        assert isinstance(error, EvaltuiError) and not isinstance(error, duckdb.Error)
        message = str(error)
        assert "another rater" in message and server.address in message
        assert "nothing was stored" in message and "try again" in message
        assert "\n" not in message and "Conflict" not in message
        assert bob.connection_state == "connected"  # a conflict is not a lost server
        assert alice.get_rubric("ok").status is RubricStatus.approved  # bob's never applied
        bob.set_rubric_status("ok", 1, RubricStatus.retired)  # alice has committed: it goes in
        assert alice.get_rubric("ok").status is RubricStatus.retired


def numbered_labels(prefix: str, count: int) -> list[Label]:
    return [
        Label(
            id=f"{prefix}{n}", case_id=CASES[n % 3], rubric="ok", rubric_version=1, rater="alice",
            value=("pass", "fail")[n % 2], note=HOSTILE if n % 1000 == 7 else f"n{n}",
            tags=("t'ag",) if n % 2 else (), created_at=now(),
        )
        for n in range(count)
    ]  # fmt: skip


def count_with_prefix(store: Store, prefix: str) -> int:
    row = (
        store.cursor()
        .execute("SELECT count(*) FROM labels WHERE starts_with(id, ?)", [prefix])
        .fetchone()
    )
    assert row is not None
    return int(row[0])


def test_5000_labels_go_to_the_server_in_chunks_of_2000_and_all_or_nothing(
    remote: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote.save_rubric(RUBRIC)
    remote.ensure_rater("alice")
    chunks: list[int] = []
    fail_third = [True]
    real_chunk = store_project._insert_label_chunk

    def chunk(cur: Any, rows: Any, token: Any) -> None:
        chunks.append(len(rows))
        if fail_third[0] and len(chunks) == 3:
            raise RuntimeError("the third chunk failed")
        real_chunk(cur, rows, token)

    monkeypatch.setattr(store_project, "_insert_label_chunk", chunk)
    with pytest.raises(RuntimeError, match="third chunk"):
        remote.insert_labels(numbered_labels("gone", 5000))
    assert chunks == [2000, 2000, 1000]
    # The first two chunks had run on the server, in the transaction that was rolled back.
    assert count_with_prefix(remote, "gone") == 0
    assert remote.count_labels(current=False) == 0
    assert remote.connection_state == "connected"

    chunks.clear()
    fail_third[0] = False
    labels = numbered_labels("kept", 5000)
    remote.insert_labels(labels)
    assert chunks == [2000, 2000, 1000]
    assert count_with_prefix(remote, "kept") == 5000
    rows = remote.cursor().execute("SELECT id, note, tags FROM labels").fetchall()
    assert sorted(rows) == sorted((lb.id, lb.note, list(lb.tags)) for lb in labels)
    remote.insert_labels(labels)  # the same import again: ignored, not doubled
    assert remote.count_labels(current=False) == 5000

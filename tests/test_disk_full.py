"""A full disk while labelling: one sentence (a notice in the TUI), the app stays up, nothing
confirmed is lost, and the same key stores the label once space is freed.

Where the machine lets the test mount a small tmpfs (root in a container), the disk is
really full: the project lives on a 16 MB tmpfs filled to the last byte. Everywhere,
the same screens are also driven over a project whose writes fail as DuckDB's do on
a full disk (the error type and message measured on that tmpfs:
`TransactionException: TransactionContext Error: Failed to commit: Could not write
file ".../evals.duckdb.wal": No space left on device`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evaltui.config import Config
from evaltui.errors import DiskFull
from evaltui.judge.prompt import default_template
from evaltui.judge.runner import RunOptions, plan, run
from evaltui.models import Judge, Rubric, RubricKind
from evaltui.store import Store
from evaltui.store.verdicts import verdicts
from evaltui.ui.app import EvaltuiApp
from tests.conftest import Result, write_jsonl
from tests.loopback import LoopbackServer
from tests.served import Served

RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
SENTENCE = "is full: free some space and try again (the write that failed stored nothing)"


def _project(db: Path, n: int = 3) -> None:
    with Store.open(db) as store:
        store.save_rubric(RUBRIC)
        for i in range(n):
            store.cursor().execute(
                "INSERT INTO cases (id, kind, input, output, metadata, tags) "
                "VALUES (?, 'single', 'q', 'a', '{}', [])",
                [f"c{i}"],
            )


class Tmpfs:
    """A 16 MB tmpfs holding the project, filled to the last byte on demand."""

    kind = "tmpfs"

    def __init__(self, mount: Path) -> None:
        self.mount = mount
        self.db = mount / "evals.duckdb"
        self._filler = mount / "filler"

    def attach(self, store: Store) -> None:
        """Nothing to do: the disk is real."""

    def fill(self, store: Store | None = None) -> None:
        """Take every free byte. A checkpoint first empties the WAL, so the next commit
        needs a page of its own (a WAL page with room left would take a small write)."""
        if store is not None:
            store.cursor().execute("CHECKPOINT")
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for size in (1 << 20, 4096, 1):
                try:
                    while True:
                        os.write(fd, b"x" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)

    def free(self) -> None:
        """Give the space back."""
        self._filler.unlink()


class _FullCursor:
    """A DuckDB cursor whose writes fail as they do on a full disk, while `disk.full`."""

    def __init__(self, disk: Simulated, cur: Any) -> None:
        self._disk = disk
        self._cur = cur

    def execute(self, sql: str, params: Any = None) -> Any:
        if self._disk.full and sql.lstrip().upper().startswith(
            ("INSERT", "UPDATE", "DELETE", "CREATE", "COMMIT")
        ):
            raise duckdb.TransactionException(
                "TransactionContext Error: Failed to commit: Could not write file "
                f'"{self._disk.db}.wal": No space left on device'
            )
        return self._cur.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


class Simulated:
    """The project on an ordinary disk; while full, its writes fail as DuckDB's do."""

    kind = "simulated"

    def __init__(self, folder: Path) -> None:
        self.db = folder / "evals.duckdb"
        self.full = False

    def attach(self, store: Store) -> None:
        """Put the failing cursors under the store's own (its DuckDB connection's)."""
        connection = store._con._con  # type: ignore[attr-defined]
        disk = self

        class Connection:
            def cursor(self) -> _FullCursor:
                return _FullCursor(disk, connection.cursor())

            def close(self) -> None:
                connection.close()

        store._con._con = Connection()  # type: ignore[attr-defined]

    def fill(self, store: Store | None = None) -> None:
        self.full = True

    def free(self) -> None:
        self.full = False


def _mount(target: Path) -> bool:
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    """A real small disk, or the test is skipped where one cannot be mounted."""
    mount = tmp_path / "disk"
    try:
        mounted = _mount(mount)
    except OSError:
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield Tmpfs(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(params=["tmpfs", "simulated"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Tmpfs | Simulated:
    if request.param == "tmpfs":
        real: Tmpfs = request.getfixturevalue("tmpfs")
        return real
    return Simulated(tmp_path)


# The store ------------------------------------------------------------------------


def test_a_full_disk_is_a_sentence_and_labels_go_in_once_space_is_freed(
    disk: Tmpfs | Simulated,
) -> None:
    _project(disk.db)
    with Store.open(disk.db) as store:
        disk.attach(store)
        store.add_label("c0", RUBRIC, "alice", "pass")
        disk.fill(store)
        with pytest.raises(DiskFull) as raised:
            store.add_label("c1", RUBRIC, "alice", "fail", note="n" * 5000)
        assert str(raised.value) == f"the disk holding {disk.db} {SENTENCE}"
        with pytest.raises(DiskFull):  # many rows in one transaction: the same sentence
            store.insert_labels(
                [store.current_labels("ok")[0].model_copy(update={"id": f"x{i}"}) for i in (1, 2)]
            )
        assert store.count_labels(current=False) == 1  # reading still works
        disk.free()
        store.add_label("c1", RUBRIC, "alice", "fail")
    with Store.open(disk.db) as store:
        assert {lb.case_id: lb.value for lb in store.current_labels("ok")} == {
            "c0": "pass",
            "c1": "fail",
        }


def test_a_full_disk_under_a_served_project_is_a_sentence_for_the_rater(tmpfs: Tmpfs) -> None:
    _project(tmpfs.db)
    with Served(tmpfs.db, raters=["alice"]) as server:
        store = Store.open(server.address, token=server.tokens["alice"])
        try:
            tmpfs.fill()
            with pytest.raises(DiskFull) as raised:
                store.add_label("c0", RUBRIC, "alice", "pass", note="n" * 5000)
            assert str(raised.value) == (
                f"the disk holding the project served at {server.address} is full: whoever "
                "runs 'evaltui serve' must free some space, then try again (the write that "
                "failed stored nothing)"
            )
            tmpfs.free()
            store.add_label("c0", RUBRIC, "alice", "pass")
            assert store.count_labels() == 1
        finally:
            store.close()


def test_cli_commands_on_a_full_disk_print_one_sentence(cli: Any, tmpfs: Tmpfs) -> None:
    _project(tmpfs.db, n=0)
    cases = write_jsonl(
        tmpfs.mount.parent / "cases.jsonl",
        [{"id": f"n{i}", "input": "q" * 2000, "output": "a"} for i in range(50)],
    )
    tmpfs.fill()
    toml, csv = tmpfs.mount / "ok.toml", tmpfs.mount / "labels.csv"
    results: list[Result] = [
        cli("import", cases, "--db", tmpfs.db),
        cli("rubric", "export", "ok", toml, "--db", tmpfs.db),
        cli("export", "labels", csv, "--db", tmpfs.db),
    ]
    assert [r.code for r in results] == [1, 1, 1]
    assert results[0].err == f"evaltui: the disk holding {tmpfs.db} {SENTENCE}\n"
    assert results[1].err == (
        f"evaltui: the disk holding {toml} is full: free some space and try again\n"
    )
    assert results[2].err == (
        f"evaltui: the disk holding {csv} is full: free some space and try again\n"
    )
    tmpfs.free()
    assert cli("import", cases, "--db", tmpfs.db).code == 0


# The labelling screen ---------------------------------------------------------------


def _errors(app: EvaltuiApp) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "error"]


async def test_pressing_p_on_a_full_disk_is_a_notice_and_p_again_stores_it(
    disk: Tmpfs | Simulated,
) -> None:
    _project(disk.db)
    with Store.open(disk.db) as store:
        disk.attach(store)
        app = EvaltuiApp(store, Config(rater="alice"), label=("ok", None), clock=lambda: 1000.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            disk.fill(store)
            await pilot.press("p")
            await pilot.pause()
            assert app.is_running
            assert _errors(app) == [
                f"Not saved: the disk holding {disk.db} {SENTENCE}. Press the key again to retry."
            ]
            screen = app.screen
            assert screen.case is not None and screen.case.id == "c0"  # type: ignore[attr-defined]
            assert screen.mine is None  # type: ignore[attr-defined]
            assert "not labelled yet" in str(app.screen.query_one("#meta").content)
            assert "0/3 done" in str(app.screen.query_one("#status").content)

            disk.free()
            await pilot.press("p")
            await pilot.pause()
            assert screen.case.id == "c1"  # type: ignore[attr-defined]
            assert "1/3 done" in str(app.screen.query_one("#status").content)
        history = store.label_history("c0", "ok", "alice")
    assert [h.value for h in history] == ["pass"]  # stored once


async def test_a_note_and_a_flag_on_a_full_disk_are_notices(tmp_path: Path) -> None:
    disk = Simulated(tmp_path)
    _project(disk.db)
    with Store.open(disk.db) as store:
        store.add_label("c0", RUBRIC, "bob", "fail")
        disk.attach(store)
        app = EvaltuiApp(store, Config(rater="alice"), label=("ok", None), clock=lambda: 1000.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("p", "left")  # c0 labelled, back on it
            await pilot.pause()
            disk.fill()
            await pilot.press("n", *"why", "enter")  # the note is saved with the label
            await pilot.pause()
            await pilot.press("d")  # flag for later
            await pilot.pause()
            assert app.is_running
            errors = _errors(app)
            assert len(errors) == 2
            assert errors[0].startswith("Not saved: the disk holding")
            assert errors[1] == f"the disk holding {disk.db} {SENTENCE}"
            assert "DEFERRED" not in str(app.screen.query_one("#meta").content)
            disk.free()
            await pilot.press("d")
            await pilot.pause()
            assert "DEFERRED" in str(app.screen.query_one("#meta").content)
        assert store.deferred("ok", "alice") == ["c0"]
        assert store.current_label("c0", "ok", "alice").note == ""  # type: ignore[union-attr]


# A judge run -------------------------------------------------------------------------


async def test_a_judge_run_on_a_full_disk_stops_with_the_sentence_and_resumes(
    disk: Tmpfs | Simulated, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-evaltui-FAKE-disk-full-not-a-real-key")
    _project(disk.db)
    with LoopbackServer() as server, Store.open(disk.db) as store:
        disk.attach(store)
        judge = Judge(rubric="ok", model="openai/loop", api_base=server.api_base,
                      prompt=default_template(RUBRIC))  # fmt: skip
        store.save_judge(judge)
        cases = store.cases_by_id(["c0", "c1", "c2"])
        options = RunOptions(concurrency=1, timeout=10.0, retries=0)
        disk.fill(store)
        with pytest.raises(DiskFull, match="is full: free some space"):
            await run(store, judge, RUBRIC, plan(store, judge, RUBRIC, cases), options=options)
        disk.free()
        progress = await run(
            store, judge, RUBRIC, plan(store, judge, RUBRIC, cases), options=options
        )
        assert progress.done == 3
        assert len(verdicts(store, judge.version)) == 3

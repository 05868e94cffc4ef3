"""The TUI against a served project: who labels, what the status line says, a dropped server."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Static

from evaltui.config import Config
from evaltui.labelling import Position
from evaltui.store import Store
from evaltui.store.server import ServerUnreachable
from evaltui.ui.app import EvaltuiApp
from evaltui.ui.screens.label import LabelScreen
from evaltui.ui.screens.modals import PromptScreen
from tests.served import Served

RUBRIC = "resolves-issue"


@pytest.fixture
def project(demo_project: Path) -> Path:
    return demo_project


def screen_of(app: EvaltuiApp) -> LabelScreen:
    screen = app.screen
    assert isinstance(screen, LabelScreen)
    return screen


def status_of(app: EvaltuiApp) -> str:
    widget = app.screen.query_one("#status", Static)
    console = Console(width=200, file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text().strip()


def label_rows(db: Path) -> list[tuple[str, str, str, str]]:
    """(id, case, rater, value) of every label row, read from the file itself."""
    with Store.open(db) as store:
        rows = store.cursor().execute(
            "SELECT id, case_id, rater, value FROM labels WHERE rubric = ? ORDER BY seq", [RUBRIC]
        )
        return [tuple(r) for r in rows.fetchall()]  # type: ignore[misc]


async def test_a_rater_labels_a_served_project_under_the_tokens_name(project: Path) -> None:
    with Served(project, raters=["alice", "bob"]) as server:
        store = Store.open(server.address, token=server.tokens["bob"])
        try:
            # The config names someone else: the token decides.
            app = EvaltuiApp(store, Config(rater="mallory"), label=(RUBRIC, None))
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                screen = screen_of(app)
                assert screen.rater == "bob"
                first = screen.case.id  # type: ignore[union-attr]
                port = server.address.rsplit(":", 1)[1]
                assert f"● localhost:{port}" in status_of(app)
                assert app.sub_title == f"server {server.address} as bob"
                await pilot.press("p", "f", "p")
                await pilot.pause()
                assert screen.done == 3
                assert "3/64 done" in status_of(app)
        finally:
            store.close()
    rows = label_rows(project)
    assert [(r[2], r[3]) for r in rows] == [("bob", "pass"), ("bob", "fail"), ("bob", "pass")]
    assert rows[0][1] == first


async def test_a_file_project_says_so_on_the_status_line(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=(RUBRIC, None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert "file evals.duckdb" in status_of(app)
            assert app.sub_title == f"file {project}"


async def test_a_label_written_while_the_server_restarts_is_stored_once(project: Path) -> None:
    server = Served(project, raters=["alice"]).start()
    token, port = server.tokens["alice"], server.port
    store = Store.open(server.address, token=token)
    restarted: list[Served] = []
    try:
        app = EvaltuiApp(store, Config(), label=(RUBRIC, None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("p")
            await pilot.pause()
            server.kill()

            def restart() -> None:
                time.sleep(1.0)  # the key below is pressed while nothing listens
                restarted.append(Served(project, raters=(), port=port).start())

            thread = threading.Thread(target=restart)
            thread.start()
            await pilot.press("f")  # retried until the new server answers
            thread.join()
            await pilot.pause()
            screen = screen_of(app)
            assert screen.done == 2
            assert store.connection_state == "connected"
    finally:
        store.close()
        for served in restarted:
            served.stop()
        server.stop()
    assert [(r[2], r[3]) for r in label_rows(project)] == [("alice", "pass"), ("alice", "fail")]


async def test_a_write_the_server_never_got_is_reported_and_retried_with_the_same_id(
    project: Path,
) -> None:
    server = Served(project, raters=["alice"]).start()
    token, port = server.tokens["alice"], server.port
    store = Store.open(server.address, token=token)
    assert store.server is not None
    back: Served | None = None
    try:
        app = EvaltuiApp(store, Config(), label=(RUBRIC, None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            store.server.retry_for = 0.5  # give up quickly for the test
            screen = screen_of(app)
            case_id = screen.case.id  # type: ignore[union-attr]
            server.kill()
            await pilot.press("p")
            await pilot.pause()
            # Not stored: the case stays, the status line says so, and a notice explains.
            assert screen.case.id == case_id  # type: ignore[union-attr]
            assert screen.done == 0
            assert "✕ lost" in status_of(app)
            assert any("Not saved" in str(n.message) for n in app._notifications)
            pending = screen._pending
            assert pending is not None
            back = Served(project, raters=(), port=port).start()
            await pilot.press("p")
            await pilot.pause()
            assert screen.done == 1
            assert screen._pending is None
            assert "●" in status_of(app)
    finally:
        store.close()
        if back is not None:
            back.stop()
    rows = label_rows(project)
    assert [(r[0], r[1], r[3]) for r in rows] == [(pending[1], case_id, "pass")]


async def test_keys_pressed_while_the_server_is_gone_give_a_notice_not_a_crash(
    project: Path,
) -> None:
    server = Served(project, raters=["alice"]).start()
    store = Store.open(server.address, token=server.tokens["alice"])
    assert store.server is not None
    try:
        app = EvaltuiApp(store, Config(), label=(RUBRIC, None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            store.server.retry_for = 0.3
            screen = screen_of(app)
            server.kill()
            await pilot.press("s")  # skip: the next case is read from the server
            await pilot.pause()
            assert app.is_running
            assert app.screen is screen
            assert any("lost the server" in str(n.message) for n in app._notifications)
            await pilot.press("escape")  # back home: its table is read from the server too
            await pilot.pause()
            assert app.is_running
    finally:
        store.close()
        server.stop()


async def test_a_case_id_entered_while_the_server_is_gone_gives_a_notice_not_a_crash(
    project: Path,
) -> None:
    server = Served(project, raters=["alice"]).start()
    store = Store.open(server.address, token=server.tokens["alice"])
    assert store.server is not None
    try:
        app = EvaltuiApp(store, Config(), label=(RUBRIC, None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            store.server.retry_for = 0.3
            screen = screen_of(app)
            shown = screen.case.id  # type: ignore[union-attr]
            row = (
                store.cursor()
                .execute(
                    "SELECT id FROM cases WHERE kind = 'single' AND id <> ? ORDER BY id LIMIT 1",
                    [shown],
                )
                .fetchone()
            )
            assert row is not None
            await pilot.press("g")
            await pilot.pause()
            assert isinstance(app.screen, PromptScreen)
            await pilot.press(*row[0])
            server.kill()
            await pilot.press("enter")  # the prompt's result callback reads the server
            await pilot.pause()
            assert app.is_running
            assert app.screen is screen
            assert screen.case.id == shown  # type: ignore[union-attr]
            errors = [str(n.message) for n in app._notifications if n.severity == "error"]
            assert any(server.address in m and "lost the server" in m for m in errors), errors
            await pilot.press("g")  # the screen still takes keys
            await pilot.pause()
            assert isinstance(app.screen, PromptScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen and app.is_running
    finally:
        store.close()
        server.stop()


async def test_a_label_stored_when_moving_on_failed_is_kept_and_the_key_again_is_a_change(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Served(project, raters=["alice"]) as server:
        store = Store.open(server.address, token=server.tokens["alice"])
        try:
            app = EvaltuiApp(store, Config(), label=(RUBRIC, None))
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                screen = screen_of(app)
                case_id = screen.case.id  # type: ignore[union-attr]
                assert screen.done == 0 and screen.mine is None
                real_next = screen.cursor.next
                failed: list[bool] = []

                def next_fails_once() -> Position | None:
                    if not failed:
                        failed.append(True)
                        raise ServerUnreachable("lost the server while reading the next case")
                    return real_next()

                monkeypatch.setattr(screen.cursor, "next", next_fails_once)
                await pilot.press("p")  # stored; reading the next case fails
                await pilot.pause()
                assert failed and app.is_running and app.screen is screen
                assert any("reading the next case" in str(n.message) for n in app._notifications)
                assert screen.case.id == case_id  # type: ignore[union-attr]
                assert screen.done == 1
                assert screen.mine is not None and screen.mine.value == "pass"
                meta = app.screen.query_one("#meta", Static).content
                assert "not labelled yet" not in str(meta)  # the screen shows it stored

                await pilot.press("p")  # the same key again: a change of the same case
                await pilot.pause()
                assert screen.done == 1
                assert "1/64 done" in status_of(app)
                assert screen.case.id != case_id
                assert [(e.case_id, e.previous_value) for e in screen.undo_stack] == [
                    (case_id, None),
                    (case_id, "pass"),
                ]
                assert store.cursor().execute(
                    "SELECT count(*) FROM current_labels WHERE rubric = ? AND rater = 'alice'",
                    [RUBRIC],
                ).fetchone() == (1,)
        finally:
            store.close()
    rows = label_rows(project)
    assert [(r[1], r[2], r[3]) for r in rows] == [(case_id, "alice", "pass")] * 2

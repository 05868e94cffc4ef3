"""The judge screen against a served project: verdicts go to the server, figures come back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input, ProgressBar, Static
from textual.worker import WorkerFailed

from evaltui.config import Config
from evaltui.store import Store
from evaltui.store.verdicts import verdicts
from evaltui.ui.app import EvaltuiApp
from evaltui.ui.screens.judge import JudgeScreen
from tests.loopback import LoopbackServer
from tests.served import Served
from tests.test_judge_ui import KEY, N, make_project


async def test_a_judge_run_on_a_served_project_stores_its_verdicts_on_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the client calls the model, not the server
    db = tmp_path / "evals.duckdb"
    make_project(db)
    with LoopbackServer() as model, Served(db, raters=["alice"]) as server:
        store = Store.open(server.address, token=server.tokens["alice"])
        try:
            app = EvaltuiApp(store, Config(rater="mallory"))
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.press("J")
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, JudgeScreen)
                assert screen.rater == "alice"  # the token names the rater, not the config
                await pilot.click("#judge-model")
                await pilot.press(*"openai/loop")
                screen.query_one("#judge-api-base", Input).value = model.api_base
                await pilot.press("ctrl+r")
                await app.workers.wait_for_complete()
                await pilot.pause()
                status = str(screen.query_one("#judge-status", Static).render())
                assert "run finished" in status
                figures = str(screen.query_one("#judge-figures", Static).render())
                assert "judge κ 1.000" in figures
                assert "TPR 1.000 · TNR 1.000" in figures
                assert app.is_running
                version = store.judges("resolves")[-1].version
        finally:
            store.close()
    # Cases 4 and 5 split alice and bob evenly: no gold, so not run.
    assert model.calls == N - 2
    # Read the file itself once the server has stopped: the verdicts were written there.
    with Store.open(db, create=False) as on_file:
        judge = on_file.judges("resolves")[-1]
        assert (judge.version, judge.model, judge.api_base) == (
            version,
            "openai/loop",
            model.api_base,
        )
        stored = verdicts(on_file, judge.version)
    assert len(stored) == N - 2
    assert {v.value for v in stored} == {"pass", "fail"}
    assert all(v.error is None for v in stored)
    assert KEY.encode() not in db.read_bytes()


async def test_a_server_gone_mid_run_stops_the_run_and_keeps_what_was_reported_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    db = tmp_path / "evals.duckdb"
    make_project(db)
    with LoopbackServer(latency=0.3) as model:
        server = Served(db, raters=["alice"]).start()
        store = Store.open(server.address, token=server.tokens["alice"])
        assert store.server is not None
        try:
            app = EvaltuiApp(store, Config())
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.press("J")
                await pilot.pause()
                screen = app.screen
                assert isinstance(screen, JudgeScreen)
                store.server.retry_for = 0.5  # give up quickly for the test
                await pilot.click("#judge-model")
                await pilot.press(*"openai/loop")
                screen.query_one("#judge-api-base", Input).value = model.api_base
                await pilot.press("ctrl+r")
                bar = screen.query_one("#judge-progress", ProgressBar)
                deadline = time.monotonic() + 20
                while bar.progress < 8 and time.monotonic() < deadline:
                    await pilot.pause(0.02)
                server.kill()
                assert screen.running is not None
                with pytest.raises(WorkerFailed, match=r"lost the server|dropped during a write"):
                    await screen.running.wait()
                await pilot.pause()
                reported = int(bar.progress)
                assert 8 <= reported < N - 2
                assert app.is_running and app.screen is screen
                status = str(screen.query_one("#judge-status", Static).render())
                assert "run stopped" in status
        finally:
            store.close()
            server.stop()
    with Store.open(db, create=False) as on_file:
        stored = verdicts(on_file, on_file.judges("resolves")[-1].version)
    # Every verdict the screen counted was committed on the server before it went.
    assert reported <= len(stored) < N - 2

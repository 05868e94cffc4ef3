"""Two raters label a session, the agreement screen shows κ, a disagreement is adjudicated,
notes become failure modes: all by key presses, checked against the store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from sklearn.metrics import cohen_kappa_score
from textual.widgets import DataTable, Static, TextArea

from evaltui.config import Config
from evaltui.demo import build_demo_project
from evaltui.sessions import create_session
from evaltui.store import Store, coding
from evaltui.ui.app import EvaltuiApp
from evaltui.ui.screens.agreement import AdjudicationScreen, AgreementScreen, RubricEditScreen
from evaltui.ui.screens.coding import FailureModesScreen


def plain(app: EvaltuiApp, selector: str) -> str:
    widget = app.screen.query_one(selector, Static)
    console = Console(width=max(widget.size.width, 40), file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return build_demo_project(tmp_path)


ALICE = "ppfpfppfpf"
BOB = "ppfpfpffpp"


async def label_session(project: Path, sample: tuple[str, ...]) -> None:
    for rater, presses in (("alice", ALICE), ("bob", BOB)):
        with Store.open(project) as store:
            app = EvaltuiApp(
                store, Config(rater=rater), label=("resolves-issue", None), case_ids=sample
            )
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                for key in presses:
                    if rater == "bob" and key == "f":
                        await pilot.press("n", *"misses the second question", "escape")
                    await pilot.press(key)
                await pilot.pause()


async def test_session_agreement_screen_and_adjudication(project: Path) -> None:
    with Store.open(project) as store:
        sample = create_session(
            store, "calib", "resolves-issue", ["alice", "bob"], sample=10, seed=3
        ).case_ids
    await label_session(project, sample)
    values = {"p": "pass", "f": "fail"}
    kappa = cohen_kappa_score([values[k] for k in ALICE], [values[k] for k in BOB])
    disagreeing = [sample[i] for i, (a, b) in enumerate(zip(ALICE, BOB, strict=True)) if a != b]

    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="carol"))
        async with app.run_test(size=(110, 40)) as pilot:
            await pilot.pause()
            await pilot.press("down", "A")  # resolves-issue is the second rubric
            await pilot.pause()
            assert isinstance(app.screen, AgreementScreen)
            figures = plain(app, "#figures")
            assert "alice vs bob: n=10" in figures
            assert f"Cohen's kappa       {kappa:.3f}" in figures
            table = app.screen.query_one("#disagreements", DataTable)
            listed = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
            assert sorted(listed) == sorted(disagreeing)
            first = listed[0]
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, AdjudicationScreen)
            await pilot.press("a")  # not a binary label: ignored
            await pilot.press("f", "3", *"alice missed step 2", "enter")
            await pilot.pause()
            assert isinstance(app.screen, AgreementScreen)
            row = [str(c) for c in app.screen.query_one("#disagreements", DataTable).get_row_at(0)]
            assert row[0] == first and row[3] == "fail"
        gold = coding.adjudications(store, "resolves-issue")
        assert list(gold) == [first]
        assert (gold[first].value, gold[first].cause.value) == ("fail", "rater error")
        assert (gold[first].rationale, gold[first].adjudicator) == ("alice missed step 2", "carol")


async def test_edit_rubric_saves_a_new_version(project: Path) -> None:
    with Store.open(project) as store:
        rubric = store.get_rubric("better-response")
        app = EvaltuiApp(store, Config(rater="carol"))
        async with app.run_test(size=(110, 40)) as pilot:
            await pilot.pause()
            await pilot.press("A")
            await pilot.pause()
            await pilot.press("E")
            await pilot.pause()
            assert isinstance(app.screen, RubricEditScreen)
            editor = app.screen.query_one(TextArea)
            editor.text = editor.text.replace(rubric.question, "Which response is more helpful?")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, AgreementScreen)
        latest = store.get_rubric("better-response")
        assert (latest.version, latest.question) == (2, "Which response is more helpful?")
        assert store.get_rubric("better-response", 1).question == rubric.question


async def test_notes_grouped_into_failure_modes_and_ranked(project: Path) -> None:
    notes = {
        "sup-001": "quoted a 45-day return window",
        "sup-002": "wrong free-shipping threshold",
        "sup-003": "ignored the second question",
        "sup-004": "policy wrong on clearance items",
        "sup-005": "answered only one of two questions",
    }
    with Store.open(project) as store:
        rubric = store.get_rubric("resolves-issue")
        for case_id, note in notes.items():
            store.add_label(case_id, rubric, "alice", "fail", note=note)
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(110, 40)) as pilot:
            await pilot.pause()
            await pilot.press("down", "F")
            await pilot.pause()
            assert isinstance(app.screen, FailureModesScreen)
            assert "5 notes, 5 not yet in a failure mode" in plain(app, "#modes-title")
            modes = ["policy", "missed question", "policy", "policy", "missed question"]
            for i, mode in enumerate(modes):
                await pilot.press("a", *mode, "enter")
                await pilot.pause()
                if i < len(modes) - 1:
                    await pilot.press("down")
            ranking = plain(app, "#ranking")
            assert ranking.index("policy  3") < ranking.index("missed question  2")
            assert "0 not yet in a failure mode" in plain(app, "#modes-title")
            # Rename and merge keep the links: everything ends up in one mode.
            await pilot.press("R", *"policy = wrong policy", "enter")
            await pilot.press("m", *"missed question > wrong policy", "enter")
            await pilot.pause()
            assert "wrong policy  5" in plain(app, "#ranking")
        ranked = coding.ranking(store, "resolves-issue")
        assert [(m.mode.name, m.count) for m in ranked] == [("wrong policy", 5)]


async def test_agreement_screen_slices_by_a_field(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="carol"))
        async with app.run_test(size=(110, 60)) as pilot:
            await pilot.pause()
            await pilot.press("A")
            await pilot.pause()
            await pilot.press("b", *"motivation_app", "enter")
            await pilot.pause()
            figures = plain(app, "#figures")
            assert "by motivation_app:" in figures
            apps = {store.get_case(str(i)).metadata["motivation_app"] for i in range(200)}
            for name in list(apps)[:3]:
                assert name in figures
            assert "position bias" in figures

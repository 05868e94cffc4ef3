"""The judge screen driven with real keys against a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Label, Static, TextArea

from evaltui import rubric_toml
from evaltui.config import Config
from evaltui.models import Case, CaseKind, Judge, Rubric, RubricKind, Verdict
from evaltui.store import Store
from evaltui.store.verdicts import add_verdict, add_verdicts, verdicts
from evaltui.ui.app import EvaltuiApp
from evaltui.ui.screens.judge import JudgeScreen
from tests.loopback import LoopbackServer

KEY = "sk-judge-ui-test-0123456789"
N = 40


def make_project(db: Path) -> list[str]:
    """40 binary cases; alice and bob label each as its mark says, except bob on two cases."""
    with Store.open(db) as store:
        rubric = Rubric(name="resolves", kind=RubricKind.binary, question="Resolved?", pass_="yes")
        store.save_rubric(rubric)
        ids = []
        for i in range(N):
            value = "pass" if i % 3 else "fail"
            case = Case(
                id=f"c{i:02d}",
                kind=CaseKind.single,
                input=f"question {i}",
                output=f"answer {i} [expect:{value}]",
            )
            store.cursor().execute(
                "INSERT INTO cases (id, kind, input, output) VALUES (?, ?, ?, ?)",
                [case.id, case.kind.value, case.input, case.output],
            )
            store.add_label(case.id, rubric, "alice", value, note=f"alice on {i}")
            bob = value if i not in (4, 5) else ("fail" if value == "pass" else "pass")
            store.add_label(case.id, rubric, "bob", bob)
            ids.append(case.id)
    return ids


async def test_edit_prompt_run_see_kappa_and_approve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    db = tmp_path / "evals.duckdb"
    make_project(db)
    out = tmp_path / "rubrics" / "resolves.toml"
    with LoopbackServer() as server, Store.open(db) as store:
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("J")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, JudgeScreen)
            # No judge yet: the default template is in the editor.
            prompt = screen.query_one("#judge-prompt", TextArea)
            assert "{output}" in prompt.text
            await pilot.click("#judge-model")
            await pilot.press(*"openai/loop")
            screen.query_one("#judge-api-base", Input).value = server.api_base
            prompt.focus()
            prompt.move_cursor(prompt.document.end)
            await pilot.press("enter", *"Be strict.")
            assert prompt.text.endswith("\nBe strict.")
            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()

            judge = store.judges("resolves")[-1]
            assert judge.model == "openai/loop" and judge.prompt.endswith("Be strict.")
            # Cases 4 and 5 split alice and bob evenly: no gold, so not run.
            assert server.calls == N - 2
            assert all("Be strict." in r.prompt for r in server.requests)
            assert len(verdicts(store, judge.version)) == N - 2
            figures = str(screen.query_one("#judge-figures", Static).render())
            assert "judge κ 1.000" in figures
            assert "TPR 1.000 · TNR 1.000" in figures
            assert "run finished" in str(screen.query_one("#judge-status", Static).render())

            # A second run asks for nothing.
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert server.calls == N - 2
            assert "already has a verdict" in str(
                screen.query_one("#judge-status", Static).render()
            )

            await pilot.press("ctrl+g")
            await pilot.pause()
            app.screen.query_one(Input).value = str(out)
            await pilot.press("enter")
            await pilot.pause()

    written = rubric_toml.load(out)
    assert written.rubric.status == "approved"
    assert written.judge is not None and written.judge.version == judge.version
    assert written.calibration is not None
    assert written.calibration.judge_kappa == 1.0
    assert written.calibration.approved_by == "alice"
    assert written.calibration.human_raters == ["alice", "bob"]
    assert KEY not in out.read_text()
    assert KEY.encode() not in db.read_bytes()


async def test_disagreement_opens_with_critique_and_note(tmp_path: Path) -> None:
    db = tmp_path / "evals.duckdb"
    ids = make_project(db)
    with Store.open(db) as store:
        rubric = store.get_rubric("resolves")
        judge = Judge(rubric="resolves", model="openai/fixed", prompt="Grade {output}")
        store.save_judge(judge)
        for case_id in ids:
            gold = "fail" if int(case_id[1:]) % 3 == 0 else "pass"
            store_value = "pass"  # a judge that passes everything
            add_verdict(
                store,
                Verdict(
                    judge_version=judge.version,
                    case_id=case_id,
                    value=store_value,
                    critique=f"looks fine [{gold}]",
                    latency_ms=10.0,
                ),
            )
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(100, 30)) as pilot:
            app.push_screen(JudgeScreen(store, rubric, "alice"))
            await pilot.pause()
            await pilot.press("f3")
            table = app.screen.query_one("#judge-disagreements", DataTable)
            dev_fails = table.row_count
            assert dev_fails > 0
            assert "TPR 1.000 · TNR 0.000" in str(app.screen.query_one("#judge-figures").render())
            await pilot.press("enter")
            await pilot.pause()
            console = Console(width=100, record=True)
            console.print(app.screen.query_one(Static).content)
            shown = console.export_text()
            assert "judge: pass" in shown and "looks fine [fail]" in shown
            assert "human: fail" in shown and "alice on" in shown
            await pilot.press("escape")
            await pilot.pause()
            # Reading the test split is counted and shown.
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert "test set viewed 1 time(s)" in str(app.screen.query_one("#judge-head").render())


async def test_escape_cancels_a_run_and_ctrl_r_resumes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    db = tmp_path / "evals.duckdb"
    make_project(db)
    with LoopbackServer(latency=0.2) as server, Store.open(db) as store:
        rubric = store.get_rubric("resolves")
        store.save_judge(
            Judge(
                rubric="resolves",
                model="openai/slow",
                api_base=server.api_base,
                prompt="Grade {output}",
            )
        )
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(100, 30)) as pilot:
            screen = JudgeScreen(store, rubric, "alice", concurrency=2)
            app.push_screen(screen)
            await pilot.pause()
            await pilot.press("ctrl+r")
            judge = store.judges("resolves")[-1]
            while len(verdicts(store, judge.version)) < 4:
                await pilot.pause(0.05)
            await pilot.press("escape")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.screen is screen  # Esc cancelled the run, it did not leave
            status = str(screen.query_one("#judge-status", Static).render())
            assert "run cancelled" in status
            kept = len(verdicts(store, judge.version))
            assert 4 <= kept < N - 2
            before = server.calls

            await pilot.press("ctrl+r")
            await app.workers.wait_for_complete()
            await pilot.pause()
            # Only the cases without a verdict are asked (in-flight calls were dropped).
            assert server.calls - before == (N - 2) - kept
            assert len(verdicts(store, judge.version)) == N - 2
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, JudgeScreen)


async def test_ctrl_o_lists_versions_and_enter_compares_with_the_current(tmp_path: Path) -> None:
    db = tmp_path / "evals.duckdb"
    ids = make_project(db)
    gold = {c: "fail" if int(c[1:]) % 3 == 0 else "pass" for c in ids}
    with Store.open(db) as store:
        rubric = store.get_rubric("resolves")
        old = Judge(rubric="resolves", model="openai/fixed", prompt="Grade {output}")
        new = old.model_copy(update={"prompt": "Grade {output} strictly"})
        for judge, wrong in ((old, set(ids[:12])), (new, set())):
            store.save_judge(judge)
            add_verdicts(
                store,
                [
                    Verdict(
                        judge_version=judge.version,
                        case_id=c,
                        value=("pass" if g == "fail" else "fail") if c in wrong else g,
                    )
                    for c, g in gold.items()
                ],
            )
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(110, 36)) as pilot:
            app.push_screen(JudgeScreen(store, rubric, "alice"))
            await pilot.pause()
            await pilot.press("ctrl+o")
            await pilot.pause()
            table = app.screen.query_one("#history", DataTable)
            assert table.row_count == 2
            assert [str(k.value) for k in table.rows] == [old.version, new.version]
            await pilot.press("enter")  # the cursor is on the older version
            await pilot.pause()
            shown = str(app.screen.query_one("#comparison", Static).render())
            assert f"{new.version[:19]} minus {old.version[:19]}" in shown
            assert "only the new version got right" in shown
            await pilot.press("down", "enter")  # the current version itself
            await pilot.pause()
            assert "pick another version" in str(
                app.screen.query_one("#comparison", Static).render()
            )
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, JudgeScreen)


async def test_approve_never_writes_over_the_project_and_asks_before_replacing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "evals.duckdb"
    ids = make_project(db)
    out = tmp_path / "resolves.toml"
    out.write_text("# an earlier approval\n", encoding="utf-8")
    with Store.open(db) as store:
        rubric = store.get_rubric("resolves")
        judge = Judge(rubric="resolves", model="openai/fixed", prompt="Grade {output}")
        store.save_judge(judge)
        add_verdicts(
            store,
            [
                Verdict(judge_version=judge.version, case_id=c, value="fail" if int(c[1:]) % 3 == 0 else "pass")
                for c in ids
            ],
        )  # fmt: skip
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(100, 30)) as pilot:
            app.push_screen(JudgeScreen(store, rubric, "alice"))
            await pilot.pause()
            notices = len(app._notifications)
            await pilot.press("ctrl+g")
            await pilot.pause()
            app.screen.query_one(Input).value = str(db)  # the project itself
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, JudgeScreen)
            shown = [n.message for n in list(app._notifications)[notices:]]
            assert any("is a DuckDB database" in m for m in shown), shown
            assert store.get_rubric("resolves").status == "draft"  # nothing approved

            await pilot.press("ctrl+g")
            await pilot.pause()
            app.screen.query_one(Input).value = str(out)
            await pilot.press("enter")
            await pilot.pause()
            assert "exists: Enter replaces it, Esc keeps it" in str(
                app.screen.query_one(Label).render()
            )
            await pilot.press("escape")
            await pilot.pause()
            assert out.read_text(encoding="utf-8") == "# an earlier approval\n"

            await pilot.press("ctrl+g")
            await pilot.pause()
            app.screen.query_one(Input).value = str(out)
            await pilot.press("enter")
            await pilot.pause()
            await pilot.press("enter")  # confirmed
            await pilot.pause()
    written = rubric_toml.load(out)
    assert written.rubric.status == "approved"
    assert written.calibration is not None and written.calibration.approved_by == "alice"
    with Store.open(db) as store:
        assert len(store.current_labels("resolves", "alice")) == len(ids)

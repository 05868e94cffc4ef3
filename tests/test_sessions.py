"""Calibration sessions: seeded samples, stratified by a field, labelled by two raters in turn."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from evaltui.config import Config
from evaltui.demo import build_demo_project
from evaltui.store import Store
from evaltui.ui.app import EvaltuiApp


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return build_demo_project(tmp_path)


def test_stratified_sample_is_proportional_and_seeded(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("--db", project, "session", "create", "s1", "--rubric", "resolves-issue",
                 "--raters", "alice,bob", "--sample", "32", "--by", "topic", "--seed", "7")  # fmt: skip
    assert result.code == 0, result.err
    assert "32 cases of resolves-issue" in result.out
    assert "evaltui label --rubric resolves-issue --rater bob --session s1" in result.out
    assert cli("--db", project, "session", "create", "s2", "--rubric", "resolves-issue",
               "--raters", "alice,bob", "--sample", "32", "--by", "topic", "--seed", "7").code == 0  # fmt: skip
    assert cli("--db", project, "session", "create", "s3", "--rubric", "resolves-issue",
               "--raters", "alice,bob", "--sample", "32", "--seed", "8").code == 0  # fmt: skip
    with Store.open(project) as store:
        s1, s2, s3 = (store.session_case_ids(n) for n in ("s1", "s2", "s3"))
        topics = {
            i: store.get_case(i).metadata["topic"] for i in store.case_ids() if i.startswith("sup-")
        }
    assert s1 == s2 and s1 != s3 and len(set(s1)) == 32
    population = Counter(topics.values())
    drawn = Counter(topics[i] for i in s1)
    for topic, size in population.items():
        assert abs(drawn[topic] - 32 * size / 64) < 1  # proportional allocation


def test_a_sample_larger_than_the_rubrics_cases_says_so(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("--db", project, "session", "create", "big", "--rubric", "resolves-issue",
                 "--raters", "alice,bob", "--sample", "500")  # fmt: skip
    assert result.code == 0, result.err
    assert "64 cases of resolves-issue" in result.out
    assert (
        "--sample 500 asked for more cases than rubric resolves-issue has: the session holds all 64"
    ) in result.out
    exact = cli("--db", project, "session", "create", "all", "--rubric", "resolves-issue",
                "--raters", "alice,bob", "--sample", "64")  # fmt: skip
    assert "asked for more" not in exact.out


def test_session_errors(cli, project: Path) -> None:  # type: ignore[no-untyped-def]
    base = ("--db", project, "session", "create")
    assert (
        "two different raters"
        in cli(*base, "x", "--rubric", "resolves-issue", "--raters", "al,al").err
    )
    assert "no rubric 'nope'" in cli(*base, "x", "--rubric", "nope", "--raters", "a,b").err
    assert cli(*base, "x", "--rubric", "resolves-issue", "--raters", "a,b").code == 0
    assert "already exists" in cli(*base, "x", "--rubric", "resolves-issue", "--raters", "a,b").err


async def test_two_raters_label_a_session_in_turn_and_agreement_reads_it(
    cli, project: Path
) -> None:  # type: ignore[no-untyped-def]
    assert cli("--db", project, "session", "create", "calib", "--rubric", "resolves-issue",
               "--raters", "alice,bob", "--sample", "10", "--seed", "3").code == 0  # fmt: skip
    keys = {"alice": "ppfpfppfpf", "bob": "ppfpfpffpp"}
    for rater, presses in keys.items():
        with Store.open(project) as store:
            sample = store.session_case_ids("calib")
            app = EvaltuiApp(
                store, Config(rater=rater), label=("resolves-issue", None), case_ids=sample
            )
            async with app.run_test(size=(100, 30)) as pilot:
                await pilot.pause()
                await pilot.press(*presses)
                await pilot.pause()
    result = cli("--db", project, "agreement", "--rubric", "resolves-issue", "--json")
    pair = json.loads(result.out)["pairs"][0]
    assert pair["raters"] == ["alice", "bob"] and pair["n"] == 10
    values = {"p": "pass", "f": "fail"}
    expected = cohen_kappa_score(
        [values[k] for k in keys["alice"]], [values[k] for k in keys["bob"]]
    )
    assert pair["kappa"] == pytest.approx(expected, abs=1e-4)


async def test_a_session_is_created_from_the_home_screen_and_shows_progress(project: Path) -> None:
    import io

    from rich.console import Console
    from textual.widgets import Static

    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(110, 40)) as pilot:
            await pilot.pause()
            await pilot.press(
                "down", "S", *"calib raters=alice,bob sample=12 by=topic seed=5", "enter"
            )
            await pilot.pause()
            widget = app.screen.query_one("#sessions", Static)
            console = Console(width=100, file=io.StringIO(), record=True)
            console.print(widget.content)
            text = console.export_text()
            assert "calib (resolves-issue): alice 0/12, bob 0/12" in text
            await pilot.press(
                "S", *"calib raters=alice", "enter"
            )  # duplicate and one rater: refused
            await pilot.pause()
        assert len(store.session_case_ids("calib")) == 12

"""What the screens look like: SVG snapshots of home, labelling (and its raw view), help, judge.

The data is fixed (the bundled sample data), the clock is frozen (time on
case and pace never change), the rater and A/B seed are fixed, and the
project lives at a fixed path (the home screen shows it). Regenerate with
`pytest tests/test_ui_snapshots.py --snapshot-update` and look at the report.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.widgets import Label

from evaltui import rubric_toml
from evaltui.config import Config
from evaltui.ingest import import_cases
from evaltui.store import Store
from evaltui.ui.app import EvaltuiApp
from tests.conftest import SAMPLE

SNAPSHOT_ROOT = Path("/tmp/evaltui-snapshots")
PROJECT_DIR = SNAPSHOT_ROOT / "project"
"""Shown in the home screen's header, so the same for every run."""
RATER = "alice"
BINARY = "resolves-issue"
PAIRWISE = "better-response"
SMALL = (80, 24)
LARGE = (120, 40)

Snap = Callable[..., bool]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the support cases (binary) and the PandaLM pairs (pairwise), built once."""
    db = tmp_path_factory.mktemp("snapshot-template") / "evals.duckdb"
    with Store.open(db) as store:
        for toml in (
            SAMPLE / "support" / "resolves-issue.toml",
            SAMPLE / "pandalm" / "better-response.toml",
        ):
            store.save_rubric(rubric_toml.load(toml).to_rubric())
        import_cases(store, SAMPLE / "support" / "cases.jsonl")
        import_cases(
            store,
            SAMPLE / "pandalm" / "testset-200.json",
            mapping={
                "id": ["idx"],
                "input": ["instruction", "input"],
                "output_a": ["response1"],
                "output_b": ["response2"],
            },
        )
    return db


@pytest.fixture
def project(template: Path) -> Iterator[Store]:
    """A fresh copy of the template at the fixed path (locked against concurrent test runs)."""
    SNAPSHOT_ROOT.mkdir(parents=True, exist_ok=True)
    with (SNAPSHOT_ROOT / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            shutil.rmtree(PROJECT_DIR, ignore_errors=True)
            PROJECT_DIR.mkdir()
            shutil.copyfile(template, PROJECT_DIR / "evals.duckdb")
            with Store.open(PROJECT_DIR / "evals.duckdb") as opened:
                yield opened
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def make_app(store: Store, rubric: str | None = None) -> EvaltuiApp:
    """The app as `evaltui label` opens it, with a frozen clock, a fixed rater and seed."""
    return EvaltuiApp(
        store,
        Config(rater=RATER, seed=0),
        label=(rubric, RATER) if rubric else None,
        clock=lambda: 1000.0,
    )


def test_home(snap_compare: Snap, project: Store) -> None:
    assert snap_compare(make_app(project), terminal_size=SMALL)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_binary_label_screen(snap_compare: Snap, project: Store, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(project, BINARY), terminal_size=size)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_pairwise_label_screen(snap_compare: Snap, project: Store, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(project, PAIRWISE), terminal_size=size)


def test_binary_after_two_passes(snap_compare: Snap, project: Store) -> None:
    # Third case on screen, 2/64 done; pace stays "-/min" as the clock does not move.
    assert snap_compare(make_app(project, BINARY), press=["p", "p"], terminal_size=SMALL)
    assert sorted(lb.case_id for lb in project.current_labels(BINARY, RATER)) == [
        "sup-001",
        "sup-002",
    ]


def test_pairwise_word_diff(snap_compare: Snap, project: Store) -> None:
    assert snap_compare(make_app(project, PAIRWISE), press=["w"], terminal_size=LARGE)


def test_binary_raw_view(snap_compare: Snap, project: Store) -> None:
    assert snap_compare(make_app(project, BINARY), press=["v"], terminal_size=SMALL)


def test_help(snap_compare: Snap, project: Store) -> None:
    assert snap_compare(make_app(project, BINARY), press=["question_mark"], terminal_size=SMALL)


async def test_help_title_names_the_keymap_table(project: Store) -> None:
    app = make_app(project, BINARY)
    async with app.run_test(size=LARGE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        title = str(app.screen.query(Label).first().render())
    assert title == "Keys (remap any of them by id in the config file's [keymap])"


def judge_verdicts(store: Store) -> None:
    """The reference labels as a human rater, and a fixed judge that passes three cases in four."""
    import csv

    from evaltui.models import Judge, Verdict
    from evaltui.store.verdicts import add_verdicts

    rubric = store.get_rubric(BINARY)
    with (SAMPLE / "support" / "reference_labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        store.add_label(row["case_id"], rubric, "ref", row["label"], note=row["note"])
    judge = Judge(rubric=BINARY, model="openai/gpt-4o-mini", prompt="Grade {output}")
    store.save_judge(judge)
    add_verdicts(
        store,
        [
            Verdict(
                judge_version=judge.version,
                case_id=row["case_id"],
                value="fail" if i % 4 == 0 else "pass",
                critique=f"critique of {row['case_id']}",
                latency_ms=100.0 + i,
                cost_usd=0.0001,
            )
            for i, row in enumerate(rows)
        ],
    )


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_judge_screen_results(snap_compare: Snap, project: Store, size: tuple[int, int]) -> None:
    judge_verdicts(project)
    assert snap_compare(make_app(project), press=["down", "J", "f3"], terminal_size=size)


def test_judge_screen_prompt(snap_compare: Snap, project: Store) -> None:
    judge_verdicts(project)
    assert snap_compare(make_app(project), press=["down", "J"], terminal_size=SMALL)

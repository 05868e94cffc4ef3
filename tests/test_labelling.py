"""Labelling by key presses, checked against what the store recorded."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from textual.widgets import Input, Static

from evaltui.config import Config
from evaltui.errors import InvalidInput
from evaltui.labelling import shown_swapped
from evaltui.store import Store
from evaltui.ui.app import EvaltuiApp
from evaltui.ui.screens.label import LabelScreen
from evaltui.ui.screens.modals import HelpScreen


class Clock:
    """A clock the test moves by hand, so time spent per case is known exactly."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def project(demo_project: Path) -> Path:
    return demo_project


def screen_of(app: EvaltuiApp) -> LabelScreen:
    screen = app.screen
    assert isinstance(screen, LabelScreen)
    return screen


def text_of(app: EvaltuiApp, selector: str) -> str:
    """What a Static shows, as plain text, rendered at the widget's width."""
    widget = app.screen.query_one(selector, Static)
    console = Console(width=max(widget.size.width, 20), file=io.StringIO(), record=True)
    console.print(widget.content)
    return console.export_text()


async def test_label_20_binary_cases_with_notes_tags_and_time(project: Path) -> None:
    clock = Clock()
    with Store.open(project) as store:
        order = store.case_ids()[:64]
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None), clock=clock)
        expected: dict[str, tuple[str, str, tuple[str, ...], float]] = {}
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            for i in range(20):
                case_id = screen_of(app).case.id  # type: ignore[union-attr]
                assert case_id == order[i]
                note, tags = "", ()
                if i % 5 == 0:
                    await pilot.press("n")
                    await pilot.press(*f"note {i}")
                    await pilot.press("escape")  # closes the note box; keys work again
                    note = f"note {i}"
                if i % 7 == 0:
                    await pilot.press("T")
                    await pilot.press(*"wrong-policy", "enter", "escape")
                    tags = ("wrong-policy",)
                clock.now += 2.5 + i
                value = "pass" if i % 3 else "fail"
                await pilot.press(value[0])
                await pilot.pause()
                expected[case_id] = (value, note, tags, 2.5 + i)
        labels = {lb.case_id: lb for lb in store.current_labels("resolves-issue", "alice")}
        assert set(labels) == set(expected)
        for case_id, (value, note, tags, seconds) in expected.items():
            label = labels[case_id]
            assert (label.value, label.note, label.tags) == (value, note, tags), case_id
            assert label.seconds == pytest.approx(seconds)
            assert label.shown_swapped is None
            assert label.rubric_version == 1


async def test_label_20_pairwise_cases_in_the_shown_order(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="carol", seed=3), label=("better-response", None))
        pressed: dict[str, str] = {}
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            for i in range(20):
                case_id = screen_of(app).case.id  # type: ignore[union-attr]
                key = "abt"[i % 3]
                pressed[case_id] = key
                await pilot.press(key)
                await pilot.pause()
        labels = {lb.case_id: lb for lb in store.current_labels("better-response", "carol")}
        assert set(labels) == set(pressed)
        swaps = 0
        for case_id, key in pressed.items():
            label = labels[case_id]
            swapped = shown_swapped(3, "carol", case_id)
            assert label.shown_swapped is swapped
            shown = {"a": "A", "b": "B", "t": "tie"}[key]
            # Stored in the case's own orientation: a pick of the left output is B when swapped.
            flip = {"A": "B", "B": "A", "tie": "tie"}
            assert label.value == (flip[shown] if swapped else shown)
            swaps += swapped
        assert 0 < swaps < 20  # the order really is randomised


def unique_word(text: str, other: str) -> str | None:
    words = {w.strip(".,;:!?()\"'") for w in other.split()}
    for word in text.split():
        word = word.strip(".,;:!?()\"'")
        if len(word) >= 5 and word.isalpha() and word not in words:
            return word
    return None


async def test_pairwise_screen_shows_the_swapped_output_on_the_left(project: Path) -> None:
    # Narrow, so A is stacked above B and each output's text stands in one section.
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="carol", seed=3), label=("better-response", None))
        checked = {True: 0, False: 0}
        async with app.run_test(size=(80, 200)) as pilot:
            await pilot.pause()
            for _ in range(30):
                screen = screen_of(app)
                case = screen.case
                assert case is not None and case.output_a is not None and case.output_b is not None
                left, right = (
                    (case.output_b, case.output_a)
                    if screen.swapped
                    else (case.output_a, case.output_b)
                )
                shown = " ".join(text_of(app, "#case").split())
                a_part, _, b_part = shown.partition(" B ")
                a_part = a_part.rpartition(" A ")[2]
                only_left, only_right = unique_word(left, right), unique_word(right, left)
                if only_left and only_right:
                    assert only_left in a_part and only_left not in b_part
                    assert only_right in b_part
                    checked[screen.swapped] += 1
                await pilot.press("s")
                await pilot.pause()
        assert checked[True] and checked[False]


async def test_undo_three_times(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            first = screen_of(app).case.id  # type: ignore[union-attr]
            await pilot.press("p", "f", "p", "f", "p")
            await pilot.pause()
            await pilot.press("u", "u", "u")
            await pilot.pause()
            # Back on the third labelled case, which is unlabelled again.
            assert screen_of(app).mine is None
            assert screen_of(app).done == 2
        ids = store.case_ids()
        start = ids.index(first)
        current = {lb.case_id: lb.value for lb in store.current_labels("resolves-issue", "alice")}
        assert current == {ids[start]: "pass", ids[start + 1]: "fail"}
        # Nothing was deleted: five labels and three undo rows.
        rows = (
            store.cursor().execute("SELECT count(*) FROM labels WHERE rater = 'alice'").fetchone()
        )
        assert rows == (8,)


async def test_undo_restores_a_changed_label(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("p", "left", "f", "u")
            await pilot.pause()
        (label,) = store.current_labels("resolves-issue", "alice")
        assert label.value == "pass"


async def test_quit_and_relaunch_resumes_at_the_first_unlabelled_case(project: Path) -> None:
    with Store.open(project) as store:
        ids = store.case_ids()
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("p", "p", "s", "p")  # the third case is skipped
            await pilot.press("q")  # back to home
            await pilot.pause()
            await pilot.press("q")  # quit
        assert app.return_code == 0

    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert screen_of(app).case.id == ids[2]  # type: ignore[union-attr]
            assert "3/64 done" in text_of(app, "#status")
            await pilot.press("p")
            await pilot.pause()
            # The next unlabelled comes after the ones already done.
            assert screen_of(app).case.id == ids[3]  # type: ignore[union-attr]


async def test_blind_until_labelled(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="dave", seed=1), label=("better-response", None))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            meta = text_of(app, "#meta")
            case_text = text_of(app, "#case")
            # The imported annotator columns are other raters' labels: not shown yet.
            for name in ("annotator1", "annotator2", "annotator3"):
                assert name not in meta
                assert name not in case_text
            assert "cmp_key=" in meta  # other metadata is shown
            await pilot.press("left")  # stay on the case: label it, then come back
            await pilot.press("a")
            await pilot.pause()
            await pilot.press("left")
            await pilot.pause()
            meta = text_of(app, "#meta")
            assert "your label: A" in meta
            assert "others: annotator1" in meta


async def test_keymap_from_config_remaps_label_keys(project: Path) -> None:
    with Store.open(project) as store:
        config = Config(rater="erin", keymap={"label.pass": "y", "label.fail": "x"})
        app = EvaltuiApp(store, config, label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("p")  # no longer bound
            await pilot.press("y", "x")
            await pilot.pause()
            footer_keys = {b.binding.key for b in app.screen.active_bindings.values()}
            assert {"y", "x"} <= footer_keys and "p" not in footer_keys
        values = [lb.value for lb in store.current_labels("resolves-issue", "erin")]
        assert values == ["pass", "fail"]


def test_a_keymap_that_makes_two_bindings_share_a_key_is_refused_naming_both(
    cli, project: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text('[keymap]\n"label.fail" = "n"\n', encoding="utf-8")
    result = cli("--config", config, "--db", project, "label", "--rubric", "resolves-issue")
    assert result.code == 1, result.out
    assert result.err == (
        "evaltui: keymap: 'label.fail' = 'n' gives 'n' to two bindings of the binary label "
        "screen: label.fail and label.note; choose another key, or remap label.note too\n"
    )
    with Store.open(project) as store:
        with pytest.raises(InvalidInput, match=r"label\.fail and label\.note"):
            EvaltuiApp(store, Config(rater="erin", keymap={"label.fail": "n"}))
        # Swapping two keys gives each one binding: allowed.
        EvaltuiApp(store, Config(rater="erin", keymap={"label.pass": "f", "label.fail": "p"}))


async def test_help_lists_every_binding_with_its_id(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            label_screen = screen_of(app)
            ids = {b.id for b in type(label_screen).BINDINGS if hasattr(b, "id")}
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            from textual.widgets import DataTable

            table = app.screen.query_one(DataTable)
            listed = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
            assert ids <= listed
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is label_screen


async def test_navigation_go_to_filter_defer_and_next_unlabelled(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            screen = screen_of(app)
            await pilot.press("g", *"sup-021", "enter")
            await pilot.pause()
            assert screen.case is not None and screen.case.id == "sup-021"
            await pilot.press("d")  # defer it
            await pilot.press("g", *"nope", "enter")
            await pilot.pause()
            assert screen.case.id == "sup-021"  # unknown id: stays, with a notice
            await pilot.press("right", "right")
            await pilot.press("D")  # back to the deferred case
            await pilot.pause()
            assert screen.case.id == "sup-021"
            assert "DEFERRED" in text_of(app, "#meta")
            assert store.deferred("resolves-issue", "alice") == ["sup-021"]

            await pilot.press("slash", *"topic=returns", "enter")
            await pilot.pause()
            assert screen.cursor.total == sum(
                1 for i in store.case_ids() if store.get_case(i).metadata.get("topic") == "returns"
            )
            assert screen.case.metadata["topic"] == "returns"
            first_returns = screen.case.id
            await pilot.press("p")
            await pilot.pause()
            assert screen.case.metadata["topic"] == "returns"
            await pilot.press("g", *first_returns, "enter", "N")
            await pilot.pause()
            assert screen.case.id != first_returns
            assert screen.mine is None

            await pilot.press("slash", *"colour", "enter")  # malformed: kept as it was
            await pilot.pause()
            assert screen.cursor.filter.metadata == (("topic", "returns"),)


async def test_note_on_a_labelled_case_is_saved_with_its_label(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("f", "left", "n", *"missed the 2nd question", "enter")
            await pilot.pause()
            assert not app.screen.query_one("#note", Input).display
            await pilot.press("p")  # keys work after the note box closed
            await pilot.pause()
        first, second = store.case_ids()[:2]
        labels = {lb.case_id: lb for lb in store.current_labels("resolves-issue", "alice")}
        assert (labels[first].value, labels[first].note) == ("pass", "missed the 2nd question")
        assert second not in labels or labels[second].value
        history = store.label_history(first, "resolves-issue", "alice")
        assert [h.value for h in history] == ["fail", "fail", "pass"]


async def test_a_session_limits_labelling_to_its_sample(project: Path, cli) -> None:  # type: ignore[no-untyped-def]
    sample = ("sup-010", "sup-003", "sup-030")
    with Store.open(project) as store:
        store.cursor().execute(
            "INSERT INTO sessions VALUES ('calib', 'resolves-issue', ['alice', 'bob'], ?, true, 1, NULL, now())",
            [list(sample)],
        )
        assert store.session_case_ids("calib") == sample
        app = EvaltuiApp(
            store, Config(rater="alice"), label=("resolves-issue", None), case_ids=sample
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            assert screen_of(app).cursor.total == 3
            await pilot.press("p", "p", "p", "p")
            await pilot.pause()
        labelled = {lb.case_id for lb in store.current_labels("resolves-issue", "alice")}
        assert labelled == set(sample)


async def test_r_hides_and_shows_the_rubric(project: Path) -> None:
    with Store.open(project) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("resolves-issue", None))
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            panel = app.screen.query_one("#rubric-scroll")
            assert panel.display and "Does the reply resolve" in text_of(app, "#rubric")
            await pilot.press("r")
            assert not panel.display
            await pilot.press("r", "p")  # shown again, and labelling still works
            await pilot.pause()
            assert panel.display
        assert len(store.current_labels("resolves-issue", "alice")) == 1

r"""Stored text reaches no terminal as control: every command's output, and the TUI's screens.

Rater names, notes, critiques, raw answers, error texts, judge names and models, session
names, slice values (metadata, tags, split) hold an OSC 52 clipboard write
(`\x1b]52;c;...\x07`), a clear screen (`\x1b[2J`), a C1 CSI (`\x9b`), a bidi override
(U+202E), Rich markup (`[red]`) and a newline followed by a forged line. Every command
that prints is run over them: no control character (newline and tab aside) and no bidi
control reaches stdout or stderr, each value is shown as its visible codes, a newline in
a name never starts a line of its own, and `--json` gives the values back exactly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from evaltui.config import Config
from evaltui.errors import InvalidInput
from evaltui.ingest import import_cases
from evaltui.judge.prompt import default_template
from evaltui.models import Judge, Rubric, RubricKind, Verdict
from evaltui.sessions import create_session
from evaltui.store import Store, coding
from evaltui.store.verdicts import add_verdicts
from evaltui.text import echo, field, json_text, literal
from evaltui.ui.app import EvaltuiApp
from evaltui.ui.guard import show_error
from evaltui.ui.screens.agreement import AdjudicationScreen, AgreementScreen
from evaltui.ui.screens.coding import FailureModesScreen
from evaltui.ui.screens.judge import JudgeScreen
from evaltui.ui.screens.modals import TagPicker
from tests.conftest import Result, write_jsonl
from tests.test_ui_literal import export

OSC52 = "\x1b]52;c;aGVsbG8gd29ybGQ=\x07"
CLEAR = "\x1b[2J"
C1 = "\x9b31m"
BIDI = "\u202e"
FORGED = "ok   every check passes"
"""A line a newline in a name would forge."""

ANN = f"ann{OSC52}"
BOB = f"[red]bob{CLEAR}"
CY = f"cy{BIDI}{C1}\n{FORGED}"
RATERS = ["alice", ANN, BOB, CY]
NOTE = f"note {OSC52} [bold]x[/]\n{FORGED}"
CRITIQUE = f"critique {OSC52}{CLEAR}\n{FORGED}"
JUDGE_NAME = f"j{CLEAR}"
MODEL = f"openai/m{OSC52}"
SESSION = f"s{CLEAR}"
TAG = f"t{CLEAR}"
TOPIC = f"topic{OSC52}"

SHOWN = {
    ANN: r"ann\x1b]52;c;aGVsbG8gd29ybGQ=\x07",
    BOB: r"[red]bob\x1b[2J",
    CY: rf"cy\u202e\x9b31m\n{FORGED}",
}
"""The hostile names as they must appear: their characters, written out, on one line."""

UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
N = 30


def assert_safe(result: Result) -> None:
    """Nothing a terminal would obey in what the command printed; no forged line."""
    for stream in (result.out, result.err):
        assert not UNSAFE.findall(stream), stream
        assert "\u2028" not in stream and "\u2029" not in stream
        assert not any(line.lstrip().startswith(FORGED) for line in stream.splitlines())


def value(i: int, rater: int) -> str:
    truth = "pass" if i % 3 else "fail"
    flip = (i + rater) % 7 == 0
    return ("fail" if truth == "pass" else "pass") if flip else truth


def judges() -> tuple[Judge, Judge]:
    first = Judge(name=JUDGE_NAME, rubric="ok", model=MODEL, prompt=default_template(RUBRIC))
    second = first.model_copy(update={"prompt": first.prompt + "\nBe strict."})
    return first, second


def build(folder: Path) -> Path:
    """Thirty cases labelled by the four raters, two judge versions with verdicts, a session."""
    records = [
        {"id": f"c{i:02d}", "input": f"q{i}", "output": f"a{i}", "split": f"tr{C1}",
         "metadata": {"topic": TOPIC if i % 2 else "plain"}, "tags": [TAG]}
        for i in range(N)
    ]  # fmt: skip
    db = folder / "evals.duckdb"
    with Store.open(db) as store:
        store.save_rubric(RUBRIC)
        import_cases(store, write_jsonl(folder / "cases.jsonl", records))
        for r, rater in enumerate(RATERS):
            for i in range(N):
                store.add_label(f"c{i:02d}", RUBRIC, rater, value(i, r), note=NOTE, tags=[TAG])
        for j, judge in enumerate(judges()):
            store.save_judge(judge)
            add_verdicts(store, [
                Verdict(judge_version=judge.version, case_id=f"c{i:02d}",
                        value=None if i == 7 else value(i, j + 5),
                        critique=CRITIQUE, raw=f"raw {OSC52}",
                        error=f"error {OSC52}\n{FORGED}" if i == 7 else None)
                for i in range(N)
            ])  # fmt: skip
        create_session(store, SESSION, "ok", [ANN, BOB], sample=10, seed=1)
        mode = coding.create_mode(store, "ok", f"mode{CLEAR}")
        coding.assign(store, store.current_labels("ok", ANN)[0], mode.id)
    return db


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    return build(tmp_path)


# The one function --------------------------------------------------------------------


def test_literal_writes_out_every_control_and_bidi_character() -> None:
    text = "".join(chr(c) for c in range(0xA0)) + "\u061c\u200e\u200f\u202a\u202e\u2066\u2069"
    shown = literal(text)
    assert not UNSAFE.findall(shown.replace("\n", "").replace("\t", ""))
    assert "\n" in shown and "\t" in shown  # kept in multi-line text
    assert r"\x1b" in shown and r"\x9b" in shown and r"\x7f" in shown and r"\u202e" in shown
    assert "\n" not in field(text) and "\t" not in field(text)
    assert field("a\nb\tc") == r"a\nb\tc"
    assert literal(literal(text)) == literal(text)  # shown once, never twice
    assert literal("[red]x[/]") == "[red]x[/]"  # markup is the caller's to keep literal


def test_json_text_escapes_what_json_dumps_leaves_raw_and_reads_back_exactly() -> None:
    values = {"names": RATERS, "note": NOTE, "c1": C1, "del": "\x7f", "sep": "\u2028", "κ": 1}
    dumped = json_text(values)
    assert not UNSAFE.findall(dumped) and "\n" not in dumped and "\u2028" not in dumped
    assert "κ" in dumped  # non-ASCII text stays readable
    assert json.loads(dumped) == values


def test_echo_prints_literally(capsys: pytest.CaptureFixture[str]) -> None:
    echo(f"{OSC52}\n{CLEAR}")
    assert capsys.readouterr().out == r"\x1b]52;c;aGVsbG8gd29ybGQ=\x07" + "\n" + r"\x1b[2J" + "\n"


# Every command that prints -----------------------------------------------------------------


CLI = Callable[..., Result]


def test_agreement_shows_names_and_slices_literally(cli: CLI, hostile: Path) -> None:
    base = ("agreement", "--db", hostile, "--rubric", "ok", "--resamples", "20")
    text = cli(*base)
    assert text.code == 0, text.err
    assert_safe(text)
    for shown in SHOWN.values():
        assert f"{shown} vs " in text.out or f" vs {shown}" in text.out
    for by, shown in (("topic", r"topic\x1b]52;c;"), ("tag", r"t\x1b[2J"), ("split", r"tr\x9b31m")):
        sliced = cli(*base, "--by", by)
        assert sliced.code == 0, sliced.err
        assert_safe(sliced)
        assert shown in sliced.out
    as_json = cli(*base, "--json", "--by", "topic")
    assert_safe(as_json)
    report = json.loads(as_json.out)
    assert report["raters"] == sorted(RATERS)
    assert {s["value"] for s in report["slices"]} == {TOPIC, "plain"}


def test_an_error_naming_stored_raters_is_one_literal_line(cli: CLI, hostile: Path) -> None:
    result = cli("agreement", "--db", hostile, "--rubric", "ok", "--raters", f"zed{CLEAR},alice")
    assert result.code == 1
    assert_safe(result)
    assert result.err.count("\n") == 1 and result.err.startswith("evaltui: rater ")


def test_session_create_shows_names_and_quoted_commands(cli: CLI, hostile: Path) -> None:
    result = cli("session", "create", f"calib{OSC52}", "--db", hostile, "--rubric", "ok",
                 "--raters", f"{ANN},{BOB},{CY}", "--sample", "5")  # fmt: skip
    assert result.code == 0, result.err
    assert_safe(result)
    lines = result.out.splitlines()
    assert len(lines) == 4  # the summary, then one command per rater
    assert SHOWN[BOB] in lines[0] and SHOWN[CY] in lines[0]
    # Each command is quoted for the shell: a name cannot add a command of its own.
    assert (
        lines[2]
        == r"  evaltui label --rubric ok --rater '[red]bob\x1b[2J' --session 'calib\x1b]52;c;aGVsbG8gd29ybGQ=\x07'"
    )


def test_judge_report_history_and_compare_show_stored_text_literally(
    cli: CLI, hostile: Path
) -> None:
    first, second = (j.version[7:19] for j in judges())
    common = ("--db", hostile, "--rubric", "ok", "--resamples", "20")
    report = cli("judge", "report", *common, "--split", "all")
    assert report.code == 0, report.err
    assert_safe(report)
    assert r"judge j\x1b[2J" in report.out and r"(openai/m\x1b]52;c;" in report.out
    assert r"judge: critique \x1b]52;c;aGVsbG8gd29ybGQ=\x07\x1b[2J ok" in report.out
    assert SHOWN[CY] in report.out  # in the gold line and the human raters
    as_json = cli("judge", "report", *common, "--split", "all", "--json")
    assert_safe(as_json)
    parsed = json.loads(as_json.out)
    assert parsed["judge"]["model"] == MODEL
    assert parsed["disagreements"][0]["critique"] == CRITIQUE
    assert parsed["error_cases"][0]["error"] == f"error {OSC52}\n{FORGED}"
    for command in (("history",), ("compare", first, second)):
        result = cli("judge", *command, *common)
        assert result.code == 0, result.err
        assert_safe(result)
    assert r"j\x1b[2J" in cli("judge", "history", *common).out


def test_approve_gate_and_imports_print_literally(cli: CLI, hostile: Path, tmp_path: Path) -> None:
    common = ("--db", hostile, "--rubric", "ok")
    out = tmp_path / "ok.toml"
    approved = cli("judge", "approve", *common, "--out", out, "--by", BOB, "--resamples", "20")
    assert approved.code == 0, approved.err
    assert_safe(approved)
    gate = cli("gate", out, "--db", hostile)
    assert_safe(gate)
    assert gate.out.splitlines()[-1].startswith("gate: ok ")

    labels = write_jsonl(tmp_path / "labels.jsonl", [{"case_id": "c00", "label": "pass"}])
    imported = cli("labels", "import", labels, *common, "--rater", f"gus{OSC52}\n{FORGED}")
    assert imported.code == 0, imported.err
    assert_safe(imported)
    verdicts = write_jsonl(tmp_path / "v.jsonl", [{"case_id": "c00", "label": "pass"}])
    theirs = cli("judge", "import", verdicts, *common, "--judge", f"x{CLEAR}", "--model", MODEL)
    assert theirs.code == 0, theirs.err
    assert_safe(theirs)
    assert r"judge x\x1b[2J" in theirs.out
    cases = write_jsonl(tmp_path / "more.jsonl", [{"id": OSC52, "input": CLEAR, "output": C1}])
    more = cli("import", cases, "--db", hostile)
    assert more.code == 0, more.err
    assert_safe(more)


# The TUI's screens ---------------------------------------------------------------------------


def assert_screen_safe(app: EvaltuiApp) -> str:
    """The screen as text: nothing interpreted, and no style from a stored string."""
    plain, styled = export(app, styles=False), export(app, styles=True)
    assert not UNSAFE.findall(plain), plain
    assert "\x1b]52;" not in styled and CLEAR not in styled and "\x9b" not in styled
    return plain


async def test_home_agreement_judge_and_coding_screens_show_names_literally(
    hostile: Path,
) -> None:
    with Store.open(hostile) as store:
        app = EvaltuiApp(store, Config(rater=BOB))
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            home = assert_screen_safe(app)
            assert r"[red]bob\x1b[2J 30/30" in home  # the rater's own progress
            assert r"ann\x1b]52;c;aGVsbG8gd29ybGQ=\x07 30" in home
            assert r"s\x1b[2J (ok): ann\x1b]52;c;" in home  # the session

            await pilot.press("A")
            await pilot.pause()
            assert isinstance(app.screen, AgreementScreen)
            figures = assert_screen_safe(app)
            assert rf"two or more of {SHOWN[BOB]}, alice, {SHOWN[ANN]}, {SHOWN[CY]}" in figures
            assert rf"{SHOWN[BOB]} vs alice: n=30" in figures
            assert r"[red]bob\x1b[2J: fail" in figures  # the disagreements table
            assert app.screen.query_one("#disagreements", DataTable).row_count > 0
            await pilot.press("enter")  # adjudicate: the raters side by side
            await pilot.pause()
            assert isinstance(app.screen, AdjudicationScreen)
            grid = assert_screen_safe(app)
            assert rf"┃ {SHOWN[BOB]} " in grid  # a column header, its markup shown as typed
            await pilot.press("escape")
            await pilot.pause()
            pairs = []
            for _ in range(5):  # every other pair of raters
                await pilot.press("right_square_bracket")
                await pilot.pause()
                pairs.append(assert_screen_safe(app))
            assert any(f"alice vs {SHOWN[CY]}: n=30" in shown for shown in pairs)
            await pilot.press("escape")
            await pilot.pause()

            await pilot.press("J")
            await pilot.pause()
            assert isinstance(app.screen, JudgeScreen)
            await pilot.press("f3")
            await pilot.pause()
            results = assert_screen_safe(app)
            assert f"gold: majority of {SHOWN[BOB]}, alice, {SHOWN[ANN]}, {SHOWN[CY]}" in results
            assert r"critique \x1b]52;c;aGVsbG8gd29ybGQ=\x07\x1b[2J ok" in results
            await pilot.press("escape")
            await pilot.pause()

            await pilot.press("F")
            await pilot.pause()
            assert isinstance(app.screen, FailureModesScreen)
            modes = assert_screen_safe(app)
            assert r"mode\x1b[2J" in modes and r"ann\x1b]52;c;" in modes


async def test_tag_picker_shows_stored_tags_literally(hostile: Path) -> None:
    with Store.open(hostile) as store:
        app = EvaltuiApp(store, Config(rater="alice"), label=("ok", None))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("T")
            await pilot.pause()
            assert isinstance(app.screen, TagPicker)
            assert r"t\x1b[2J" in assert_screen_safe(app)


async def test_a_notice_quoting_stored_text_is_literal(hostile: Path) -> None:
    with Store.open(hostile) as store:
        app = EvaltuiApp(store, Config(rater="alice"))
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await pilot.pause()
            show_error(app.screen, InvalidInput(f"rater {BOB} and {ANN}"))
            await pilot.pause()
            messages = [str(n.message) for n in app._notifications]
            assert messages == [f"rater {literal(BOB)} and {literal(ANN)}"]
            assert_screen_safe(app)


async def test_editors_show_stored_text_literally_and_give_it_back_unchanged(
    hostile: Path,
) -> None:
    prompt = f"Grade {{output}} {OSC52}"
    with Store.open(hostile) as store:
        stored = Judge(name="default", rubric="ok", model=MODEL, prompt=prompt)
        store.save_judge(stored)
        store.add_label("c00", RUBRIC, "alice", "pass", note=NOTE)
        app = EvaltuiApp(store, Config(rater="alice"), label=("ok", None))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await pilot.press("n")  # the note box holds the stored note
            await pilot.pause()
            assert r"note \x1b]52;c;aGVsbG8gd29ybGQ=\x07 [bold]x[/]\nok" in assert_screen_safe(app)
            await pilot.press("enter")  # left as shown: nothing to save
            await pilot.pause()
            assert [lb.note for lb in store.label_history("c00", "ok", "alice")][-1] == NOTE
            assert len(store.label_history("c00", "ok", "alice")) == 2

            await pilot.press("escape")
            await pilot.pause()
            screen = JudgeScreen(store, RUBRIC, "alice")
            screen.judge = stored
            await app.push_screen(screen)
            await pilot.pause()
            shown = assert_screen_safe(app)
            assert r"openai/m\x1b]52;c;" in shown and r"Grade {output} \x1b]52;c;" in shown
            assert screen._edited_judge().version == stored.version  # given back unchanged
            screen.query_one("#judge-model", Input).value += "-2"
            edited = screen._edited_judge()
            assert edited.model == r"openai/m\x1b]52;c;aGVsbG8gd29ybGQ=\x07-2"  # what was shown
            assert edited.prompt == prompt

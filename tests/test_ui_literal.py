r"""Case text is untrusted: escape sequences and Rich markup in it are shown, never interpreted.

A case holds an OSC 52 clipboard write (`\x1b]52;c;...\x07`), a clear screen
(`\x1b[2J`), Rich markup (`[bold red]x[/]`), an OSC 8 hyperlink and a C1
control (`\x9b`) in its input, output, metadata, tags, id, a rater's note and
a chat transcript with tool calls. On screen (Textual's pilot) each of them is
shown as visible characters; in a real terminal (a pty) none of them arrives
as a control sequence.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.app import App
from textual.containers import VerticalScroll
from textual.content import Content
from textual.pilot import Pilot

from evaltui.config import Config
from evaltui.ingest import import_cases
from evaltui.models import Rubric, RubricKind
from evaltui.store import Store
from evaltui.ui import app as ui_app
from evaltui.ui.app import EvaltuiApp
from tests.conftest import REPO

RUBRIC = "safe"
RATER = "alice"
SIZE = (120, 40)

OSC52 = "\x1b]52;c;aGVsbG8gd29ybGQ=\x07"
"""Writes 'hello world' to the terminal's clipboard."""
CLEAR = "\x1b[2J"
MARKUP = "[bold red]x[/]"
OSC8 = "\x1b]8;;http://evil.example/\x07link\x1b]8;;\x07"
C1 = "\x9b31m"
"""CSI as a single C1 character: `\x9b31m` is `\x1b[31m` to some terminals."""
PAYLOAD = "aGVsbG8gd29ybGQ="

SHOWN = {
    OSC52: r"\x1b]52;c;aGVsbG8gd29ybGQ=\x07",
    CLEAR: r"\x1b[2J",
    MARKUP: "[bold red]x[/]",
    OSC8: r"\x1b]8;;http://evil.example/\x07link\x1b]8;;\x07",
    C1: r"\x9b31m",
}
"""Each hostile string as it must appear on screen: the characters, written out."""

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Words:
    """What goes into the cases: the hostile strings, or plain words of the same roles."""

    osc52: str
    clear: str
    markup: str
    osc8: str
    c1: str
    text_id: str
    chat_id: str
    red_tag: str


HOSTILE = Words(OSC52, CLEAR, MARKUP, OSC8, C1, "evil[b]x[/b]", "chat[i]y[/i]", "[red]t[/red]")
BENIGN = Words("clipboard", "clear", "bold red x", "hyperlink", "csi31m", "evil-b-x", "chat-i-y",
               "red-t")  # fmt: skip


def build_project(folder: Path, w: Words) -> Path:
    """A binary rubric, a text case and a chat case full of `w`, and a note on the chat case."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = "\n".join([w.osc52, w.clear, w.markup, w.osc8, w.c1])
    records = [
        {
            "id": w.text_id,
            "input": "Question:\n" + lines,
            "output": "Answer:\n" + lines,
            "metadata": {"clip": w.osc52, "style": w.markup, "k" + w.clear: "v"},
            "tags": [w.red_tag, w.clear + "tag"],
        },
        {
            "id": w.chat_id,
            "messages": [
                {"role": "system", "content": "Be helpful. " + w.markup},
                {"role": "user", "name": "bob" + w.clear, "content": "user\n" + lines},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "run" + w.clear, "arguments": json.dumps({"cmd": lines})},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            # Not JSON: raw control characters in the arguments string.
                            "function": {"name": "raw", "arguments": "raw " + w.osc52},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "result " + w.osc52},
            ],
            "output": "final\n" + lines,
        },
    ]  # fmt: skip
    cases = folder / "cases.jsonl"
    cases.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    db = folder / "evals.duckdb"
    with Store.open(db) as store:
        rubric = Rubric(name=RUBRIC, kind=RubricKind.binary, question="Is the reply safe?")
        store.save_rubric(rubric)
        assert import_cases(store, cases).added == 2
        store.add_label(w.chat_id, rubric, RATER, "pass", note=f"note {w.osc52} {w.markup}")
        stored = store.get_case(w.text_id)
        assert stored.input == "Question:\n" + lines  # stored as given, shown literally
    return db


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    return build_project(tmp_path / "hostile", HOSTILE)


def make_app(store: Store) -> EvaltuiApp:
    return EvaltuiApp(
        store, Config(rater=RATER, seed=0), label=(RUBRIC, RATER), clock=lambda: 1000.0
    )


# In-process: what Textual puts on the screen ----------------------------------------


def export(app: App[Any], *, styles: bool) -> str:
    """The whole screen as text (as `App.export_screenshot` renders it, but as text not SVG).

    With `styles`, Rich writes each run's style as the escape codes a terminal would
    get, so a link (OSC 8) or a style change inside a run would show up.
    """
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(
        app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    )
    return console.export_text(styles=styles)


async def whole_case(pilot: Pilot[None]) -> tuple[str, str]:
    """Screen text (plain, styled) at every scroll position of the case pane, joined."""
    app = pilot.app
    scroll = app.screen.query_one("#case-scroll", VerticalScroll)
    plain, styled = [], []
    y = 0
    while True:
        scroll.scroll_to(y=y, animate=False, immediate=True)
        await pilot.pause()
        plain.append(export(app, styles=False))
        styled.append(export(app, styles=True))
        if scroll.scroll_y >= scroll.max_scroll_y:
            break
        y += max(1, scroll.scrollable_content_region.height - 2)
    scroll.scroll_to(y=0, animate=False, immediate=True)
    return "\n".join(plain), "\n".join(styled)


def assert_nothing_interpreted(plain: str, styled: str) -> None:
    """No control character reached the screen; no sequence from a case is in its styles."""
    assert not CONTROL_CHARS.findall(plain)
    assert "\x1b]52;" not in styled
    assert "\x1b]8;" not in styled  # no hyperlink at all
    assert CLEAR not in styled
    assert "\x9b" not in styled
    # The markup is one run of text: no style starts or ends inside it.
    assert MARKUP in styled


async def test_text_case_shows_sequences_and_markup_as_characters(hostile_db: Path) -> None:
    with Store.open(hostile_db) as store:
        app = make_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            plain, styled = await whole_case(pilot)

    assert "INPUT" in plain and "OUTPUT" in plain
    for hostile, shown in SHOWN.items():
        assert plain.count(shown) >= 2, (hostile, shown)  # input and output
    # The id, tags and metadata in the line under the case.
    meta = next(line for line in plain.splitlines() if "evil[b]x[/b]" in line)
    assert r"tags=\x1b[2Jtag,[red]t[/red]" in meta
    assert r"clip=\x1b]52;c;aGVsbG8gd29ybGQ=\x07" in meta
    assert "style=[bold red]x[/]" in meta
    assert r"k\x1b[2J=v" in meta
    assert_nothing_interpreted(plain, styled)


async def test_chat_case_and_note_show_sequences_as_characters(hostile_db: Path) -> None:
    with Store.open(hostile_db) as store:
        app = make_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("j")  # the chat case (labelled, with a note)
            await pilot.pause()
            folded = await whole_case(pilot)
            await pilot.press("e")  # unfold tool calls and results
            await pilot.pause()
            expanded = await whole_case(pilot)

    plain, styled = folded
    assert "chat[i]y[/i]" in plain
    assert "Be helpful. [bold red]x[/]" in plain  # system prompt
    assert r"USER (bob\x1b[2J)" in plain  # the speaker's name
    for hostile, shown in SHOWN.items():
        assert plain.count(shown) >= 2, (hostile, shown)  # user turn and output
    assert r"▸ call run\x1b[2J(" in plain
    assert r"▸ call raw(raw \x1b]52;c;aGVsbG8gd29ybGQ=\x07)" in plain
    assert r"▸ result \x1b]52;c;aGVsbG8gd29ybGQ=\x07" in plain
    assert r"note: note \x1b]52;c;aGVsbG8gd29ybGQ=\x07 [bold red]x[/]" in plain
    assert_nothing_interpreted(plain, styled)

    plain, styled = expanded
    assert r"▾ call run\x1b[2J" in plain
    # Valid JSON arguments are pretty-printed: the escapes stay JSON escapes.
    assert r'"cmd": "\u001b]52;c;aGVsbG8gd29ybGQ=\u0007\n\u001b[2J\n' in plain
    assert r"\x9b31m" in plain
    assert r"raw \x1b]52;c;aGVsbG8gd29ybGQ=\x07" in plain  # not JSON: shown as text
    assert r"result \x1b]52;c;aGVsbG8gd29ybGQ=\x07" in plain
    assert_nothing_interpreted(plain, styled)


async def test_undo_notification_shows_the_case_id_literally(hostile_db: Path) -> None:
    with Store.open(hostile_db) as store:
        app = make_app(store)
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await pilot.pause()
            await pilot.press("p", "u")  # label evil[b]x[/b], then undo it
            await pilot.pause()
            plain = export(app, styles=False)
    toast = [line for line in plain.splitlines() if "Undone:" in line]
    assert toast, "no undo notification on screen"
    assert "Undone: evil[b]x[/b]" in toast[0]


@pytest.fixture
def close_tag_db(tmp_path: Path) -> Path:
    """One plain case whose id closes a markup tag it never opened."""
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"id": "close[/]", "input": "q", "output": "a"}) + "\n")
    db = tmp_path / "evals.duckdb"
    with Store.open(db) as store:
        store.save_rubric(Rubric(name=RUBRIC, kind=RubricKind.binary, question="Safe?"))
        import_cases(store, cases)
    return db


class NotingApp(EvaltuiApp):
    """The app, noting each notification's message and whether it is to be read as markup.

    Run without notifications on screen: a toast that fails to render crashes the app,
    and Textual then spends seconds rendering the traceback. `shown` gives the text the
    toast shows, as Textual's Toast.render makes it.
    """

    CSS_PATH = Path(ui_app.__file__).with_name("app.tcss")  # relative to the subclass otherwise

    def __init__(self, store: Store) -> None:
        super().__init__(
            store, Config(rater=RATER, seed=0), label=(RUBRIC, RATER), clock=lambda: 1000.0
        )
        self.notes: list[tuple[str, bool]] = []

    def notify(self, message: str, *, markup: bool = True, **kwargs: Any) -> None:  # type: ignore[override]
        self.notes.append((message, markup))
        super().notify(message, markup=markup, **kwargs)

    def shown(self) -> list[str]:
        return [Content.from_markup(m).plain if markup else m for m, markup in self.notes]


async def test_undo_of_a_case_whose_id_closes_a_tag_shows_it(close_tag_db: Path) -> None:
    with Store.open(close_tag_db) as store:
        app = NotingApp(store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("p", "u")
            await pilot.pause()
    assert "Undone: close[/]" in app.shown()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("g", "No case '[/]' here"),
        ("slash", "filter '[/]': expected FIELD=VALUE, e.g. split=trusted tag=vip topic=returns"),
    ],
    ids=["go-to", "filter"],
)
async def test_prompt_text_echoed_in_a_notification_is_literal(
    close_tag_db: Path, key: str, message: str
) -> None:
    with Store.open(close_tag_db) as store:
        app = NotingApp(store)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press(key, "left_square_bracket", "slash", "right_square_bracket", "enter")
            await pilot.pause()
    assert [m for m, _ in app.notes] == [message]  # the app's own message, as typed
    assert app.shown() == [message]


# In a real terminal: the bytes the terminal receives ---------------------------------


class Terminal:
    """`evaltui --db DB label` under a pseudo-terminal of 120x40: what it writes, byte for byte."""

    def __init__(self, db: Path, config_home: Path) -> None:
        argv = [sys.executable, "-m", "evaltui", "--db", str(db), "label", "--rubric", RUBRIC,
                "--rater", RATER]  # fmt: skip
        env = {**os.environ, "TERM": "xterm-256color", "XDG_CONFIG_HOME": str(config_home)}
        env.pop("EVALTUI_DEBUG", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            try:
                os.chdir(REPO)
                os.execve(sys.executable, argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self.received = bytearray()
        self.closed = False
        self.code: int | None = None

    def read(self) -> None:
        """Take what the app has written (the caller knows it is ready)."""
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the app has closed the terminal
            chunk = b""
        if chunk:
            self.received.extend(chunk)
        else:
            self.closed = True

    def has(self, marker: bytes | None) -> bool:
        return self.closed if marker is None else marker in self.received

    def finish(self) -> None:
        """Reap the app (killing it if it has not exited within seconds) and close the terminal."""
        if self.code is not None:
            return
        deadline = time.monotonic() + 10
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        while pid == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
        self.code = os.waitstatus_to_exitcode(status)
        os.close(self.fd)


def pump(terminals: list[Terminal], markers: list[bytes | None], timeout: float) -> None:
    """Read every terminal until each has shown its marker (None: closed), then a little more."""
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    while time.monotonic() < (settle_until or deadline):
        if settle_until is None and all(t.has(m) for t, m in zip(terminals, markers, strict=True)):
            settle_until = time.monotonic() + 0.3  # let the rest of a repaint arrive
        open_fds = {t.fd: t for t in terminals if not t.closed}
        if not open_fds:
            break
        ready, _, _ = select.select(list(open_fds), [], [], 0.05)
        for fd in ready:
            open_fds[fd].read()
    for t, m in zip(terminals, markers, strict=True):
        wanted = "the app to exit" if m is None else repr(m)
        assert t.has(m), f"waited for {wanted}; last bytes: {bytes(t.received[-300:])!r}"


def run_in_terminals(projects: list[tuple[Path, Words]], config_home: Path) -> list[bytes]:
    """What each project's labelling screen writes to its terminal as a rater reads both cases.

    Opens on the text case, `j` goes to the chat case, `e` unfolds it, `q` goes back to the
    home screen and `q` quits. The apps run side by side, in step.
    """
    terminals: list[Terminal] = []
    try:
        for db, _ in projects:
            terminals.append(Terminal(db, config_home))
        steps: list[tuple[bytes, list[bytes | None]]] = [
            (b"", [w.text_id.encode() for _, w in projects]),
            (b"j", [w.chat_id.encode() for _, w in projects]),
            (b"e", ["▾ call".encode()] * len(projects)),
            (b"q", [b"Progress"] * len(projects)),  # the home screen's table
            (b"q", [None] * len(projects)),
        ]
        for key, markers in steps:
            for t in terminals:
                if key:
                    os.write(t.fd, key)
            pump(terminals, markers, 20)
    finally:
        for t in terminals:
            t.finish()
    assert [t.code for t in terminals] == [0] * len(terminals)
    return [bytes(t.received) for t in terminals]


_SEQUENCE = re.compile(rb"\x1b\[([<=>?]?)[0-9;:]*([ -/]*)([@-~])|\x1b\]([0-9]*)|\x1b([^\[\]])")


def sequence_kinds(data: bytes) -> set[tuple[bytes, ...]]:
    """The kinds of escape sequence in `data`: CSI by prefix and final byte, OSC by number."""
    kinds = set()
    for m in _SEQUENCE.finditer(data):
        if m.group(3) is not None:
            kinds.add((b"CSI", m.group(1), m.group(2), m.group(3)))
        elif m.group(4) is not None:
            kinds.add((b"OSC", m.group(4)))
        else:
            kinds.add((b"ESC", m.group(5)))
    return kinds


def test_terminal_receives_no_sequence_from_a_case(tmp_path: Path) -> None:
    hostile, control = run_in_terminals(
        [
            (build_project(tmp_path / "hostile", HOSTILE), HOSTILE),
            (build_project(tmp_path / "benign", BENIGN), BENIGN),
        ],
        config_home=tmp_path,
    )

    # No clipboard write, no hyperlink, no C1 control, nothing invalid as UTF-8.
    assert b"\x1b]52;" not in hostile
    assert b"\x1b]8;;http://evil.example" not in hostile
    assert hostile.count(b"\x1b]8;") == control.count(b"\x1b]8;")
    text = hostile.decode("utf-8", errors="replace")
    assert "\x9b" not in text and "\ufffd" not in text
    # The payload only ever arrives as visible text after the visible escape code.
    starts = [m.start() for m in re.finditer(re.escape(PAYLOAD.encode()), hostile)]
    assert len(starts) >= 4
    for start in starts:
        before = hostile[max(0, start - 12) : start]
        assert before.endswith((rb"\x1b]52;c;", rb"\u001b]52;c;")), before
    assert rb"\x1b]52;c;aGVsbG8gd29ybGQ=\x07" in hostile

    # Textual's own clears and BELs (OSC terminators) only: no more than a benign case gets.
    assert hostile.count(CLEAR.encode()) <= control.count(CLEAR.encode())
    assert hostile.count(b"\x07") <= control.count(b"\x07")
    unexpected = sequence_kinds(hostile) - sequence_kinds(control)
    assert not unexpected, unexpected

    # Both cases were drawn, the markup, ids and escape codes as the characters they are.
    assert b"evil[b]x[/b]" in hostile and b"chat[i]y[/i]" in hostile
    assert MARKUP.encode() in hostile
    assert rb"\x1b[2J" in hostile and rb"\x9b31m" in hostile
    assert rb"\x1b]8;;http://evil.example/\x07link" in hostile

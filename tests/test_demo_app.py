"""`evaltui demo` builds a project from sample_data; the app starts, shows it and quits on `q`."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

from textual.widgets import DataTable, Static

from evaltui.demo import build_demo_project
from evaltui.store import Store
from evaltui.ui.app import EvaltuiApp


def test_demo_project_holds_both_sample_sets(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("demo", "--dir", tmp_path, "--no-ui")
    assert result.code == 0, result.err
    db = Path(result.out.strip())
    with Store.open(db) as store:
        assert store.count_cases() == 64 + 200
        assert [r.name for r in store.rubrics()] == ["better-response", "resolves-issue"]
        assert store.count_labels("better-response") == 600
        assert {lb.rater for lb in store.current_labels("better-response")} == {
            "annotator1", "annotator2", "annotator3",
        }  # fmt: skip


async def test_home_shows_the_project_and_q_quits(tmp_path: Path) -> None:
    db = build_demo_project(tmp_path)
    with Store.open(db) as store:
        app = EvaltuiApp(store)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            summary = app.screen.query_one("#project", Static)
            assert "264 cases" in str(summary.render())
            table = app.screen.query_one("#rubrics", DataTable)
            cells = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            rows = {row[0]: row for row in cells}
            assert set(rows) == {"better-response", "resolves-issue"}
            assert rows["better-response"][1:6] == ["pairwise", "1", "draft", "200", "600"]
            assert rows["resolves-issue"][4:6] == ["64", "0"]
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0
        assert not app.is_running


def test_demo_command_starts_and_quits_in_a_terminal(tmp_path: Path) -> None:
    # The real entry point under a pseudo-terminal: it must draw and exit on `q`.
    code = (
        "import sys; from evaltui.cli import main; "
        f"sys.exit(main(['demo', '--dir', {str(tmp_path)!r}]))"
    )
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-c", code])
    seen = b""
    deadline = time.monotonic() + 30
    while b"resolves-issue" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    assert b"resolves-issue" in seen
    os.write(fd, b"q")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


async def test_the_home_selection_is_kept_after_each_sub_screen(tmp_path: Path) -> None:
    # Before, the cursor went back to the first rubric, so the next key acted on the wrong one.
    db = build_demo_project(tmp_path)
    with Store.open(db) as store:
        app = EvaltuiApp(store)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            home = app.screen
            table = home.query_one("#rubrics", DataTable)

            def selected() -> str:
                row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
                return str(row_key.value)

            await pilot.press("down")
            assert selected() == "resolves-issue"
            for key in ("enter", "J", "F"):  # label, judge, failure modes
                await pilot.press(key)
                await pilot.pause()
                assert app.screen is not home, key
                await pilot.press("escape")
                await pilot.pause()
                assert app.screen is home, key
                assert selected() == "resolves-issue", key

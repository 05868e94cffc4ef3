"""The home screen: the project's rubrics with each rater's progress; Enter starts labelling."""

from __future__ import annotations

import shlex
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from evaltui.labelling import CaseCursor, CaseFilter
from evaltui.models import RubricKind
from evaltui.store import Store
from evaltui.text import field
from evaltui.ui.guard import guarded, notice, show_error


class HomeScreen(Screen[None]):
    """Pick a rubric; see how far each rater has got."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "label", "Label", id="home.label", tooltip="Label the selected rubric"),
        Binding(
            "A",
            "agreement",
            "Agreement",
            id="home.agreement",
            tooltip="Agreement between raters, disagreements and adjudication",
        ),
        Binding(
            "F",
            "failure_modes",
            "Failure modes",
            id="home.failure_modes",
            tooltip="Group notes into named failure modes",
        ),
        Binding(
            "J",
            "judge",
            "Judge",
            id="home.judge",
            tooltip="Run the rubric's LLM judge, calibrate it against the humans, approve it",
        ),
        Binding(
            "S",
            "new_session",
            "New session",
            id="home.new_session",
            tooltip="Sample cases of the selected rubric for two or more raters",
        ),
        Binding("q", "app.quit", "Quit", id="app.quit", tooltip="Leave evaltui"),
    ]

    def __init__(self, store: Store, rater: str) -> None:
        super().__init__()
        self.store = store
        self.rater = rater

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="project", markup=False)
        yield DataTable(id="rubrics", cursor_type="row")
        yield Static(id="sessions", markup=False)
        yield Static(id="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#rubrics", DataTable)
        table.add_columns("Rubric", "Kind", "Version", "Status", "Cases", "Labels", "Progress")
        table.focus()

    @guarded
    def on_screen_resume(self) -> None:
        # Filled when shown (first time and after labelling), not at mount: with
        # `evaltui label` the labelling screen opens on top without waiting for this.
        self.refresh_table()

    def refresh_table(self) -> None:
        """Re-read rubrics and progress (after coming back from labelling)."""
        count = self.store.count_cases()
        self.query_one("#project", Static).update(
            Text(field(f"{count} case{'s' if count != 1 else ''} in {self.store.path}"))
        )
        table = self.query_one("#rubrics", DataTable)
        selected, row = self._selected(), table.cursor_row
        table.clear()
        for rubric in self.store.rubrics():
            kind = "pair" if rubric.kind is RubricKind.pairwise else "single"
            total = CaseCursor(self.store, CaseFilter(kind=kind)).total
            per_rater = self.store.label_counts(rubric.name)
            mine = per_rater.get(self.rater, 0)
            progress = [f"{field(self.rater)} {mine}/{total}"]
            progress += [f"{field(r)} {n}" for r, n in sorted(per_rater.items()) if r != self.rater]
            cells = [
                rubric.name,
                rubric.kind.value,
                str(rubric.version),
                rubric.status.value,
                str(total),
                str(sum(per_rater.values())),
                ", ".join(progress),
            ]
            # Cells are Text: a DataTable would read plain strings (rater names) as markup.
            table.add_row(*(Text(field(c)) for c in cells), key=rubric.name)
        # Keep the selection: the next key (Enter, A, J, F, S) acts on the rubric it did.
        if selected is not None and selected in table.rows:
            row = table.get_row_index(selected)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        self.query_one("#sessions", Static).update(self._sessions_text())
        hint = (
            f"Enter: label the selected rubric as {field(self.rater)}   "
            "A: agreement   J: judge   F: failure modes   q: quit"
        )
        if table.row_count == 0:
            hint = "No rubrics yet: add one with 'evaltui rubric import FILE.toml'"
        self.query_one("#hint", Static).update(Text(hint, style="dim"))

    def _selected(self) -> str | None:
        table = self.query_one("#rubrics", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    def _sessions_text(self) -> Text:
        rows = (
            self.store.cursor()
            .execute("SELECT name, rubric, raters, case_ids FROM sessions ORDER BY created_at")
            .fetchall()
        )
        text = Text()
        if rows:
            text.append("Calibration sessions\n", style="bold")
        for name, rubric, raters, case_ids in rows:
            done = (
                self.store.cursor()
                .execute(
                    "SELECT rater, count(*) FROM current_labels WHERE rubric = ? "
                    "AND list_contains(?::VARCHAR[], case_id) GROUP BY rater",
                    [rubric, case_ids],
                )
                .fetchall()
            )
            counts = dict(done)
            progress = ", ".join(f"{field(r)} {counts.get(r, 0)}/{len(case_ids)}" for r in raters)
            text.append(f"  {field(name)} ({field(rubric)}): {progress}\n")
            command = shlex.join(["evaltui", "label", "--rubric", rubric, "--session", name])
            text.append(f"    {field(command)}\n", style="dim")
        return text

    def action_new_session(self) -> None:
        from evaltui.errors import EvaltuiError
        from evaltui.sessions import create_session
        from evaltui.ui.screens.modals import PromptScreen

        rubric = self._selected()
        if rubric is None:
            return

        def create(text: str | None) -> None:
            if not text:
                return
            try:
                name, options = _session_spec(text)
                raters = [r for r in options.pop("raters", "").split(",") if r]
                session = create_session(
                    self.store,
                    name,
                    rubric,
                    raters,
                    sample=int(options["sample"]) if "sample" in options else None,
                    by=options.get("by"),
                    seed=int(options.get("seed", 0)),
                )
            except (EvaltuiError, ValueError) as error:
                show_error(self, error)
                return
            notice(self, f"Session {session.name}: {len(session.case_ids)} cases")
            self.refresh_table()

        self.app.push_screen(
            PromptScreen(
                f"New session of {rubric}: NAME raters=A,B [sample=N] [by=FIELD] [seed=S]",
                placeholder="calib-1 raters=alice,bob sample=50 by=topic seed=7",
            ),
            create,
        )

    def action_label(self) -> None:
        name = self._selected()
        if name is None:
            return
        from evaltui.ui.app import EvaltuiApp

        app = self.app
        assert isinstance(app, EvaltuiApp)
        app.open_labelling(name, self.rater)

    def action_judge(self) -> None:
        from evaltui.ui.screens.judge import JudgeScreen

        name = self._selected()
        if name is not None:
            self.app.push_screen(JudgeScreen(self.store, self.store.get_rubric(name), self.rater))

    def action_agreement(self) -> None:
        from evaltui.ui.screens.agreement import AgreementScreen

        name = self._selected()
        if name is not None:
            self.app.push_screen(
                AgreementScreen(self.store, self.store.get_rubric(name), self.rater)
            )

    def action_failure_modes(self) -> None:
        from evaltui.ui.screens.coding import FailureModesScreen

        name = self._selected()
        if name is not None:
            self.app.push_screen(FailureModesScreen(self.store, self.store.get_rubric(name)))

    @guarded
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_label()


def _session_spec(text: str) -> tuple[str, dict[str, str]]:
    """`NAME key=value ...` from the new-session prompt.

    >>> _session_spec("calib raters=a,b sample=20")
    ('calib', {'raters': 'a,b', 'sample': '20'})
    """
    words = text.split()
    if not words or "=" in words[0]:
        raise ValueError("start with the session's name, e.g. calib-1 raters=alice,bob sample=50")
    options = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or key not in ("raters", "sample", "by", "seed"):
            raise ValueError(f"{word!r}: use raters=, sample=, by= or seed=")
        options[key] = value
    return words[0], options

"""The home screen: the project's rubrics with each rater's progress; Enter starts labelling."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from evaltui.labelling import CaseCursor, CaseFilter
from evaltui.models import RubricKind
from evaltui.store import Store
from evaltui.ui.render import literal


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
        yield Static(id="hint", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.app.sub_title = str(self.store.path)
        table = self.query_one("#rubrics", DataTable)
        table.add_columns("Rubric", "Kind", "Version", "Status", "Cases", "Labels", "Progress")
        table.focus()

    def on_screen_resume(self) -> None:
        # Filled when shown (first time and after labelling), not at mount: with
        # `evaltui label` the labelling screen opens on top without waiting for this.
        self.refresh_table()

    def refresh_table(self) -> None:
        """Re-read rubrics and progress (after coming back from labelling)."""
        count = self.store.count_cases()
        self.query_one("#project", Static).update(
            Text(f"{count} case{'s' if count != 1 else ''} in {self.store.path}")
        )
        table = self.query_one("#rubrics", DataTable)
        table.clear()
        for rubric in self.store.rubrics():
            kind = "pair" if rubric.kind is RubricKind.pairwise else "single"
            total = CaseCursor(self.store, CaseFilter(kind=kind)).total
            per_rater = self.store.label_counts(rubric.name)
            mine = per_rater.get(self.rater, 0)
            progress = [f"{self.rater} {mine}/{total}"]
            progress += [f"{r} {n}" for r, n in sorted(per_rater.items()) if r != self.rater]
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
            table.add_row(*(Text(literal(c)) for c in cells), key=rubric.name)
        hint = (
            f"Enter: label the selected rubric as {literal(self.rater)}   "
            "A: agreement   F: failure modes   q: quit"
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

    def action_label(self) -> None:
        name = self._selected()
        if name is None:
            return
        from evaltui.ui.app import EvaltuiApp

        app = self.app
        assert isinstance(app, EvaltuiApp)
        app.open_labelling(name, self.rater)

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

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_label()

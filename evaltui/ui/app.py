"""The evaltui application: a home screen over one open project."""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from evaltui.store import Store


class EvaltuiApp(App[None]):
    """evaltui's TUI. Labelling screens arrive with the labelling work; this is the home."""

    TITLE = "evaltui"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave evaltui"),
    ]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store
        """The open project."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="project")
        yield DataTable(id="rubrics", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.store.path)
        count = self.store.count_cases()
        self.query_one("#project", Static).update(
            f"{count} case{'s' if count != 1 else ''} in {self.store.path}"
        )
        table = self.query_one("#rubrics", DataTable)
        table.add_columns("Rubric", "Kind", "Version", "Status", "Labels", "Raters")
        for rubric in self.store.rubrics():
            labels = self.store.current_labels(rubric.name)
            raters = sorted({label.rater for label in labels})
            table.add_row(
                rubric.name,
                rubric.kind.value,
                str(rubric.version),
                rubric.status.value,
                str(len(labels)),
                ", ".join(raters) or "-",
            )

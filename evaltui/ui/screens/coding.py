"""Axial coding: every note of a rubric, grouped into named failure modes ranked by frequency."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from evaltui.errors import EvaltuiError
from evaltui.models import Label, Rubric
from evaltui.store import Store, coding
from evaltui.text import field
from evaltui.ui.guard import guarded, show_error
from evaltui.ui.screens.modals import PromptScreen


class FailureModesScreen(Screen[None]):
    """Notes above, failure modes ranked by how many labels they cover below."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "assign", "Assign", id="modes.assign",
                tooltip="Put the selected note in a failure mode (typing a new name creates it)"),
        Binding("c", "create", "New mode", id="modes.create", tooltip="Create a failure mode"),
        Binding("R", "rename", "Rename", id="modes.rename", tooltip="Rename a failure mode"),
        Binding("m", "merge", "Merge", id="modes.merge", tooltip="Fold one failure mode into another"),
        Binding("escape,q", "app.pop_screen", "Back", id="modes.back"),
    ]  # fmt: skip

    def __init__(self, store: Store, rubric: Rubric) -> None:
        super().__init__()
        self.store = store
        self.rubric = rubric
        self.notes: dict[str, Label] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="modes-title", markup=False)
        yield DataTable(id="notes", cursor_type="row", zebra_stripes=True)
        yield Static(id="ranking", markup=False)
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        table = self.query_one("#notes", DataTable)
        table.add_columns("Case", "Rater", "Label", "Note", "Failure modes")
        self.reload()
        table.focus()

    def reload(self) -> None:
        """Re-read notes, links and the ranking."""
        linked = coding.label_modes(self.store, self.rubric.name)
        labels = [lb for lb in self.store.current_labels(self.rubric.name) if lb.note.strip()]
        self.notes = {lb.id: lb for lb in labels}
        table = self.query_one("#notes", DataTable)
        row = table.cursor_row
        table.clear()
        for lb in labels:
            cells = [
                lb.case_id,
                lb.rater,
                lb.value or "-",
                lb.note,
                ", ".join(linked.get(lb.id, [])) or "-",
            ]
            table.add_row(*(Text(field(c)) for c in cells), key=lb.id)
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        uncoded = sum(1 for lb in labels if lb.id not in linked)
        self.query_one("#modes-title", Static).update(
            Text(
                f"{self.rubric.name}: {len(labels)} notes, {uncoded} not yet in a failure mode",
                style="bold",
            )
        )
        text = Text("Failure modes by frequency\n", style="bold")
        ranked = coding.ranking(self.store, self.rubric.name)
        if not ranked:
            text.append("none yet: select a note and press a to name its failure mode", style="dim")
        for i, item in enumerate(ranked, start=1):
            examples = ", ".join(field(e) for e in item.examples)
            text.append(f"{i:>2}. {field(item.mode.name)}  {item.count}")
            text.append(f"   e.g. {examples}\n" if examples else "\n", style="dim")
        self.query_one("#ranking", Static).update(text)

    def _selected(self) -> Label | None:
        table = self.query_one("#notes", DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return self.notes.get(str(key.value))

    def _mode_named(self, name: str) -> coding.FailureMode | None:
        return next(
            (m for m in coding.modes(self.store, self.rubric.name) if m.name == name.strip()), None
        )

    def _ask(self, title: str, then: Callable[[str], None]) -> None:
        def answered(text: str | None) -> None:
            if not text or not text.strip():
                return
            try:
                then(text.strip())
            except EvaltuiError as error:
                show_error(self, error)
            self.reload()

        self.app.push_screen(PromptScreen(title), answered)

    def action_assign(self) -> None:
        label = self._selected()
        if label is None:
            return

        def assign(name: str) -> None:
            mode = self._mode_named(name) or coding.create_mode(self.store, self.rubric.name, name)
            coding.assign(self.store, label, mode.id)

        self._ask(f"Failure mode for: {field(label.note)[:60]}", assign)

    def action_create(self) -> None:
        def create(name: str) -> None:
            coding.create_mode(self.store, self.rubric.name, name)

        self._ask("New failure mode name", create)

    def action_rename(self) -> None:
        def rename(text: str) -> None:
            old, sep, new = text.partition("=")
            mode = self._mode_named(old)
            if not sep or mode is None or not new.strip():
                raise EvaltuiError("write OLD NAME = NEW NAME, with an existing mode on the left")
            coding.rename_mode(self.store, mode.id, new)

        self._ask("Rename: OLD NAME = NEW NAME", rename)

    def action_merge(self) -> None:
        def merge(text: str) -> None:
            source_name, sep, target_name = text.partition(">")
            source, target = self._mode_named(source_name), self._mode_named(target_name)
            if not sep or source is None or target is None:
                raise EvaltuiError("write FROM > INTO with two existing failure modes")
            coding.merge_modes(self.store, source.id, target.id)

        self._ask("Merge: FROM > INTO", merge)

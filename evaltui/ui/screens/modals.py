"""Small dialogs: a one-line prompt, the failure-mode tag picker, and the key help."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, SelectionList

from evaltui.text import field


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (a case id, a filter); None when cancelled with Esc."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel")
    ]

    def __init__(self, title: str, *, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self._title = title
        self._value = value
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(field(self._title), markup=False)
            yield Input(value=self._value, placeholder=self._placeholder, id="prompt")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TagPicker(ModalScreen[tuple[str, ...] | None]):
    """Pick failure-mode tags: type to filter, Enter on text adds (or creates) it, Esc is done."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "done", "Done", id="tags.done"),
    ]

    def __init__(self, known: list[str], selected: tuple[str, ...]) -> None:
        super().__init__()
        self._known = list(dict.fromkeys([*selected, *known]))
        self._selected = set(selected)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(
                "Failure-mode tags: type to filter, Enter adds, Space toggles, Esc done",
                markup=False,
            )
            yield Input(placeholder="tag", id="tag-filter")
            yield SelectionList[str](id="tag-list")

    def on_mount(self) -> None:
        self._refill("")

    def _refill(self, text: str) -> None:
        options = self.query_one("#tag-list", SelectionList)
        options.clear_options()
        needle = text.strip().lower()
        for tag in self._known:
            if needle in tag.lower():
                options.add_option((Text(field(tag)), tag, tag in self._selected))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._refill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        tag = event.value.strip()
        if tag:
            if tag not in self._known:
                self._known.insert(0, tag)
            self._selected.add(tag)
        event.input.value = ""
        self._refill("")

    def on_selection_list_selection_toggled(self, event: SelectionList.SelectionToggled) -> None:
        tag = str(event.selection.value)
        self._selected ^= {tag}

    def action_done(self) -> None:
        self.dismiss(tuple(t for t in self._known if t in self._selected))


class HelpScreen(ModalScreen[None]):
    """Every key of the screen underneath, generated from its bindings (after the keymap)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close")
    ]

    def __init__(self, rows: list[tuple[str, str, str, str]]) -> None:
        super().__init__()
        self._rows = rows

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label(
                "Keys (remap any of them by id in the config file's [keymap])", markup=False
            )
            yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#keys", DataTable)
        table.add_columns("Key", "Does", "Id", "")
        for row in self._rows:
            table.add_row(*(Text(cell) for cell in row))
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)

"""Agreement, adjudication and rubric editing: where two raters' labels are reconciled."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static, TextArea

from evaltui import rubric_toml
from evaltui.agreement import agreement_report, render_text
from evaltui.errors import EvaltuiError
from evaltui.models import AdjudicationCause, Rubric, RubricKind
from evaltui.store import Store, coding
from evaltui.text import field
from evaltui.ui import render
from evaltui.ui.guard import guarded, notice, show_error


class AgreementScreen(Screen[None]):
    """One pair of raters at a time: figures, confusion matrix, and their disagreements."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right_square_bracket", "pair(1)", "Next pair", id="agreement.next_pair"),
        Binding("left_square_bracket", "pair(-1)", "Prev pair", id="agreement.prev_pair", show=False),
        Binding("b", "slice", "By field", id="agreement.by",
                tooltip="Agreement per slice: split, tag or a metadata field"),
        Binding("E", "edit_rubric", "Edit rubric", id="agreement.edit_rubric",
                tooltip="Edit the rubric; saving makes a new version"),
        Binding("escape,q", "app.pop_screen", "Back", id="agreement.back"),
    ]  # fmt: skip

    def __init__(self, store: Store, rubric: Rubric, adjudicator: str) -> None:
        super().__init__()
        self.store = store
        self.rubric = rubric
        self.adjudicator = adjudicator
        self.report: dict[str, Any] = {}
        self.pair = 0
        self.by: str | None = None
        """The field the per-slice table is cut by (None: no slices)."""

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="figures-scroll"):
            yield Static(id="figures", markup=False)
        yield DataTable(id="disagreements", cursor_type="row", zebra_stripes=True)
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        table = self.query_one("#disagreements", DataTable)
        table.add_columns("Case", "Rater 1", "Rater 2", "Gold", "Notes")
        self.reload()
        table.focus()

    def reload(self) -> None:
        """Recompute the report (after an adjudication or a rubric edit)."""
        try:
            self.report = agreement_report(self.store, self.rubric.name, by=self.by, resamples=1000)
        except EvaltuiError as error:
            self.query_one("#figures", Static).update(Text(render.literal(str(error))))
            return
        self.pair %= len(self.report["pairs"])
        self._show_pair()

    def _show_pair(self) -> None:
        pair = self.report["pairs"][self.pair]
        single = {**self.report, "pairs": [pair]}
        if "slices" in single:
            single["slices"] = [
                {**piece, "pairs": [p for p in piece["pairs"] if p["raters"] == pair["raters"]]}
                for piece in single["slices"]
            ]
        header = f"pair {self.pair + 1} of {len(self.report['pairs'])} ([ and ] to switch)\n"
        self.query_one("#figures", Static).update(Text(header + render_text(single)))
        first, second = pair["raters"]
        gold = coding.adjudications(self.store, self.rubric.name)
        labels = {(lb.rater, lb.case_id): lb for lb in self.store.current_labels(self.rubric.name)}
        table = self.query_one("#disagreements", DataTable)
        table.clear()
        cases = sorted(
            {c for (r, c) in labels if r == first} & {c for (r, c) in labels if r == second},
            key=_natural,
        )
        for case_id in cases:
            a, b = labels[(first, case_id)], labels[(second, case_id)]
            if a.value == b.value:
                continue
            notes = " | ".join(n for n in (a.note, b.note) if n)
            cells = [case_id, f"{first}: {a.value}", f"{second}: {b.value}",
                     gold[case_id].value if case_id in gold else "-", notes]  # fmt: skip
            table.add_row(*(Text(field(c)) for c in cells), key=case_id)

    def action_pair(self, step: int) -> None:
        if self.report.get("pairs"):
            self.pair = (self.pair + step) % len(self.report["pairs"])
            self._show_pair()

    def action_slice(self) -> None:
        from evaltui.ui.screens.modals import PromptScreen

        def cut(field: str | None) -> None:
            if field is not None:
                self.by = field.strip() or None
                self.reload()

        self.app.push_screen(
            PromptScreen(
                "Slice by (split, tag, or a metadata field; empty for none)", value=self.by or ""
            ),
            cut,
        )

    @guarded
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        case_id = str(event.row_key.value)
        raters = self.report["pairs"][self.pair]["raters"]
        self.app.push_screen(
            AdjudicationScreen(self.store, self.rubric, case_id, raters, self.adjudicator),
            lambda saved: self.reload() if saved else None,
        )

    def action_edit_rubric(self) -> None:
        def saved(rubric: Rubric | None) -> None:
            if rubric is not None:
                self.rubric = rubric
                notice(self, f"Saved {rubric.name} version {rubric.version}")

        self.app.push_screen(RubricEditScreen(self.store, self.rubric), saved)


def _natural(case_id: str) -> tuple[int, str]:
    """Sort ids like 9 before 10, and text ids alphabetically after numbers."""
    return (int(case_id), "") if case_id.isdigit() else (1 << 62, case_id)


CAUSES = {"1": AdjudicationCause.ambiguous_case, "2": AdjudicationCause.rubric_gap,
          "3": AdjudicationCause.rater_error}  # fmt: skip


class AdjudicationScreen(ModalScreen[bool]):
    """The case, each rater's label and note side by side; keys record the gold label and cause."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "gold('pass')", "Gold pass", id="adjudicate.pass"),
        Binding("f", "gold('fail')", "Gold fail", id="adjudicate.fail"),
        Binding("a", "gold('A')", "Gold A", id="adjudicate.a"),
        Binding("b", "gold('B')", "Gold B", id="adjudicate.b"),
        Binding("t", "gold('tie')", "Gold tie", id="adjudicate.tie"),
        Binding("1", "cause('1')", "Ambiguous case", id="adjudicate.ambiguous"),
        Binding("2", "cause('2')", "Rubric gap", id="adjudicate.rubric_gap"),
        Binding("3", "cause('3')", "Rater error", id="adjudicate.rater_error"),
        Binding("escape", "cancel", "Cancel", id="adjudicate.cancel"),
    ]

    def __init__(
        self, store: Store, rubric: Rubric, case_id: str, raters: list[str], adjudicator: str
    ) -> None:
        super().__init__()
        self.store = store
        self.rubric = rubric
        self.case = store.get_case(case_id)
        self.raters = raters
        self.adjudicator = adjudicator
        self.value: str | None = None
        self.cause: AdjudicationCause | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog adjudicate"):
            yield Static(self._case(), markup=False)
            yield Static(self._labels(), markup=False)
            yield Static(id="choice", markup=False)
            yield Input(id="rationale", placeholder="rationale, then Enter to save")
        yield Footer()

    @guarded
    def on_mount(self) -> None:
        self._show_choice()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "gold":
            return parameters[0] in self.rubric.values
        return True

    def _case(self) -> Group:
        return Group(*render.case_view(self.case, pairwise=self.rubric.kind is RubricKind.pairwise))

    def _labels(self) -> Table:
        grid = Table(expand=True, title="Labels (A/B in the case's own order)")
        labels = {lb.rater: lb for lb in self.store.labels_for_case(self.case.id, self.rubric.name)}
        for rater in self.raters:
            grid.add_column(Text(field(rater)), ratio=1)  # a str header would be read as markup
        grid.add_row(
            *(
                Text(labels[r].value or "-", style="bold") if r in labels else Text("-")
                for r in self.raters
            )
        )
        grid.add_row(
            *(
                Text(render.literal(labels[r].note)) if r in labels else Text("")
                for r in self.raters
            )
        )
        return grid

    def _show_choice(self) -> None:
        keys = "p/f" if self.rubric.kind is RubricKind.binary else "a/b/t"
        text = Text()
        text.append(f"gold: {self.value or '-'} ({keys})   ", style="bold")
        text.append(
            f"cause: {self.cause.value if self.cause else '-'} (1 ambiguous case, 2 rubric gap, 3 rater error)"
        )
        self.query_one("#choice", Static).update(text)

    def action_gold(self, value: str) -> None:
        self.value = value
        self._show_choice()

    def action_cause(self, key: str) -> None:
        self.cause = CAUSES[key]
        self._show_choice()
        if self.value is not None:
            self.query_one("#rationale", Input).focus()

    @guarded
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.value is None or self.cause is None:
            notice(self, "Choose the gold label and the cause first", severity="warning")
            return
        coding.adjudicate(
            self.store,
            self.case.id,
            self.rubric.name,
            self.value,
            self.cause,
            event.value,
            self.adjudicator,
        )
        self.dismiss(True)

    def action_cancel(self) -> None:
        if self.query_one("#rationale", Input).has_focus:
            self.set_focus(None)
            return
        self.dismiss(False)


class RubricEditScreen(ModalScreen[Rubric | None]):
    """The rubric as TOML in an editor; Ctrl+S saves it as the next version."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save new version", id="rubric.save"),
        Binding("escape", "cancel", "Cancel", id="rubric.cancel"),
    ]

    def __init__(self, store: Store, rubric: Rubric) -> None:
        super().__init__()
        self.store = store
        self.rubric = rubric

    def compose(self) -> ComposeResult:
        text = rubric_toml.dumps(rubric_toml.RubricFile.from_models(self.rubric))
        with VerticalScroll(classes="dialog editor"):
            yield Static(
                f"Editing {self.rubric.name} v{self.rubric.version}; Ctrl+S saves v{self.store.latest_rubric_version(self.rubric.name) + 1}",
                markup=False,
            )
            yield TextArea(text, language="toml", id="rubric-text")
        yield Footer()

    def action_save(self) -> None:
        text = self.query_one("#rubric-text", TextArea).text
        try:
            edited = rubric_toml.loads(text, source="rubric").to_rubric()
            if edited.name != self.rubric.name:
                raise EvaltuiError("the name cannot change here; import it as a new rubric instead")
            version = self.store.latest_rubric_version(self.rubric.name) + 1
            new = edited.model_copy(update={"version": version})
            self.store.save_rubric(new)
        except EvaltuiError as error:
            show_error(self, error)
            return
        self.dismiss(self.store.get_rubric(self.rubric.name))

    def action_cancel(self) -> None:
        self.dismiss(None)

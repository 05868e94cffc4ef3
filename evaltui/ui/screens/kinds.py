"""The two labelling screens: pass/fail, and A/B/tie between two outputs."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType

from evaltui.models import Case
from evaltui.ui import render
from evaltui.ui.screens.label import NARROW, SHARED_BINDINGS, LabelScreen


class BinaryLabelScreen(LabelScreen):
    """Pass or fail each output."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "label('pass')", "Pass", id="label.pass", tooltip="Label pass and go on"),
        Binding("f", "label('fail')", "Fail", id="label.fail", tooltip="Label fail and go on"),
        *SHARED_BINDINGS,
    ]

    def action_label(self, value: str) -> None:
        self.label(value)

    def render_case(self, case: Case) -> RenderableType:
        return Group(
            render.case_input(case, expanded=self.expanded),
            Text(""),
            render.output_block(" OUTPUT ", case.output or "", expanded=self.expanded),
        )


class PairwiseLabelScreen(LabelScreen):
    """Pick the better of two outputs, shown in a per-rater random order."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "label('A')", "A better", id="label.a", tooltip="The left output (A) is better"),
        Binding("b", "label('B')", "B better", id="label.b", tooltip="The right output (B) is better"),
        Binding("t", "label('tie')", "Tie", id="label.tie", tooltip="Neither is better"),
        Binding("w", "toggle_diff", "Diff", id="view.diff", show=False,
                tooltip="Highlight the words that differ"),
        *SHARED_BINDINGS,
    ]  # fmt: skip

    diff = False

    def action_label(self, value: str) -> None:
        self.label(value)

    def action_toggle_diff(self) -> None:
        self.diff = not self.diff
        self._paint_case()

    def render_case(self, case: Case) -> RenderableType:
        left, right = case.output_a or "", case.output_b or ""
        if self.swapped:
            left, right = right, left
        a_body: RenderableType
        b_body: RenderableType
        if self.diff:
            a_body, b_body = render.word_diff(left, right)
        else:
            a_body = render.body(left, expanded=self.expanded)
            b_body = render.body(right, expanded=self.expanded)
        a = Group(Text(" A ", style="bold reverse cyan"), a_body)
        b = Group(Text(" B ", style="bold reverse magenta"), b_body)
        if self.size.width < NARROW:
            outputs: RenderableType = Group(a, Text(""), b)
        else:
            grid = Table.grid(expand=True, padding=(0, 2))
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(a, b)
            outputs = grid
        return Group(render.case_input(case, expanded=self.expanded), Text(""), outputs)

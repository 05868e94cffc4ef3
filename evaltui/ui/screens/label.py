"""The labelling screens: one key labels and advances; everything else is a key away too."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from uuid import uuid4

from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from evaltui.errors import EvaltuiError
from evaltui.labelling import (
    CaseCursor,
    CaseFilter,
    Pace,
    Position,
    UndoEntry,
    shown_swapped,
    to_case_orientation,
)
from evaltui.models import Case, Label, Rubric, RubricKind
from evaltui.store import Store
from evaltui.text import edited, field
from evaltui.ui import render
from evaltui.ui.guard import guarded, notice
from evaltui.ui.screens.modals import HelpScreen, PromptScreen, TagPicker

Clock = Callable[[], float]

NARROW = 100
"""Below this many columns, pairwise outputs are stacked instead of side by side."""


SHARED_BINDINGS: list[BindingType] = [
    Binding("u", "undo", "Undo", id="label.undo", tooltip="Undo the last label (any depth)"),
    Binding("s", "skip", "Skip", id="label.skip", tooltip="Next case without labelling"),
    Binding("n", "note", "Note", id="label.note", tooltip="Write a note (critique); Esc returns"),
    Binding("T", "tags", "Tags", id="label.tags", tooltip="Pick or create failure-mode tags"),
    Binding("d", "defer", "Defer", id="label.defer", tooltip="Flag this case for later"),
    Binding("D", "next_deferred", "Deferred", id="nav.deferred", show=False,
            tooltip="Go to the next case flagged for later"),
    Binding("right,j", "next", "Next", id="nav.next", show=False, tooltip="Next case"),
    Binding("left,k", "previous", "Previous", id="nav.previous", show=False,
            tooltip="Previous case"),
    Binding("N", "next_unlabelled", "Next unlabelled", id="nav.next_unlabelled", show=False,
            tooltip="Next case you have not labelled"),
    Binding("g", "go_to", "Go to", id="nav.go_to", show=False, tooltip="Go to a case by id"),
    Binding("slash", "filter", "Filter", id="nav.filter", show=False,
            tooltip="Filter by split=, tag= or any metadata field"),
    Binding("e", "expand", "Expand", id="view.expand", show=False,
            tooltip="Unfold long turns and tool calls"),
    Binding("v", "toggle_raw", "Raw", id="view.raw", show=False,
            tooltip="Show the exact characters: no markdown, no folding, invisible ones marked"),
    Binding("r", "toggle_rubric", "Rubric", id="view.rubric", show=False,
            tooltip="Show or hide the rubric"),
    Binding("question_mark", "help", "Keys", id="app.help", tooltip="Every key"),
    Binding("escape,q", "back", "Back", id="label.back", tooltip="Back to the home screen"),
]  # fmt: skip
"""Keys of both labelling screens, after each screen's own labelling keys."""


class LabelScreen(Screen[None]):
    """What binary and pairwise labelling share: navigation, notes, tags, undo, header."""

    # Each labelling screen lists its own keys first, then SHARED_BINDINGS, so the
    # footer leads with the keys that label.
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(
        self,
        store: Store,
        rubric: Rubric,
        rater: str,
        *,
        case_filter: CaseFilter | None = None,
        seed: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self.store = store
        self.rubric = rubric
        self.rater = rater
        """Who is labelling: every label written here is theirs."""
        self.seed = seed
        self.clock = clock
        base = case_filter or CaseFilter()
        self._base_filter = CaseFilter(
            case_ids=base.case_ids, kind="pair" if self.pairwise else "single"
        )
        self.cursor = CaseCursor(
            store,
            CaseFilter(
                split=base.split,
                tags=base.tags,
                metadata=base.metadata,
                case_ids=base.case_ids,
                kind=self._base_filter.kind,
            ),
        )
        self.case: Case | None = None
        self.mine: Label | None = None
        """This rater's current label of the case on screen."""
        self.swapped = False
        self.note = ""
        self.tags: tuple[str, ...] = ()
        self.expanded = False
        self.raw = False
        """Whether the case is shown as its exact characters (the raw view)."""
        self._raw_key: str | None = None
        self.undo_stack: list[UndoEntry] = []
        self.done = 0
        self.pace = Pace(started=clock())
        self.shown_at = clock()
        self.paint_latencies: list[float] = []
        """Milliseconds from a key to the next case painted (read by the benchmark)."""
        self._key_at: float | None = None
        self._deferred: list[str] = []
        self._hidden_keys: set[str] = set()
        self._pending: tuple[tuple[Any, ...], str] | None = None
        """A label write that failed (what was written, its id), retried with the same id."""

    @property
    def pairwise(self) -> bool:
        """Whether this screen labels pairs (A/B/tie)."""
        return self.rubric.kind is RubricKind.pairwise

    def compose(self) -> ComposeResult:
        yield Static(id="status", markup=False)
        with Horizontal(id="body"):
            with VerticalScroll(id="case-scroll"):
                yield Static(id="case", markup=False)
            with VerticalScroll(id="rubric-scroll"):
                yield Static(self._rubric_text(), id="rubric", markup=False)
        yield Static(id="meta", markup=False)
        yield Input(id="note", placeholder="note (critique) — Enter or Esc to keep it")
        yield Footer(show_command_palette=False)

    @guarded
    def on_mount(self) -> None:
        self.query_one("#note", Input).display = False
        # Metadata fields named after raters hold their labels (e.g. imported annotator
        # columns): hidden, as the labels are, until this rater has labelled the case.
        self._hidden_keys = {r.name for r in self.store.raters()}
        self._deferred = self.store.deferred(self.rubric.name, self.rater)
        self.done = self.cursor.labelled_count(self.rubric.name, self.rater)
        position = self.cursor.next_unlabelled(self.rubric.name, self.rater) or self.cursor.first()
        if position is None:
            self.query_one("#case", Static).update(
                Text(f"No {self.cursor.filter.kind} cases to label for {self.rubric.name}.")
            )
        else:
            self._show(position)
        self.query_one("#case-scroll").focus()
        self.set_interval(1, self._tick)

    # Showing a case --------------------------------------------------------

    def _show(self, position: Position) -> None:
        case = self.store.get_case(position.case_id)
        self.case = case
        self.mine = self.store.current_label(case.id, self.rubric.name, self.rater)
        self.swapped = shown_swapped(self.seed, self.rater, case.id) if self.pairwise else False
        self.note = self.mine.note if self.mine else ""
        self.tags = self.mine.tags if self.mine else ()
        self.expanded = False
        self.raw = False
        self.shown_at = self.clock()
        self._paint_case()
        self._paint_status()
        self.query_one("#case-scroll", VerticalScroll).scroll_home(animate=False)
        if self._key_at is not None:
            self.call_after_refresh(self._painted, self._key_at)
            self._key_at = None

    def _painted(self, started: float) -> None:
        self.paint_latencies.append((time.perf_counter() - started) * 1000)

    def _paint_case(self) -> None:
        case = self.case
        if case is None:
            return
        texts = render.case_texts(
            case, swapped=self.swapped, hidden=set() if self.mine else self._hidden_keys
        )
        if self._raw_key is None:  # looked up once: a focused note box hides the screen's keys
            self._raw_key = self._key_of("view.raw")
        key = self._raw_key
        shown: RenderableType
        if self.raw:
            shown = render.raw_case(texts, key=key or "the raw view key")
        else:
            shown = self.render_case(case)
            note = render.invisible_note(texts, key=key)
            if note is not None:
                shown = Group(note, shown)
        self.query_one("#case", Static).update(shown)

    def _key_of(self, binding_id: str) -> str | None:
        """The key bound to `binding_id` (after the keymap), as the footer shows it."""
        for active in self.active_bindings.values():
            if active.binding.id == binding_id:
                return self.app.get_key_display(active.binding)
        return None

    def render_case(self, case: Case) -> RenderableType:
        """The case's input and the output(s) under judgement."""
        raise NotImplementedError

    def _paint_status(self) -> None:
        self.query_one("#status", Static).update(self._status_text())
        self.query_one("#meta", Static).update(self._meta_text())

    def _status_text(self) -> Text:
        here = self.cursor.position
        seconds = int(self.clock() - self.shown_at)
        pace = self.pace.per_minute(self.clock())
        text = Text()
        text.append(f" {self.rubric.name} v{self.rubric.version} ", style="bold reverse")
        text.append(f" {field(self.rater)} ", style="bold")
        text.append(f" {self.done}/{self.cursor.total} done ")
        if here is not None:
            text.append(f" #{here.index + 1} ")
        text.append(f" {pace:.1f}/min " if pace else " -/min ")
        text.append(f" {seconds // 60}:{seconds % 60:02d} on case ")
        if self.cursor.filter.describe():
            text.append(f" filter: {field(self.cursor.filter.describe())}", style="italic")
        text.append_text(render.connection_text(self.store))
        return text

    def _meta_text(self) -> Text:
        case = self.case
        if case is None:
            return Text()
        text = Text()
        text.append(render.literal(case.id), style="bold")
        if case.split:
            text.append(f"  split={render.literal(case.split)}")
        if case.tags:
            text.append("  tags=" + ",".join(render.literal(t) for t in case.tags))
        if case.id in self._deferred:
            text.append("  DEFERRED", style="bold yellow")
        hidden = set() if self.mine else self._hidden_keys
        meta = render.metadata_line(case.metadata, hidden)
        if meta.plain:
            text.append("  ")
            text.append(meta)
        text.append("\n")
        if self.mine is not None:
            text.append(f"your label: {self._shown_value(self.mine.value)}", style="bold green")
            others = [
                lb for lb in self.store.labels_for_case(case.id, self.rubric.name)
                if lb.rater != self.rater
            ]  # fmt: skip
            if others:
                text.append(
                    "  others: " + ", ".join(f"{field(o.rater)} {self._shown_value(o.value)}" for o in others),
                    style="dim",
                )  # fmt: skip
        else:
            text.append("not labelled yet", style="dim")
        if self.note:
            text.append(f"  note: {render.literal(self.note)}", style="italic")
        if self.tags:
            text.append(
                "  tags: " + ", ".join(render.literal(t) for t in self.tags), style="yellow"
            )
        return text

    def _shown_value(self, value: str | None) -> str:
        """A stored value as this rater sees it on screen (A/B follow the shown order)."""
        if value is None:
            return "-"
        return to_case_orientation(value, self.swapped) if self.pairwise else value.upper()

    def _rubric_text(self) -> Text:
        r = self.rubric
        text = Text()
        text.append(render.literal(r.question) + "\n\n", style="bold")
        good, bad = ("Better", "Worse") if self.pairwise else ("Pass", "Fail")
        if r.pass_:
            text.append(f"{good}: ", style="bold green")
            text.append(render.literal(r.pass_) + "\n\n")
        if r.fail:
            text.append(f"{bad}: ", style="bold red")
            text.append(render.literal(r.fail) + "\n\n")
        for item in r.checklist:
            text.append(f"☐ {render.literal(item)}\n")
        return text

    def _say(self, message: str, *, severity: str = "information") -> None:
        """A notification shown as plain text: it may quote case ids or what the user typed."""
        notice(self, message, severity=severity)

    def _tick(self) -> None:
        self.query_one("#status", Static).update(self._status_text())

    # Labelling -------------------------------------------------------------

    def _write(
        self,
        case_id: str,
        value: str | None,
        *,
        note: str,
        tags: Sequence[str],
        shown_swapped: bool | None,
        seconds: float | None = None,
        case_known: bool = False,
    ) -> Label | None:
        """Store one label row; None, with the reason shown, when it could not be stored.

        A write that failed keeps its label id: pressing the same key again sends
        the same row, which the store ignores if the first attempt did land.
        """
        what = (case_id, value, note, tuple(tags), shown_swapped)
        label_id = self._pending[1] if self._pending and self._pending[0] == what else uuid4().hex
        try:
            label = self.store.add_label(
                case_id,
                self.rubric,
                self.rater,
                value,
                note=note,
                tags=tags,
                shown_swapped=shown_swapped,
                seconds=seconds,
                label_id=label_id,
                case_known=case_known,
            )
        except EvaltuiError as error:
            self._pending = (what, label_id)
            self._say(f"Not saved: {error}. Press the key again to retry.", severity="error")
            self._paint_status()
            return None
        self._pending = None
        return label

    def label(self, shown_value: str) -> None:
        """Label the case on screen (in the shown A/B order for pairs) and move on."""
        if self.case is None:
            return
        self._key_at = time.perf_counter()
        value = to_case_orientation(shown_value, self.swapped) if self.pairwise else shown_value
        previous = self.mine
        written = self._write(
            self.case.id,
            value,
            note=self.note,
            tags=self.tags,
            shown_swapped=self.swapped if self.pairwise else None,
            seconds=round(self.clock() - self.shown_at, 3),
            case_known=True,
        )
        if written is None:
            self._key_at = None
            return  # not stored: the case stays on screen and the same key retries
        self.mine = written  # stored, even if reading the next case then fails
        self.undo_stack.append(_undo_entry(self.case.id, previous))
        if previous is None:
            self.done += 1
        self.pace.count += 1
        try:
            if self.case.id in self._deferred:
                self._set_deferred(self.case.id, False)
            self._move(self.cursor.next(), at_end="That was the last case")
        except EvaltuiError:
            self._paint_status()  # the case stays on screen: show it as labelled
            raise

    def _move(self, position: Position | None, *, at_end: str) -> None:
        if position is None:
            self._key_at = None
            left = self.cursor.total - self.done
            self._say(f"{at_end}; {left} left unlabelled" if left else f"{at_end}; all labelled")
            if self.cursor.position is not None:
                self._show(self.cursor.position)
            return
        self._show(position)

    def action_undo(self) -> None:
        if not self.undo_stack:
            self._say("Nothing to undo in this sitting")
            return
        entry = self.undo_stack[-1]
        written = self._write(
            entry.case_id,
            entry.previous_value,
            note=entry.previous_note,
            tags=entry.previous_tags,
            shown_swapped=entry.previous_swapped,
        )
        if written is None:
            return
        self.undo_stack.pop()
        if entry.previous_value is None:
            self.done -= 1
        self.pace.count = max(0, self.pace.count - 1)
        position = self.cursor.go_to(entry.case_id)
        if position is not None:
            self._show(position)
        self._say(f"Undone: {render.literal(entry.case_id)}")

    def action_skip(self) -> None:
        self._key_at = time.perf_counter()
        self._move(self.cursor.next(), at_end="No more cases")

    def action_next(self) -> None:
        self._key_at = time.perf_counter()
        self._move(self.cursor.next(), at_end="No more cases")

    def action_previous(self) -> None:
        self._key_at = time.perf_counter()
        self._move(self.cursor.previous(), at_end="This is the first case")

    def action_next_unlabelled(self) -> None:
        position = self.cursor.next_unlabelled(self.rubric.name, self.rater)
        if position is None:
            self._say(f"All {self.cursor.total} cases are labelled")
        else:
            self._show(position)

    def action_defer(self) -> None:
        if self.case is not None:
            flagged = self.case.id not in self._deferred
            self._set_deferred(self.case.id, flagged)
            self._paint_status()
            self._say("Flagged for later (D to revisit)" if flagged else "Flag removed")

    def _set_deferred(self, case_id: str, flagged: bool) -> None:
        self.store.set_deferred(case_id, self.rubric.name, self.rater, flagged)
        if flagged:
            self._deferred.append(case_id)
        else:
            self._deferred.remove(case_id)

    def action_next_deferred(self) -> None:
        if not self._deferred:
            self._say("No cases are flagged for later")
            return
        current = self.case.id if self.case else None
        order = self._deferred
        start = order.index(current) + 1 if current in order else 0
        for case_id in order[start:] + order[:start]:
            position = self.cursor.go_to(case_id)
            if position is not None:
                self._show(position)
                return
        self._say("The flagged cases are outside the current filter")

    # Notes and tags ----------------------------------------------------------

    def action_note(self) -> None:
        box = self.query_one("#note", Input)
        box.value = field(self.note)  # stored text, shown literally
        box.display = True
        box.focus()

    @guarded
    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "note":
            event.stop()
            self._close_note()

    def _close_note(self) -> None:
        box = self.query_one("#note", Input)
        box.display = False
        self.query_one("#case-scroll").focus()
        note = edited(box.value, self.note, one_line=True)
        if note != self.note:
            self.note = note
            self._relabel()
        self._paint_status()

    def action_tags(self) -> None:
        def picked(tags: tuple[str, ...] | None) -> None:
            if tags is not None and tags != self.tags:
                self.tags = tags
                self._relabel()
                self._paint_status()

        self.app.push_screen(TagPicker(self.store.tags_in_use(self.rubric.name), self.tags), picked)

    def _relabel(self) -> None:
        """A note or tags changed on a case already labelled: save them with its label."""
        if self.case is None or self.mine is None:
            return  # kept until the case is labelled
        previous = self.mine
        written = self._write(
            self.case.id,
            previous.value,
            note=self.note,
            tags=self.tags,
            shown_swapped=previous.shown_swapped,
            seconds=previous.seconds,
        )
        if written is None:
            return
        self.mine = written
        self.undo_stack.append(_undo_entry(self.case.id, previous))

    # Finding cases -----------------------------------------------------------

    def action_go_to(self) -> None:
        def go(case_id: str | None) -> None:
            if not case_id:
                return
            position = self.cursor.go_to(case_id.strip())
            if position is None:
                self._say(f"No case {render.literal(case_id)!r} here", severity="warning")
            else:
                self._show(position)

        self.app.push_screen(PromptScreen("Go to case id", placeholder="case id"), go)

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is None:
                return
            try:
                parsed = CaseFilter.parse(
                    text, case_ids=self._base_filter.case_ids, kind=self._base_filter.kind
                )
            except EvaltuiError as error:
                self._say(str(error), severity="error")
                return
            cursor = CaseCursor(self.store, parsed)
            if cursor.total == 0:
                self._say(f"No cases match {text!r}", severity="warning")
                return
            self.cursor = cursor
            self.done = cursor.labelled_count(self.rubric.name, self.rater)
            position = cursor.next_unlabelled(self.rubric.name, self.rater) or cursor.first()
            if position is not None:
                self._show(position)

        self.app.push_screen(
            PromptScreen(
                "Filter (empty for all): split=NAME tag=TAG FIELD=VALUE",
                value=self.cursor.filter.describe(),
                placeholder="split=trusted topic=returns",
            ),
            apply,
        )

    # View ----------------------------------------------------------------------

    def action_expand(self) -> None:
        self.expanded = not self.expanded
        self._paint_case()

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw
        self._paint_case()
        self.query_one("#case-scroll", VerticalScroll).scroll_home(animate=False)

    def action_toggle_rubric(self) -> None:
        panel = self.query_one("#rubric-scroll", VerticalScroll)
        panel.display = not panel.display

    def action_help(self) -> None:
        rows: dict[str, tuple[str, str, str, str]] = {}
        for key, active in self.active_bindings.items():
            binding = active.binding
            ident = binding.id or ""
            if binding.description and ident not in ("",) and not binding.system:
                keys = rows[ident][0] + ", " + key if ident in rows else key
                rows[ident] = (keys, binding.description, ident, binding.tooltip)
        self.app.push_screen(HelpScreen(list(rows.values())))

    def action_back(self) -> None:
        if self.query_one("#note", Input).display:
            self._close_note()
            return
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()
        else:
            self.app.exit()

    def on_resize(self) -> None:
        self._paint_case()


def _undo_entry(case_id: str, previous: Label | None) -> UndoEntry:
    if previous is None:
        return UndoEntry(case_id, None)
    return UndoEntry(case_id, previous.value, previous.note, previous.tags, previous.shown_swapped)

"""The evaltui application: home screen, labelling screens, keymap from the config."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from textual.actions import ActionParseResult
from textual.app import App
from textual.binding import BindingType
from textual.dom import DOMNode
from textual.screen import Screen

from evaltui.config import Config
from evaltui.errors import EvaltuiError
from evaltui.labelling import CaseFilter
from evaltui.models import RubricKind
from evaltui.store import Store
from evaltui.text import field
from evaltui.ui.guard import noticing, show_error
from evaltui.ui.keymap import check_keymap, screens
from evaltui.ui.screens.home import HomeScreen
from evaltui.ui.screens.kinds import BinaryLabelScreen, PairwiseLabelScreen
from evaltui.ui.screens.label import Clock, LabelScreen

UI_RETRY_FOR = 5.0
"""Seconds a write from the screen keeps trying a dropped server before it reports."""

HEARTBEAT_SECONDS = 3.0
"""How often an idle screen checks that the server still answers."""


class EvaltuiApp(App[None]):
    """evaltui's TUI over one open project."""

    TITLE = "evaltui"
    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = []

    def __init__(
        self,
        store: Store,
        config: Config | None = None,
        *,
        label: tuple[str, str | None] | None = None,
        case_ids: tuple[str, ...] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__()
        self.store = store
        """The open project."""
        self.config = config or Config()
        check_keymap(self.config.keymap, screens())  # before anything is drawn
        if store.rater is not None:  # a served project: the token says who is labelling
            self.config = self.config.model_copy(update={"rater": store.rater})
        self._start_label = label
        self._case_ids = case_ids
        self.clock = clock

    def on_mount(self) -> None:
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        self._show_connection()
        if self.store.server is not None:
            # A label write blocks the screen while it retries: keep that short here;
            # a write that still fails is reported and retried with the same key.
            self.store.server.retry_for = UI_RETRY_FOR
            self.set_interval(1, self._show_connection)
            self.set_interval(HEARTBEAT_SECONDS, self._heartbeat)
        self.push_screen(HomeScreen(self.store, self.config.rater))
        if self._start_label is not None:
            rubric, rater = self._start_label
            rater = self.config.rater if self.store.rater else (rater or self.config.rater)
            self.open_labelling(rubric, rater, case_ids=self._case_ids)

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Run a key's action; a problem the user can act on (a server gone, say) is a notice.

        Without this, such an error inside any screen's action would end the app.
        """
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except EvaltuiError as error:
            show_error(self, error)
            return True

    def push_screen(
        self,
        screen: Screen[Any] | str,
        callback: Callable[..., Any] | None = None,
        wait_for_dismiss: bool = False,
        *,
        mode: str | None = None,
    ) -> Any:
        """Push a screen; its result callback, like an action, turns user errors into notices."""
        if callback is not None:
            callback = noticing(self, callback)
        return super().push_screen(screen, callback, wait_for_dismiss, mode=mode)  # type: ignore[call-overload]

    def _show_connection(self) -> None:
        state = self.store.connection_state
        self.sub_title = field(
            self.store.location + ("" if state in ("file", "connected") else f" · {state}")
        )

    def _heartbeat(self) -> None:
        """Check the server answers (reconnecting if not), off the UI thread."""
        self.run_worker(self.store.ping, thread=True, exclusive=True, group="heartbeat")

    def open_labelling(
        self, rubric_name: str, rater: str, *, case_ids: tuple[str, ...] | None = None
    ) -> LabelScreen:
        """Open the labelling screen for a rubric as a rater."""
        rubric = self.store.get_rubric(rubric_name)
        screen_class = (
            PairwiseLabelScreen if rubric.kind is RubricKind.pairwise else BinaryLabelScreen
        )
        screen = screen_class(
            self.store,
            rubric,
            rater,
            case_filter=CaseFilter(case_ids=case_ids),
            seed=self.config.seed,
            clock=self.clock,
        )
        self.push_screen(screen)
        return screen

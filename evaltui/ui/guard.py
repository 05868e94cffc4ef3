"""Keeping the app up when the store fails in a way the user can act on (a server gone)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from evaltui.errors import EvaltuiError
from evaltui.text import literal

Method = TypeVar("Method", bound=Callable[..., Any])


def notice(widget: Any, message: str, *, severity: str = "information") -> None:
    """A notification as plain text: it may quote names, notes, case ids or what the user typed.

    Markup in it is shown as typed and control characters as visible codes.
    """
    widget.notify(literal(message), severity=severity, markup=False)


def show_error(widget: Any, error: Exception) -> None:
    """An error the user can act on, as a notice."""
    notice(widget, str(error), severity="error")


def guarded(method: Method) -> Method:
    """A widget's handler whose EvaltuiError becomes a notice instead of ending the app.

    Textual stops a screen's message loop when a handler raises; key actions are
    covered by the app's `run_action`, event handlers that read the store by this.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except EvaltuiError as error:
            show_error(self, error)
            return None

    return wrapper  # type: ignore[return-value]


def noticing(app: Any, callback: Callable[..., Any]) -> Callable[..., Any]:
    """`callback` (a screen's result callback), its EvaltuiError shown by `app` as a notice."""

    @functools.wraps(callback)
    def wrapper(*args: Any) -> Any:
        try:
            return callback(*args)
        except EvaltuiError as error:
            show_error(app, error)
            return None

    return wrapper

"""The config's keymap checked against every screen's bindings before the app starts.

Textual's `App.set_keymap` gives a binding id new keys and leaves the other
bindings as they are, so mapping `label.fail` to `n` silently shadows Note on
the labelling screen. Here a keymap that makes two bindings of one screen share
a key is refused, in a line naming both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from textual.screen import Screen

from evaltui.errors import InvalidInput


def _keys(text: str) -> list[str]:
    return [key.strip() for key in text.split(",") if key.strip()]


def screens() -> list[type[Screen[Any]]]:
    """Every screen class of evaltui (those defined under `evaltui.ui`)."""
    import evaltui.ui.screens.agreement
    import evaltui.ui.screens.coding
    import evaltui.ui.screens.home
    import evaltui.ui.screens.judge
    import evaltui.ui.screens.kinds
    import evaltui.ui.screens.modals  # noqa: F401  (each module defines screens)

    found: list[type[Screen[Any]]] = []
    todo: list[type[Screen[Any]]] = list(Screen.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("evaltui.ui") and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: c.__qualname__)


def check_keymap(keymap: Mapping[str, str], classes: Iterable[type[Screen[Any]]]) -> None:
    """Refuse a keymap under which two bindings of one screen answer the same key."""
    for cls in classes:
        owners: dict[str, list[str]] = defaultdict(list)  # key -> the bindings answering it
        for key, bindings in cls._merge_bindings().key_to_bindings.items():
            for binding in bindings:
                name = binding.id or binding.action
                remapped = binding.id is not None and binding.id in keymap
                for answered in _keys(keymap[name]) if remapped else [key]:
                    if name not in owners[answered]:
                        owners[answered].append(name)
        for key, names in owners.items():
            mapped = [name for name in names if name in keymap]
            if len(names) > 1 and mapped:
                other = next(name for name in names if name != mapped[0])
                raise InvalidInput(
                    f"keymap: {mapped[0]!r} = {keymap[mapped[0]]!r} gives {key!r} to two "
                    f"bindings of {_screen_name(cls)}: {mapped[0]} and {other}; choose "
                    f"another key, or remap {other} too"
                )


def _screen_name(cls: type[Screen[Any]]) -> str:
    words = cls.__name__.removesuffix("Screen")
    spaced = "".join(f" {c.lower()}" if c.isupper() else c for c in words).strip()
    return f"the {spaced} screen"

"""The core is importable without the UI, and launch does not pay for heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = [
    "evaltui",
    "evaltui.models",
    "evaltui.store",
    "evaltui.ingest",
    "evaltui.stats",
    "evaltui.judge",
    "evaltui.rubric_toml",
    "evaltui.cli",
    "evaltui.demo",
]


def loaded_after_importing(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_core_never_imports_textual_litellm_or_sklearn() -> None:
    loaded = loaded_after_importing(CORE)
    assert {"evaltui.models", "evaltui.store", "evaltui.ingest"} <= loaded
    heavy = {m for m in loaded if m.split(".")[0] in {"textual", "litellm", "sklearn"}}
    assert heavy == set()


def test_the_ui_does_import_textual() -> None:
    # The check above would pass vacuously if nothing could import textual.
    assert "textual" in loaded_after_importing(["evaltui.ui.app"])

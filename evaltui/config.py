"""Settings from `~/.config/evaltui/config.toml` (or `--config FILE`).

```toml
rater = "alice"          # default rater name (else $USER)
seed = 7                 # seed of the A/B order shown to each rater
api_bases = ["http://localhost:8000/v1"]  # endpoints a rubric TOML may send the API key to

[keymap]                 # binding id = key(s); see `?` in the app for the ids
"label.pass" = "y"
"label.fail" = "n"
```
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaltui import files
from evaltui.errors import InvalidInput


def default_path() -> Path:
    """`$XDG_CONFIG_HOME/evaltui/config.toml`, else `~/.config/evaltui/config.toml`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "evaltui" / "config.toml"


def default_rater() -> str:
    """The login name, as the default rater."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "rater"


class Config(BaseModel):
    """User settings; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rater: str = Field(default_factory=default_rater, min_length=1)
    """Who is labelling, unless `--rater` says otherwise."""
    seed: int = 0
    """Seed for the per-rater, per-case A/B order of pairwise cases."""
    api_bases: list[str] = Field(default_factory=list)
    """Endpoints (`api_base` URLs) trusted with the API key when a rubric TOML names them."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id -> key(s), e.g. `"label.pass" = "y"`; applied with `App.set_keymap`."""


def load(path: Path | None = None) -> Config:
    """Read the config file; a missing default file gives the defaults."""
    explicit = path is not None
    path = path or default_path()
    if not path.exists():
        if explicit:
            raise InvalidInput(f"{path}: no such config file")
        return Config()
    data = files.parse_toml(files.read_text(path, "config file"), str(path), what="config")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            raise InvalidInput(f"{path}: unknown setting {key!r}") from None
        raise InvalidInput(f"{path}: {key}: {first['msg']}") from None

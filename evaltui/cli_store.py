"""How every command names its project: `--db FILE` or `--db quack:HOST:PORT` with `--token`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from evaltui.store import DEFAULT_DB, Store
from evaltui.store.server import is_address

TOKEN_VARIABLE = "EVALTUI_TOKEN"
"""The environment variable read when `--token` is not given."""


def project_target(text: str) -> Path | str:
    """A `--db` value: a server address stays text, anything else is a file path."""
    return text if is_address(text) else Path(text)


def db_option(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """Add `--db`, `--token` and `--config` to a parser (before or after the command alike)."""
    # Only the top-level parser sets defaults: a subcommand's default would
    # overwrite `evaltui --db X COMMAND`.
    parser.add_argument(
        "--db",
        type=project_target,
        default=DEFAULT_DB if top else argparse.SUPPRESS,
        metavar="DB",
        help="project file, or quack:HOST:PORT for a served one (default: ./evals.duckdb)",
    )
    parser.add_argument(
        "--token",
        default=None if top else argparse.SUPPRESS,
        help=f"your token for a served project (default: ${TOKEN_VARIABLE}, which, unlike "
        "--token, other users of the machine cannot see)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None if top else argparse.SUPPRESS,
        help="config file (default: ~/.config/evaltui/config.toml)",
    )


def force_option(parser: argparse.ArgumentParser) -> None:
    """Add `--force`: replace an existing output file of the same kind."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the output file if it exists and is of the same kind "
        "(never a project file or another kind of file)",
    )


def open_store(args: argparse.Namespace, *, create: bool = True) -> Store:
    """Open the project the arguments name."""
    token = getattr(args, "token", None) or os.environ.get(TOKEN_VARIABLE)
    return Store.open(args.db, create=create, token=token)

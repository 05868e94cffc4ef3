"""Shared fixtures: temporary projects, the CLI as a user runs it, the PandaLM data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from evaltui.cli import main
from evaltui.store import Store

REPO = Path(__file__).resolve().parent.parent
PANDALM = REPO.parent / "shared" / "datasets" / "pandalm"
SAMPLE = REPO / "sample_data"


@dataclass
class Result:
    """What one CLI run printed and returned."""

    code: int
    out: str
    err: str


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A project file path (not created yet)."""
    return tmp_path / "evals.duckdb"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    """An open, empty project."""
    with Store.open(db) as opened:
        yield opened


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo project, built once per test run (copy it before writing to it)."""
    from evaltui.demo import build_demo_project

    return build_demo_project(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def demo_project(demo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the demo project (support cases, PandaLM pairs with 3 raters)."""
    target = tmp_path / "evals.duckdb"
    target.write_bytes(demo_template.read_bytes())
    return target


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `evaltui ARGS...` in-process and return its exit code and output."""

    def run(*args: str) -> Result:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    """Write records as JSON lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_rubric(path: Path, name: str = "ok", kind: str = "binary") -> Path:
    """A minimal rubric TOML file."""
    path.write_text(
        f'[rubric]\nname = "{name}"\nkind = "{kind}"\nquestion = "Is it right?"\n',
        encoding="utf-8",
    )
    return path

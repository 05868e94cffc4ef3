"""`evaltui demo`: a fresh project built from the bundled sample data."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from evaltui import rubric_toml
from evaltui.errors import EvaltuiError, WriteRefused
from evaltui.ingest import import_cases, import_labels, parse_values
from evaltui.store import Store


def sample_data_dir() -> Path:
    """The sample data: beside the package in a checkout, inside it when installed."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "sample_data", here / "sample_data"):
        if (candidate / "support" / "cases.jsonl").exists():
            return candidate
    raise EvaltuiError("the sample data is missing from this installation")


def build_demo_project(folder: Path | None = None) -> Path:
    """Copy the sample data into `folder` (a new temp folder by default) and import it.

    The project gets the support cases with the `resolves-issue` rubric, and
    200 PandaLM pairwise cases with the `better-response` rubric and its three
    human raters' labels. Returns the project file.
    """
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="evaltui-demo-"))
    if folder.exists() and not folder.is_dir():
        raise WriteRefused(f"{folder} is a file; give --dir a new or empty folder")
    for name in ("evals.duckdb", "sample_data"):
        if (folder / name).exists():  # a project of the user's, perhaps: never mixed with the demo
            raise WriteRefused(f"{folder} already holds {name}; give --dir a new or empty folder")
    data = folder / "sample_data"
    shutil.copytree(sample_data_dir(), data, dirs_exist_ok=True)
    db = folder / "evals.duckdb"
    with Store.open(db) as store:
        for toml in (
            data / "support" / "resolves-issue.toml",
            data / "pandalm" / "better-response.toml",
        ):
            store.save_rubric(rubric_toml.load(toml).to_rubric())
        import_cases(store, data / "support" / "cases.jsonl", reason="demo: support assistant")
        pandalm = data / "pandalm" / "testset-200.json"
        import_cases(
            store,
            pandalm,
            mapping={
                "id": ["idx"],
                "input": ["instruction", "input"],
                "output_a": ["response1"],
                "output_b": ["response2"],
            },
            reason="demo: PandaLM test set",
        )
        for rater in ("annotator1", "annotator2", "annotator3"):
            import_labels(
                store,
                pandalm,
                rater=rater,
                rubric="better-response",
                case_id_column="idx",
                value_column=rater,
                values=parse_values("1=A,2=B,0=tie"),
            )
    return db

"""Benchmark: `import_cases` against DuckDB's own CTAS from `read_json` on the same JSONL file.

The goal: importing 1,000,000 JSONL cases takes at most 1.5 times as long as
`CREATE TABLE t AS SELECT * FROM read_json(...)` on the same file. Both sides
start from a fresh database file and include closing it (a checkpoint), so
both pay for durability alike. Run `python bench/import.py --help`.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from evaltui.ingest.cases import import_cases
from evaltui.store import Store

GOAL = 1.5
"""The most evaltui's import may take, as a multiple of DuckDB's CTAS."""

_SEED = 20240601
_BATCH = 10_000
"""Lines written per `writelines` call while generating."""

_SYLLABLES = ("ka", "lo", "mi", "ne", "ta", "ri", "so", "ve", "du", "pa", "chi", "ex", "or",
              "an", "il", "um", "qu", "st", "br", "gé", "ño", "zu", "th", "ar", "en", "is")  # fmt: skip
_TOPICS = ("billing", "refunds", "shipping", "account", "privacy", "coding", "math", "travel",
           "medical", "legal", "cooking", "hardware")  # fmt: skip
_MODELS = ("gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b", "mistral-large", "qwen2.5-72b")
_LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR")
_SPLITS = ("train", "train", "train", "dev", "test")
_TAGS = ("hard", "regression", "multi-turn", "tool-use", "long", "safety", "flaky", "gold")


@dataclass
class Timings:
    """Seconds per run of each side of the benchmark."""

    duckdb: list[float] = field(default_factory=list)
    evaltui: list[float] = field(default_factory=list)
    reimport: list[float] = field(default_factory=list)


def _sentence_pool(rng: random.Random, size: int = 5000) -> list[str]:
    """Varied sentences built from pseudo-words, with punctuation, digits and some accents."""
    words = ["".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(3000)]
    words += ["the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "with", "on"] * 40
    sentences: list[str] = []
    for _ in range(size):
        picked = rng.choices(words, k=rng.randint(5, 16))
        if rng.random() < 0.2:
            picked.insert(rng.randrange(len(picked)), str(rng.randint(0, 99_999)))
        if rng.random() < 0.1:
            picked.insert(rng.randrange(len(picked)), '"quoted"')
        text = " ".join(picked)
        sentences.append(text[0].upper() + text[1:] + rng.choice(".....?!:"))
    return sentences


def _text(rng: random.Random, sentences: list[str], low: int, high: int) -> str:
    """Sentences joined until the text is `low` to `high` characters long."""
    target = rng.randint(low, high)
    parts: list[str] = []
    length = 0
    while length < target:
        sentence = rng.choice(sentences)
        parts.append(sentence)
        length += len(sentence) + 1
    text = " ".join(parts)
    if len(text) > high:
        text = text[:high].rstrip() + "."
    if rng.random() < 0.15:
        cut = text.find(". ", len(text) // 2)
        if cut > 0:
            text = text[: cut + 1] + "\n\n" + text[cut + 2 :]
    return text


def _case(rng: random.Random, sentences: list[str], number: int) -> dict[str, object]:
    """One realistic case record: id, input, output, metadata, split and tags."""
    metadata: dict[str, object] = {
        "topic": rng.choice(_TOPICS),
        "model": rng.choice(_MODELS),
        "locale": rng.choice(_LOCALES),
    }
    if rng.random() < 0.7:
        metadata["latency_ms"] = rng.randint(80, 12_000)
    return {
        "id": f"case-{number:07d}",
        "input": _text(rng, sentences, 200, 400),
        "output": _text(rng, sentences, 300, 600),
        "metadata": metadata,
        "split": rng.choice(_SPLITS),
        "tags": rng.sample(_TAGS, k=rng.randint(0, 2)),
    }


def generate(path: Path, count: int, seed: int = _SEED) -> None:
    """Write `count` cases to `path` as JSON lines, reproducibly for a given seed."""
    rng = random.Random(seed)
    sentences = _sentence_pool(rng)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, count, _BATCH):
            stop = min(start + _BATCH, count)
            out.writelines(dumps(_case(rng, sentences, i)) + "\n" for i in range(start, stop))


def time_duckdb(data: Path, db: Path) -> float:
    """Seconds for DuckDB's CTAS from `read_json` into a fresh file, closing included."""
    con = duckdb.connect(str(db))
    started = time.perf_counter()
    con.execute("CREATE TABLE t AS SELECT * FROM read_json(?)", [str(data)])
    con.close()
    return time.perf_counter() - started


def time_import(data: Path, project: Path, expected: int, *, added: int) -> float:
    """Seconds for `import_cases` plus `store.close()`; checks what the import added.

    The project count is checked between the two, outside the timing.
    """
    store = Store.open(project)
    try:
        started = time.perf_counter()
        report = import_cases(store, data)
        importing = time.perf_counter() - started
        held = store.count_cases()
    finally:
        closing = time.perf_counter()
        store.close()
        closed = time.perf_counter()
    if report.added != added or held != expected:
        sys.exit(f"import added {report.added} (expected {added}); project holds {held} cases")
    return importing + (closed - closing)


def run(data: Path, work: Path, count: int, repeat: int) -> Timings:
    """Alternate the baseline and evaltui (import, then re-import) `repeat` times."""
    timings = Timings()
    for number in range(1, repeat + 1):
        db = work / f"baseline-{number}.duckdb"
        timings.duckdb.append(time_duckdb(data, db))
        db.unlink()
        project = work / f"project-{number}.duckdb"
        timings.evaltui.append(time_import(data, project, count, added=count))
        timings.reimport.append(time_import(data, project, count, added=0))
        project.unlink()
        _progress(
            f"run {number}/{repeat}: duckdb {timings.duckdb[-1]:.2f} s, "
            f"evaltui {timings.evaltui[-1]:.2f} s, re-import {timings.reimport[-1]:.2f} s"
        )
    return timings


@dataclass
class Figures:
    """What the benchmark reports: medians in seconds, the ratio and the verdict."""

    cases: int
    file_bytes: int
    repeat: int
    duckdb_s: float
    evaltui_s: float
    reimport_s: float
    ratio: float
    goal: float
    passed: bool
    runs: Timings


def summary(count: int, size: int, timings: Timings) -> Figures:
    """Medians of each side, the ratio evaltui/duckdb and whether it meets the goal."""
    baseline = statistics.median(timings.duckdb)
    evaltui = statistics.median(timings.evaltui)
    return Figures(
        cases=count,
        file_bytes=size,
        repeat=len(timings.duckdb),
        duckdb_s=baseline,
        evaltui_s=evaltui,
        reimport_s=statistics.median(timings.reimport),
        ratio=evaltui / baseline,
        goal=GOAL,
        passed=evaltui / baseline <= GOAL,
        runs=timings,
    )


def table(figures: Figures) -> str:
    """The figures as a short table for the terminal."""
    verdict = "PASS" if figures.passed else "OVER"
    return "\n".join(
        [
            f"import of {figures.cases:,} JSONL cases ({figures.file_bytes / 1e6:,.0f} MB), "
            f"median of {figures.repeat}",
            f"  duckdb CTAS read_json     {figures.duckdb_s:6.2f} s",
            f"  evaltui import            {figures.evaltui_s:6.2f} s  "
            f"{figures.ratio:5.2f}x   goal <= {figures.goal}x: {verdict}",
            f"  evaltui re-import (0 new) {figures.reimport_s:6.2f} s",
        ]
    )


def _progress(message: str) -> None:
    """A progress line on stderr, so stdout holds only the result."""
    print(message, file=sys.stderr, flush=True)


def _arguments() -> argparse.Namespace:
    """The command line: --cases, --repeat and --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases to generate")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.cases < 1 or args.repeat < 1:
        parser.error("--cases and --repeat must be at least 1")
    return args


def main() -> None:
    """Generate the file, time both sides, print the figures and remove the temp folder."""
    args = _arguments()
    work = Path(tempfile.mkdtemp(prefix="evaltui-bench-"))
    try:
        data = work / "cases.jsonl"
        started = time.perf_counter()
        generate(data, args.cases)
        size = data.stat().st_size
        _progress(
            f"generated {args.cases:,} cases, {size / 1e6:,.0f} MB, "
            f"in {time.perf_counter() - started:.1f} s"
        )
        figures = summary(args.cases, size, run(data, work, args.cases, args.repeat))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(asdict(figures)) if args.json else table(figures))


if __name__ == "__main__":
    main()

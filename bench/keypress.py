"""Benchmark: key press to the next case painted, launch to the first case, memory on 1M cases.

The goals: a label key to the next case painted takes at most 16 ms at p95 on a
100,000-case project (outputs up to 4 KB), measured inside the app from the key
action to the end of the refresh; the first case is on screen at most 0.5 s after
launch; labelling a 1,000,000-case project stays within 250 MB RSS. A naive
baseline (Textual's `Markdown` widget re-rendered per case) runs in the same
process on the same cases. Run `python bench/keypress.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import random
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from measure import Latencies, latencies
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Markdown

from evaltui.ingest.cases import import_cases
from evaltui.models import Rubric, RubricKind
from evaltui.store import Store
from evaltui.ui.app import EvaltuiApp
from evaltui.ui.screens.label import LabelScreen

PAINT_GOAL_MS = 16.0
"""The most a label key may take, at p95, to the next case painted."""
LAUNCH_GOAL_S = 0.5
"""The most launch to the first case on screen may take (median of the launches)."""
RSS_GOAL_MB = 250.0
"""The most memory (peak RSS) labelling a 1,000,000-case project may take."""

_SEED = 20240607
_BATCH = 10_000
"""Lines written per `writelines` call while generating."""
_MAX_OUTPUT_BYTES = 4096
_SIZE = (120, 40)
"""Terminal columns and rows, in the app under test and the pseudo-terminal alike."""
_RUBRIC = "bench"
_FIRST_ID = "case-0000000"
"""The first case imported: the first a rater with no labels is shown."""

_SYLLABLES = ("ka", "lo", "mi", "ne", "ta", "ri", "so", "ve", "du", "pa", "chi", "ex", "or",
              "an", "il", "um", "qu", "st", "br", "gé", "ño", "zu", "th", "ar", "en", "is")  # fmt: skip
_COMMON = ("the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "with", "on", "you",
           "this", "can", "your", "order", "account", "refund", "step", "please", "we")  # fmt: skip
_TOPICS = ("billing", "refunds", "shipping", "account", "privacy", "coding", "math", "travel")
_MODELS = ("gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b", "mistral-large", "qwen2.5-72b")
_LANGUAGES = ("python", "sql", "bash", "json", "")


# Generating the projects --------------------------------------------------------


def _sentence_pool(rng: random.Random, size: int = 5000) -> list[str]:
    """Varied sentences from pseudo-words and common words, some with numbers or `code`."""
    words = ["".join(rng.choices(_SYLLABLES, k=rng.randint(1, 4))) for _ in range(3000)]
    words += list(_COMMON) * 60
    sentences: list[str] = []
    for _ in range(size):
        picked = rng.choices(words, k=rng.randint(5, 18))
        if rng.random() < 0.2:
            picked.insert(rng.randrange(len(picked)), str(rng.randint(0, 99_999)))
        if rng.random() < 0.1:
            picked.insert(rng.randrange(len(picked)), f"`{rng.choice(words)}()`")
        if rng.random() < 0.08:
            picked.insert(rng.randrange(len(picked)), f"**{rng.choice(words)}**")
        text = " ".join(picked)
        sentences.append(text[0].upper() + text[1:] + rng.choice("......?!:"))
    return sentences


def _paragraph(rng: random.Random, sentences: list[str]) -> str:
    """Two to six sentences."""
    return " ".join(rng.choices(sentences, k=rng.randint(2, 6)))


def _bullets(rng: random.Random, sentences: list[str]) -> str:
    """A bullet or numbered list of two to six items."""
    numbered = rng.random() < 0.3
    items = rng.choices(sentences, k=rng.randint(2, 6))
    return "\n".join(f"{n}. {s}" if numbered else f"- {s}" for n, s in enumerate(items, 1))


def _code(rng: random.Random, sentences: list[str]) -> str:
    """A fenced code block of a few plausible lines."""
    name = rng.choice(sentences).split()[1].strip(".?!:`*").lower() or "step"
    lines = [f"def {name}_{rng.randint(1, 99)}(items, limit={rng.randint(2, 500)}):"]
    for number in range(rng.randint(2, 10)):
        lines.append(f"    value_{number} = sum(x * {rng.randint(1, 9)} for x in items[:limit])")
    lines.append(f"    return value_0  # {rng.choice(sentences)[:40]}")
    return f"```{rng.choice(_LANGUAGES)}\n" + "\n".join(lines) + "\n```"


def _fit(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, at a character boundary."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 1].decode(errors="ignore").rstrip() + "."


def _output(rng: random.Random, sentences: list[str]) -> str:
    """An answer of 100 bytes to 4 KB: paragraphs, lists and sometimes one code block."""
    target = rng.randint(100, _MAX_OUTPUT_BYTES)
    code_left = 1 if rng.random() < 0.3 else 0
    blocks: list[str] = []
    length = 0
    while length < target:
        roll = rng.random()
        if code_left and roll < 0.25:
            block = _code(rng, sentences)
            code_left = 0
        elif roll < 0.6:
            block = _paragraph(rng, sentences)
        else:
            block = _bullets(rng, sentences)
        blocks.append(block)
        length += len(block.encode()) + 2
    return _fit("\n\n".join(blocks), target)


def _case(rng: random.Random, sentences: list[str], number: int) -> dict[str, object]:
    """One single-output case with a question-like input and a markdown-ish output."""
    question = " ".join(rng.choices(sentences, k=rng.randint(1, 3)))
    if rng.random() < 0.3:
        question = _paragraph(rng, sentences) + "\n\n" + question
    return {
        "id": f"case-{number:07d}",
        "input": question,
        "output": _output(rng, sentences),
        "metadata": {"topic": rng.choice(_TOPICS), "model": rng.choice(_MODELS)},
    }


def _small_case(rng: random.Random, sentences: list[str], number: int) -> dict[str, object]:
    """One small case: an input of about 150 characters and an output of about 300."""
    return {
        "id": f"case-{number:07d}",
        "input": _sized(rng, sentences, 120, 180),
        "output": _sized(rng, sentences, 250, 350),
        "metadata": {"topic": rng.choice(_TOPICS), "model": rng.choice(_MODELS)},
    }


def _sized(rng: random.Random, sentences: list[str], low: int, high: int) -> str:
    """Sentences joined until the text is `low` to `high` characters long."""
    target = rng.randint(low, high)
    parts: list[str] = []
    length = 0
    while length < target:
        parts.append(rng.choice(sentences))
        length += len(parts[-1]) + 1
    return " ".join(parts)[:high]


def generate(path: Path, count: int, *, small: bool = False, seed: int = _SEED) -> None:
    """Write `count` cases to `path` as JSON lines, reproducibly for a given seed."""
    rng = random.Random(seed)
    sentences = _sentence_pool(rng)
    make = _small_case if small else _case
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8") as out:
        for start in range(0, count, _BATCH):
            stop = min(start + _BATCH, count)
            out.writelines(dumps(make(rng, sentences, i)) + "\n" for i in range(start, stop))


def build_project(work: Path, name: str, count: int, *, small: bool = False) -> Path:
    """A project of `count` generated cases and the binary rubric; the JSONL is removed."""
    data = work / f"{name}.jsonl"
    db = work / f"{name}.duckdb"
    started = time.perf_counter()
    generate(data, count, small=small)
    size = data.stat().st_size
    generated = time.perf_counter()
    with Store.open(db) as store:
        report = import_cases(store, data)
        store.save_rubric(Rubric(name=_RUBRIC, kind=RubricKind.binary, question="Is it right?"))
    data.unlink()
    if report.added != count:
        sys.exit(f"import added {report.added} cases, expected {count}")
    _progress(
        f"{name}: generated {count:,} cases ({size / 1e6:,.0f} MB) in "
        f"{generated - started:.1f} s, imported in {time.perf_counter() - generated:.1f} s"
    )
    return db


# Key press to the next case painted, inside the app ----------------------------


async def _settle(app: App[Any], ready: Callable[[], bool], timeout: float = 30) -> None:
    """Let the app run until `ready()` holds; exit on timeout."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            sys.exit(f"{type(app).__name__} did not get ready within {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def evaltui_presses(store: Store, presses: int) -> tuple[list[float], list[float]]:
    """Press p/f `presses` times in the labelling screen, each painted before the next.

    Returns the screen's own paint latencies and, as context, how long the key
    handler itself ran (labelling, moving on and building the next case's view).
    """
    app = EvaltuiApp(store, label=(_RUBRIC, "bencher"))
    handler: list[float] = []
    async with app.run_test(size=_SIZE) as pilot:
        await _settle(
            app, lambda: isinstance(app.screen, LabelScreen) and app.screen.case is not None
        )
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, LabelScreen)
        screen.label = _timed(screen.label, handler)  # type: ignore[method-assign]
        for number in range(presses):
            await pilot.press("p" if number % 2 == 0 else "f")
            await pilot.pause()
        await pilot.pause()
        painted = list(screen.paint_latencies)
    return painted, handler


def _timed(function: Callable[[str], None], into: list[float]) -> Callable[[str], None]:
    """`function`, appending the milliseconds each call takes to `into`."""

    def timed(value: str) -> None:
        started = time.perf_counter()
        function(value)
        into.append((time.perf_counter() - started) * 1000)

    return timed


class MarkdownBaseline(App[None]):
    """The naive viewer: one `Markdown` widget, re-rendered from scratch for every case."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "next", "Pass"),
        Binding("f", "next", "Fail"),
    ]

    def __init__(self, store: Store, case_ids: list[str]) -> None:
        super().__init__()
        self.store = store
        self.case_ids = case_ids
        self.index = 0
        self.paint_latencies: list[float] = []
        """Milliseconds from a key to the next case painted."""

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown()

    async def on_mount(self) -> None:
        await self._load(self.case_ids[0])

    async def _load(self, case_id: str) -> None:
        case = self.store.get_case(case_id)
        await self.query_one(Markdown).update(f"{case.input}\n\n{case.output}")

    async def action_next(self) -> None:
        """Fetch the next case, re-render it and note when the refresh has painted it."""
        started = time.perf_counter()
        self.index += 1
        await self._load(self.case_ids[self.index])
        self.call_after_refresh(self._painted, started)

    def _painted(self, started: float) -> None:
        self.paint_latencies.append((time.perf_counter() - started) * 1000)


async def baseline_presses(store: Store, case_ids: list[str]) -> list[float]:
    """Press p/f once per case after the first in the Markdown baseline; paint latencies."""
    app = MarkdownBaseline(store, case_ids)
    async with app.run_test(size=_SIZE) as pilot:
        await pilot.pause()
        for number in range(len(case_ids) - 1):
            await pilot.press("p" if number % 2 == 0 else "f")
            await pilot.pause()
        await pilot.pause()
    return app.paint_latencies


@dataclass
class KeyPress:
    """The in-app key press figures for evaltui and the Markdown baseline."""

    presses: int
    evaltui_ms: Latencies
    handler_ms: Latencies
    baseline_ms: Latencies
    ratio_p95: float
    """evaltui p95 / baseline p95."""


def measure_keypress(db: Path, presses: int) -> KeyPress:
    """Both apps headless on the same cases; checks evaltui stored one label per press."""
    with Store.open(db) as store:
        shown = [c.id for c in store.cases(0, presses + 1)]
        painted, handler = asyncio.run(evaltui_presses(store, presses))
        stored = store.count_labels(_RUBRIC)
        baseline = asyncio.run(baseline_presses(store, shown))
    if stored != presses:
        sys.exit(f"evaltui stored {stored} labels for {presses} key presses")
    ours, theirs = latencies(painted, "key press"), latencies(baseline, "key press")
    _progress(
        f"key press: evaltui p95 {ours.p95:.1f} ms, Markdown baseline p95 {theirs.p95:.1f} ms"
    )
    return KeyPress(presses, ours, latencies(handler, "key press"), theirs, ours.p95 / theirs.p95)


# Real launches under a pseudo-terminal -----------------------------------------


def _spawn(argv: list[str], env: dict[str, str]) -> tuple[int, int, float]:
    """Start `argv` on a new 120x40 pseudo-terminal: its pid, the pty fd and the start time."""
    winsize = struct.pack("HHHH", _SIZE[1], _SIZE[0], 0, 0)
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: size its terminal before anything reads it, then exec
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid, fd, started


def _read(fd: int, timeout: float) -> bytes | None:
    """What the child wrote within `timeout` seconds; None once the terminal is closed."""
    ready, _, _ = select.select([fd], [], [], max(timeout, 0))
    if not ready:
        return b""
    try:
        return os.read(fd, 65536) or None
    except OSError:  # EIO: the child closed its side
        return None


def _wait_for(fd: int, needle: bytes, timeout: float = 30) -> float:
    """Read the child's output until `needle` shows; the perf_counter time it showed."""
    seen = b""
    deadline = time.perf_counter() + timeout
    while needle not in seen:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{needle!r} not on screen after {timeout:.0f} s: {seen[-300:]!r}")
        chunk = _read(fd, 0.5)
        if chunk is None:
            raise RuntimeError(f"the app exited before {needle!r} showed: {seen[-300:]!r}")
        seen += chunk
    return time.perf_counter()


def _drain(fd: int, seconds: float) -> None:
    """Keep reading the child's output for `seconds`, so it never blocks writing."""
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        if _read(fd, left) is None:
            return


def _finish(pid: int, fd: int, *, quit_key: bytes | None = b"q", timeout: float = 15) -> int:
    """Press `quit_key` until the child exits (killing it after `timeout`); its exit code."""
    deadline = time.perf_counter() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.perf_counter() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return -int(signal.SIGKILL)
            if quit_key is not None:
                try:
                    os.write(fd, quit_key)
                except OSError:
                    quit_key = None
            _drain(fd, 0.2)
    finally:
        os.close(fd)


def _child_env(work: Path) -> dict[str, str]:
    """The child's environment: a real terminal type and no user config (default keys)."""
    return {**os.environ, "TERM": "xterm-256color", "XDG_CONFIG_HOME": str(work / "config")}


def _label_argv(db: Path, rater: str) -> list[str]:
    """`python -m evaltui --db DB label --rubric bench --rater RATER`."""
    return [sys.executable, "-m", "evaltui", "--db", str(db), "label", "--rubric", _RUBRIC,
            "--rater", rater]  # fmt: skip


def launch_once(db: Path, env: dict[str, str]) -> float:
    """Seconds from starting `evaltui label` to the first case's id on the terminal."""
    pid, fd, started = _spawn(_label_argv(db, "launch"), env)
    try:
        shown = _wait_for(fd, _FIRST_ID.encode())
    except BaseException:
        _finish(pid, fd, quit_key=None, timeout=0)
        raise
    code = _finish(pid, fd)
    if code != 0:
        sys.exit(f"evaltui exited with {code} after the launch")
    return shown - started


def python_startup(env: dict[str, str]) -> float:
    """Seconds from starting `python -c pass` on a pseudo-terminal to its exit."""
    pid, fd, started = _spawn([sys.executable, "-c", "pass"], env)
    code = _finish(pid, fd, quit_key=None, timeout=30)
    ended = time.perf_counter()
    if code != 0:
        sys.exit(f"python -c pass exited with {code}")
    return ended - started


@dataclass
class Launch:
    """Launch to the first case on screen, and bare interpreter start-up, in seconds."""

    runs: list[float]
    median_s: float
    max_s: float
    python_median_s: float
    python_runs: list[float]


def measure_launch(db: Path, env: dict[str, str], repeat: int) -> Launch:
    """`repeat` launches of `evaltui label` and of `python -c pass`, alternating."""
    runs: list[float] = []
    python: list[float] = []
    for _ in range(repeat):
        python.append(python_startup(env))
        runs.append(launch_once(db, env))
    _progress(f"launch: median {statistics.median(runs):.3f} s over {repeat} runs")
    return Launch(runs, statistics.median(runs), max(runs), statistics.median(python), python)


# Memory while labelling a 1,000,000-case project ---------------------------------


def _memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB (10^6 bytes)."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024 / 1e6
    return fields


@dataclass
class Memory:
    """Memory of `evaltui label` on a large project after some labelling."""

    cases: int
    labels: int
    launch_s: float
    rss_mb: float
    hwm_mb: float


def measure_memory(db: Path, env: dict[str, str], cases: int, labels: int = 50) -> Memory:
    """Launch on `db`, label `labels` cases 20 ms apart, wait 1 s, read VmRSS and VmHWM."""
    pid, fd, started = _spawn(_label_argv(db, "memory"), env)
    try:
        launch = _wait_for(fd, _FIRST_ID.encode(), timeout=120) - started
        for _ in range(labels):
            os.write(fd, b"p")
            _drain(fd, 0.02)
        _drain(fd, 1.0)
        memory = _memory_mb(pid)
    except BaseException:
        _finish(pid, fd, quit_key=None, timeout=0)
        raise
    code = _finish(pid, fd)
    with Store.open(db) as store:
        stored = store.count_labels(_RUBRIC)
    if code != 0 or stored != labels:
        sys.exit(f"evaltui exited with {code} and stored {stored} of {labels} labels")
    _progress(f"memory: VmRSS {memory['VmRSS']:.0f} MB, VmHWM {memory['VmHWM']:.0f} MB")
    return Memory(cases, labels, launch, memory["VmRSS"], memory["VmHWM"])


# Report ---------------------------------------------------------------------------


@dataclass
class Figures:
    """Everything the benchmark reports, with the goals and verdicts."""

    cases: int
    keypress: KeyPress
    launch: Launch
    memory: Memory | None
    goals: dict[str, float]
    passed: dict[str, bool]


def figures(cases: int, keypress: KeyPress, launch: Launch, memory: Memory | None) -> Figures:
    """The measurements with each goal's verdict."""
    passed = {
        "keypress_p95_ms": keypress.evaltui_ms.p95 <= PAINT_GOAL_MS,
        "launch_median_s": launch.median_s <= LAUNCH_GOAL_S,
    }
    if memory is not None:
        passed["memory_hwm_mb"] = memory.hwm_mb <= RSS_GOAL_MB
    goals = {
        "keypress_p95_ms": PAINT_GOAL_MS,
        "launch_median_s": LAUNCH_GOAL_S,
        "memory_hwm_mb": RSS_GOAL_MB,
    }
    return Figures(cases, keypress, launch, memory, goals, passed)


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "OVER"


def table(f: Figures) -> Iterator[str]:
    """The figures as a short table for the terminal, one line at a time."""
    k, launch = f.keypress, f.launch
    yield f"key press to next case painted, {f.cases:,} cases, {k.presses} presses (ms)"
    yield "                              p50      p95      max"
    for name, lat in (("evaltui", k.evaltui_ms), ("Markdown baseline", k.baseline_ms)):
        line = f"  {name:<24}{lat.p50:7.1f}  {lat.p95:7.1f}  {lat.max:7.1f}"
        if name == "evaltui":
            line += f"   goal p95 <= {PAINT_GOAL_MS:g}: {_verdict(f.passed['keypress_p95_ms'])}"
        yield line
    h = k.handler_ms
    yield f"  evaltui key handler only{h.p50:7.1f}  {h.p95:7.1f}  {h.max:7.1f}"
    yield f"  ratio evaltui/baseline at p95: {k.ratio_p95:.2f}x"
    yield f"launch to first case on screen, {len(launch.runs)} runs (s)"
    yield (
        f"  evaltui label             median {launch.median_s:5.3f}  max {launch.max_s:5.3f}"
        f"   goal <= {LAUNCH_GOAL_S:g}: {_verdict(f.passed['launch_median_s'])}"
    )
    yield f"  python -c pass (context)  median {launch.python_median_s:5.3f}"
    if f.memory is None:
        yield "memory on 1,000,000 cases: skipped (--skip-million)"
        return
    m = f.memory
    yield f"memory labelling {m.cases:,} cases, after {m.labels} labels (MB)"
    yield (
        f"  VmRSS {m.rss_mb:5.0f}   VmHWM (peak) {m.hwm_mb:5.0f}"
        f"   goal peak <= {RSS_GOAL_MB:g}: {_verdict(f.passed['memory_hwm_mb'])}"
    )
    yield f"  launch to first case on this project: {m.launch_s:.3f} s"


def _progress(message: str) -> None:
    """A progress line on stderr, so stdout holds only the result."""
    print(message, file=sys.stderr, flush=True)


def _arguments() -> argparse.Namespace:
    """The command line: --cases, --presses, --launches, --million, --skip-million, --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases in the main project")
    parser.add_argument("--presses", type=int, default=300, help="key presses on each app")
    parser.add_argument("--launches", type=int, default=5, help="launches to time (median)")
    parser.add_argument("--million", type=int, default=1_000_000, help="cases for the memory run")
    parser.add_argument("--skip-million", action="store_true", help="skip the memory run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.presses < 2 or args.cases <= args.presses or args.launches < 1 or args.million < 1:
        parser.error("need --presses >= 2, --cases > --presses, --launches and --million >= 1")
    return args


def main() -> None:
    """Build the projects, run the three measurements, print the figures, remove the temp folder."""
    args = _arguments()
    work = Path(tempfile.mkdtemp(prefix="evaltui-bench-"))
    try:
        env = _child_env(work)
        db = build_project(work, "main", args.cases)
        keypress = measure_keypress(db, args.presses)
        launch = measure_launch(db, env, args.launches)
        memory = None
        if not args.skip_million:
            big = build_project(work, "million", args.million, small=True)
            memory = measure_memory(big, env, args.million)
        result = figures(args.cases, keypress, launch, memory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(asdict(result)) if args.json else "\n".join(table(result)))


if __name__ == "__main__":
    main()

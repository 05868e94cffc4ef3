"""Benchmark: a judge run against a bare `litellm.acompletion` loop on a loopback server.

Goal: 1,000 cases at concurrency 32 against a loopback OpenAI-compatible
server answering after 100 ms take at most 1.1 times the wall time of a bare
`litellm.acompletion` loop sending the same prompts at the same concurrency in
the same run; a re-run of the same judge version makes zero calls. The server
runs in its own process, so its CPU does not compete with the client being
measured. Run `python bench/judge.py --help`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType

from measure import filler_text

from evaltui.ingest.cases import import_cases
from evaltui.judge import runner
from evaltui.judge.prompt import BINARY_TEMPLATE, render
from evaltui.models import Judge, Rubric, RubricKind
from evaltui.store import Store
from evaltui.store.verdicts import answered

GOAL = 1.1
"""The most a judge run may take, as a multiple of the bare loop's wall time."""

_SEED = 20240601
_ROOT = Path(__file__).resolve().parents[1]
_LOOPBACK = _ROOT / "tests" / "loopback.py"


@dataclass
class Timings:
    """Seconds per run of each side of the benchmark."""

    baseline: list[float] = field(default_factory=list)
    evaltui: list[float] = field(default_factory=list)
    baseline_cpu: list[float] = field(default_factory=list)
    evaltui_cpu: list[float] = field(default_factory=list)
    """CPU seconds of this process (every thread, DuckDB's included) during each run."""


def write_cases(path: Path, n: int) -> None:
    """N single-output cases (seeded); about 70% carry the loopback's `[expect:pass]` mark."""
    rng = random.Random(_SEED)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            output = filler_text(rng, 300, 600)
            if rng.random() < 0.7:
                output += " [expect:pass]"
            case = {"id": f"case-{i:05d}", "input": filler_text(rng, 200, 400), "output": output}
            out.write(json.dumps(case) + "\n")


class Server:
    """`tests/loopback.py` in its own process."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(_LOOPBACK), "--latency", str(latency)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.api_base = f"http://127.0.0.1:{self.port}/v1"

    def requests(self) -> int:
        """Completion requests the server has received so far (its `GET /stats`)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as reply:
            return int(json.load(reply)["requests"])

    def stop(self) -> None:
        """End the server process."""
        self.process.terminate()
        self.process.wait(timeout=10)


async def bare_loop(
    litellm: ModuleType, model: str, api_base: str, prompts: Sequence[str], concurrency: int
) -> float:
    """Seconds for `concurrency` workers sending every prompt with `litellm.acompletion`."""
    queue = iter(prompts)

    async def worker() -> None:
        for prompt in queue:
            await litellm.acompletion(
                model=model,
                api_base=api_base,
                messages=[{"role": "user", "content": prompt}],
                num_retries=0,
                max_retries=0,
                timeout=60,
            )

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - start


async def judge_run(
    db: Path, judge: Judge, rubric: Rubric, n: int, concurrency: int
) -> tuple[float, int, int]:
    """Seconds for `plan` and `run` on the project's first n cases; calls planned, verdicts stored.

    Opening the project and loading the cases happen before the clock starts.
    """
    with Store.open(db) as store:
        cases = store.cases(0, n)
        start = time.perf_counter()
        calls = runner.plan(store, judge, rubric, cases)
        await runner.run(
            store, judge, rubric, calls, options=runner.RunOptions(concurrency=concurrency)
        )
        seconds = time.perf_counter() - start
        stored = len(answered(store, judge.version))
    return seconds, len(calls), stored


async def measure(args: argparse.Namespace, work: Path, server: Server) -> dict[str, object]:
    """Warm up, alternate both sides `--repeat` times, then time a re-run; return the figures."""
    rubric = Rubric(
        name="bench",
        kind=RubricKind.binary,
        question="Does the reply answer the customer's question correctly and politely?",
        **{"pass": "Correct, complete and polite.", "fail": "Wrong, incomplete or rude."},
        checklist=("Answers the question asked", "States facts correctly", "Polite tone"),
    )
    judge = Judge(
        rubric=rubric.name, model="openai/bench", api_base=server.api_base, prompt=BINARY_TEMPLATE
    )
    cases_file = work / "cases.jsonl"
    write_cases(cases_file, args.cases)
    base = work / "base.duckdb"
    with Store.open(base) as store:
        store.save_rubric(rubric)
        import_cases(store, cases_file)
        cases = store.cases(0, args.cases)
    prompts = [render(judge.prompt, rubric, case) for case in cases]
    litellm = runner.load_litellm()

    def fresh_project(name: str) -> Path:
        db = work / f"{name}.duckdb"
        shutil.copyfile(base, db)
        return db

    async def evaltui_side(name: str) -> tuple[float, float, Path]:
        db = fresh_project(name)
        before = server.requests()
        cpu = time.process_time()
        seconds, planned, stored = await judge_run(db, judge, rubric, args.cases, args.concurrency)
        cpu = time.process_time() - cpu
        made = server.requests() - before
        if not planned == stored == made == args.cases:
            raise SystemExit(f"{name}: planned {planned}, stored {stored}, server saw {made}")
        return seconds, cpu, db

    async def baseline_side() -> tuple[float, float]:
        before = server.requests()
        cpu = time.process_time()
        seconds = await bare_loop(litellm, judge.model, judge.api_base, prompts, args.concurrency)
        cpu = time.process_time() - cpu
        if server.requests() - before != args.cases:
            raise SystemExit("baseline: the server did not see every call")
        return seconds, cpu

    _log("warming up (one pass of each side, not counted)")
    await baseline_side()
    await evaltui_side("warmup")
    timings = Timings()
    db = base
    for i in range(args.repeat):
        seconds, cpu = await baseline_side()
        timings.baseline.append(seconds)
        timings.baseline_cpu.append(cpu)
        seconds, cpu, db = await evaltui_side(f"run-{i}")
        timings.evaltui.append(seconds)
        timings.evaltui_cpu.append(cpu)
        _log(f"run {i + 1}/{args.repeat}: baseline {timings.baseline[-1]:.3f} s, "
             f"evaltui {timings.evaltui[-1]:.3f} s")  # fmt: skip

    before = server.requests()
    rerun_seconds, rerun_planned, _ = await judge_run(
        db, judge, rubric, args.cases, args.concurrency
    )
    rerun_calls = server.requests() - before

    baseline = statistics.median(timings.baseline)
    ours = statistics.median(timings.evaltui)
    ratio = ours / baseline
    return {
        "cases": args.cases,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "repeat": args.repeat,
        "ideal_s": round(args.cases / args.concurrency * args.latency, 4),
        "baseline_s": round(baseline, 4),
        "evaltui_s": round(ours, 4),
        "ratio": round(ratio, 4),
        "goal_ratio": GOAL,
        "pass": ratio <= GOAL,
        "baseline_cpu_ms_per_call": round(
            statistics.median(timings.baseline_cpu) / args.cases * 1000, 3
        ),
        "evaltui_cpu_ms_per_call": round(
            statistics.median(timings.evaltui_cpu) / args.cases * 1000, 3
        ),
        "rerun_s": round(rerun_seconds, 4),
        "rerun_planned_calls": rerun_planned,
        "rerun_calls": rerun_calls,
        "rerun_pass": rerun_calls == 0 and rerun_planned == 0,
        "runs": asdict(timings),
    }


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1, help="server latency in seconds")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
    server = Server(args.latency)
    try:
        with tempfile.TemporaryDirectory(prefix="evaltui-bench-judge-") as tmp:
            figures = asyncio.run(measure(args, Path(tmp), server))
    finally:
        server.stop()
    if args.json:
        print(json.dumps(figures))
        return
    n, c, r = args.cases, args.concurrency, args.repeat
    f = figures
    verdict = "PASS" if f["pass"] else "OVER"
    rerun = "PASS" if f["rerun_pass"] else "OVER"
    rows = [
        (f"ideal lower bound ({n:,}/{c} x {args.latency} s)", f"{f['ideal_s']:.3f}", "s", ""),
        (f"bare litellm.acompletion loop (median of {r})", f"{f['baseline_s']:.3f}", "s", ""),
        (f"evaltui plan + run (median of {r})", f"{f['evaltui_s']:.3f}", "s", ""),
        ("ratio evaltui / bare loop", f"{f['ratio']:.3f}", "x", f"goal <= {GOAL}x: {verdict}"),
        ("client CPU per call, bare loop", f"{f['baseline_cpu_ms_per_call']:.2f}", "ms", ""),
        ("client CPU per call, evaltui", f"{f['evaltui_cpu_ms_per_call']:.2f}", "ms", ""),
        ("re-run of the same judge version", f"{f['rerun_s']:.3f}", "s",
         f"{f['rerun_calls']} call(s) made, {f['rerun_planned_calls']} planned; goal 0: {rerun}"),
    ]  # fmt: skip
    print(f"Judge run: {n:,} cases, concurrency {c}, loopback latency {args.latency * 1000:.0f} ms")
    for label, value, unit, note in rows:
        print(f"  {label:<46} {value:>8} {unit:<2}   {note}".rstrip())


if __name__ == "__main__":
    main()

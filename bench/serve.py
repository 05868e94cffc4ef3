"""Benchmark: one label write through `evaltui serve` against the same write to a local file.

The SPEC gives no goal for a label write, so this prints figures only: the
wall time of each `Store.add_label` call (the labelling screen's write: one
label, committed before it returns, `case_known=True`), median and p95, for a
project file opened here (the baseline, measured in the same run) and for the
same project served by `evaltui serve` on localhost and written through
`Store.open("quack:localhost:PORT", token=...)`; then the team case, several
client processes writing through the server at once. Run
`python bench/serve.py --help`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from measure import Latencies, filler_text, latencies

from evaltui.ingest.cases import import_cases
from evaltui.models import Rubric, RubricKind
from evaltui.store import Store

_SEED = 20240601
_ROOT = Path(__file__).resolve().parents[1]
_SERVED = _ROOT / "tests" / "served.py"
_RUBRIC = "bench"
_RATER = "bench"
KEYPRESS_GOAL_MS = 16.0
"""The SPEC's key press goal (p95, key to next case painted), which includes one label write."""


@dataclass
class Side:
    """One way of reaching the project: how long opening it and the first write took, then
    the timed writes."""

    connect_ms: float
    first_write_ms: float
    writes: Latencies


@dataclass
class Client:
    """One of the concurrent client processes."""

    rater: str
    connect_ms: float
    writes: Latencies


@dataclass
class Figures:
    """Everything the benchmark reports."""

    cases: int
    writes: int
    repeat: int
    warmup: int
    address: str
    file: Side
    server: Side
    ratio_p50: float
    ratio_p95: float
    clients: list[Client]
    clients_all: Latencies | None
    clients_wall_s: float
    clients_labels_per_s: float
    stored_file: int
    stored_server: int


# The project ------------------------------------------------------------------


def build_project(work: Path, cases: int) -> Path:
    """A project file with `cases` single-output cases (seeded) and a binary rubric."""
    rng = random.Random(_SEED)
    data = work / "cases.jsonl"
    with data.open("w", encoding="utf-8") as out:
        for i in range(cases):
            case = {"id": f"case-{i:05d}", "input": filler_text(rng, 200, 400),
                    "output": filler_text(rng, 300, 600)}  # fmt: skip
            out.write(json.dumps(case) + "\n")
    db = work / "base.duckdb"
    with Store.open(db) as store:
        store.save_rubric(
            Rubric(
                name=_RUBRIC,
                kind=RubricKind.binary,
                question="Does the reply answer the customer's question correctly and politely?",
                **{"pass": "Correct, complete and polite.", "fail": "Wrong, incomplete or rude."},
            )
        )
        report = import_cases(store, data)
    if report.added != cases:
        sys.exit(f"import added {report.added} cases, expected {cases}")
    return db


def _served_class() -> Any:
    """`tests/served.py`'s `Served`: `evaltui serve` in its own process, as a user starts it."""
    spec = importlib.util.spec_from_file_location("evaltui_bench_served", _SERVED)
    if spec is None or spec.loader is None:
        sys.exit(f"cannot load {_SERVED}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Served


# Writing ----------------------------------------------------------------------


class Writer:
    """An open project and the rater writing to it, labelling its cases in order."""

    def __init__(self, target: Path | str, token: str | None, cases: int) -> None:
        start = time.perf_counter()
        self.store = Store.open(target, create=False, token=token)
        self.connect_ms = (time.perf_counter() - start) * 1000
        self.rater = self.store.rater or _RATER
        self.rubric = self.store.get_rubric(_RUBRIC)
        self.case_ids = self.store.case_ids()[:cases]
        self.done = 0

    def write(self) -> float:
        """Milliseconds for one `add_label`, as the labelling screen calls it."""
        case_id = self.case_ids[self.done % len(self.case_ids)]
        value = "pass" if self.done % 3 else "fail"
        self.done += 1
        start = time.perf_counter()
        self.store.add_label(case_id, self.rubric, self.rater, value, seconds=2.5, case_known=True)
        return (time.perf_counter() - start) * 1000

    def warm_up(self, count: int) -> float:
        """Write `count` labels, not counted; return the first one's milliseconds."""
        first = self.write()
        for _ in range(count - 1):
            self.write()
        return first

    def close(self) -> None:
        """Close the project."""
        self.store.close()


def client_main(address: str, cases: int, writes: int, warmup: int) -> None:
    """One concurrent client (run as a child process): connect, warm up, say ready, wait for
    the go line on stdin, write, print the times as JSON."""
    writer = Writer(address, os.environ["EVALTUI_TOKEN"], cases)
    writer.warm_up(warmup)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
    times = [writer.write() for _ in range(writes)]
    writer.close()
    print(json.dumps({"rater": writer.rater, "connect_ms": writer.connect_ms, "ms": times}))


def run_clients(
    address: str, tokens: dict[str, str], args: argparse.Namespace
) -> tuple[list[Client], list[float], float]:
    """Start one client process per token, let them all write at once; their figures,
    every write time and the wall seconds from go to the last one finished."""
    command = [sys.executable, str(Path(__file__).resolve()), "--client", address]
    command += ["--cases", str(args.cases), "--writes", str(args.writes)]
    command += ["--warmup", str(args.warmup)]
    processes = [
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "EVALTUI_TOKEN": token},
        )
        for token in tokens.values()
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                sys.exit(f"a client did not get ready (exit code {process.wait()})")
        start = time.perf_counter()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate(timeout=600)[0] for process in processes]
        wall = time.perf_counter() - start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    clients: list[Client] = []
    every: list[float] = []
    for process, output in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            sys.exit(f"a client exited with {process.returncode}")
        result = json.loads(output.strip().splitlines()[-1])
        clients.append(
            Client(result["rater"], result["connect_ms"], latencies(result["ms"], "write"))
        )
        every += result["ms"]
    return clients, every, wall


# The benchmark ----------------------------------------------------------------


def measure(args: argparse.Namespace, work: Path) -> Figures:
    """Build the project, serve a copy, time writes to each side in turn, then the clients."""
    _progress(f"building a project of {args.cases:,} cases")
    base = build_project(work, args.cases)
    file_db = work / "file.duckdb"
    served_db = work / "served.duckdb"
    shutil.copyfile(base, file_db)
    shutil.copyfile(base, served_db)
    client_raters = [f"client-{i + 1}" for i in range(args.clients)]
    with _served_class()(served_db, raters=[_RATER, *client_raters]) as server:
        address = server.address
        _progress(f"serving {served_db.name} at {address}")
        file_side = Writer(file_db, None, args.cases)
        server_side = Writer(address, server.tokens[_RATER], args.cases)
        first = {"file": file_side.warm_up(args.warmup), "server": server_side.warm_up(args.warmup)}
        times: dict[str, list[float]] = {"file": [], "server": []}
        for i in range(args.repeat):
            for name, writer in (("file", file_side), ("server", server_side)):
                times[name] += [writer.write() for _ in range(args.writes)]
            _progress(
                f"round {i + 1}/{args.repeat}: median file "
                f"{statistics.median(times['file'][-args.writes :]):.2f} ms, server "
                f"{statistics.median(times['server'][-args.writes :]):.2f} ms"
            )
        file_side.close()
        server_side.close()

        clients: list[Client] = []
        every: list[float] = []
        wall = 0.0
        if args.clients:
            _progress(f"{args.clients} clients writing {args.writes} labels each at once")
            tokens = {rater: server.tokens[rater] for rater in client_raters}
            clients, every, wall = run_clients(address, tokens, args)

        with Store.open(address, token=server.tokens[_RATER]) as check:
            stored_server = check.count_labels(_RUBRIC, current=False)
    with Store.open(file_db, create=False) as check:
        stored_file = check.count_labels(_RUBRIC, current=False)
    per_side = args.warmup + args.repeat * args.writes
    expected_server = per_side + args.clients * (args.warmup + args.writes)
    if stored_file != per_side or stored_server != expected_server:
        sys.exit(
            f"stored {stored_file} labels in the file (expected {per_side}) and "
            f"{stored_server} on the server (expected {expected_server})"
        )

    sides = {
        name: Side(writer.connect_ms, first[name], latencies(times[name], "write"))
        for name, writer in (("file", file_side), ("server", server_side))
    }
    return Figures(
        cases=args.cases,
        writes=args.writes,
        repeat=args.repeat,
        warmup=args.warmup,
        address=address,
        file=sides["file"],
        server=sides["server"],
        ratio_p50=sides["server"].writes.p50 / sides["file"].writes.p50,
        ratio_p95=sides["server"].writes.p95 / sides["file"].writes.p95,
        clients=clients,
        clients_all=latencies(every, "write") if every else None,
        clients_wall_s=wall,
        clients_labels_per_s=len(every) / wall if wall else 0.0,
        stored_file=stored_file,
        stored_server=stored_server,
    )


def table(f: Figures) -> list[str]:
    """The figures as a short table for the terminal."""

    def row(name: str, lat: Latencies, note: str = "") -> str:
        return f"  {name:<30}{lat.p50:8.2f} {lat.p95:8.2f} {lat.max:8.2f}   {note}".rstrip()

    lines = [
        f"Label write (add_label, one label committed), {f.cases:,} cases, "
        f"{f.repeat} x {f.writes} writes per side after {f.warmup} warm-up (ms)",
        "                                     p50      p95      max",
        row("local file (baseline)", f.file.writes),
        row(f"server {f.address}", f.server.writes),
        f"  {'ratio server / file':<30}{f.ratio_p50:7.2f}x {f.ratio_p95:7.2f}x",
        f"  {'connect (Store.open)':<30}file {f.file.connect_ms:7.1f}   "
        f"server {f.server.connect_ms:7.1f}",
        f"  {'first write':<30}file {f.file.first_write_ms:7.1f}   "
        f"server {f.server.first_write_ms:7.1f}",
    ]
    if f.clients and f.clients_all is not None:
        lines.append(
            f"{len(f.clients)} client processes writing through the server at once, "
            f"{f.writes} writes each (ms)"
        )
        for client in f.clients:
            lines.append(row(client.rater, client.writes, f"connect {client.connect_ms:.1f}"))
        lines.append(
            row(
                "all clients",
                f.clients_all,
                f"{f.clients_labels_per_s:,.0f} labels/s over {f.clients_wall_s:.2f} s",
            )
        )
    lines.append("No SPEC goal for a label write: figures only. For context, the key press goal")
    lines.append(
        f"(p95 <= {KEYPRESS_GOAL_MS:g} ms, key to next case painted) includes one such write."
    )
    return lines


def _progress(message: str) -> None:
    """A progress line on stderr, so stdout holds only the result."""
    print(message, file=sys.stderr, flush=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="cases in the project")
    parser.add_argument("--writes", type=int, default=300, help="timed writes per side per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, alternating file and server")
    parser.add_argument("--warmup", type=int, default=20, help="writes per side before timing")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (0: skip)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--client", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cases < 1 or args.writes < 2 or args.repeat < 1 or args.warmup < 1 or args.clients < 0:
        parser.error("need --cases, --repeat, --warmup >= 1, --writes >= 2, --clients >= 0")
    return args


def main() -> None:
    """Run the benchmark (or, with --client, one concurrent client) and print the figures."""
    args = _arguments()
    if args.client:
        client_main(args.client, args.cases, args.writes, args.warmup)
        return
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evaltui-bench-serve-") as tmp:
        figures = measure(args, Path(tmp))
    _progress(f"done in {time.perf_counter() - started:.1f} s")
    print(json.dumps(asdict(figures)) if args.json else "\n".join(table(figures)))


if __name__ == "__main__":
    main()

"""Runs at once never ask the model for the same verdict: each call is claimed before it is made.

The model is `tests/loopback.py`, which counts every request it receives;
served projects are real `evaltui serve` processes (tests/served.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from evaltui.judge.runner import Progress, RunOptions, plan, run
from evaltui.models import Judge, Verdict
from evaltui.store import Store
from evaltui.store import claims as stored
from evaltui.store.claims import Attempt, Claimant
from evaltui.store.verdicts import add_verdict, get_judge, split_seed, verdicts
from tests.conftest import REPO, Result, write_jsonl, write_rubric
from tests.loopback import LoopbackServer
from tests.served import Served, evaltui_command
from tests.test_judge_runner import (
    BINARY,
    PAIRWISE,
    binary_records,
    case_of,
    expected_binary,
    expected_pair,
    judge_for,
    load,
    pair_records,
)

CLI = Callable[..., Result]
KEY = "sk-evaltui-FAKE-claims-not-a-real-key-3380"
MODEL = "openai/evaltui-loopback-judge"
FAST = RunOptions(concurrency=2, timeout=10.0, retries=1, backoff=0.01, claim_poll=0.05)
_STORED = re.compile(r"^(\d+) verdict\(s\) stored.*?(?:; (\d+) more stored by another run|$)", re.M)


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("EVALTUI_TOKEN", raising=False)


def ok(result: Result) -> Result:
    assert result.code == 0, result.err
    return result


def pairwise_project(cli: CLI, db: Path, tmp_path: Path, model: LoopbackServer, n: int) -> None:
    """n pairs labelled by alice, rubric `pw`, and a judge pointed at the loopback model."""
    ok(cli("rubric", "import", write_rubric(tmp_path / "pw.toml", "pw", "pairwise"), "--db", db))
    ok(cli("import", write_jsonl(tmp_path / "pairs.jsonl", pair_records(n)), "--db", db))
    labels: list[dict[str, object]] = [
        {"case_id": f"p{i}", "label": expected_pair(i)} for i in range(n)
    ]
    ok(cli("labels", "import", write_jsonl(tmp_path / "labels.jsonl", labels), "--db", db,
           "--rater", "alice", "--rubric", "pw"))  # fmt: skip
    ok(cli("judge", "set", "--db", db, "--rubric", "pw", "--model", MODEL,
           "--api-base", model.api_base))  # fmt: skip


def verdict_rows(db: Path) -> list[tuple[str, str, bool, int]]:
    """(judge version, case, swapped, how many verdicts) of every call, from the file itself."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            "SELECT judge_version, case_id, swapped, count(*) FROM verdicts "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()


def reported(out: str) -> tuple[int, int]:
    """What a `judge run` said it stored, and how many more another run stored meanwhile."""
    found = _STORED.search(out)
    assert found, out
    return int(found[1]), int(found[2] or 0)


LEFT_CLAIMED = (
    "SELECT count(*) FROM judge_claims c WHERE NOT released AND NOT EXISTS (SELECT 1 "
    "FROM judge_claims r WHERE r.case_id = c.case_id AND r.swapped = c.swapped "
    "AND r.attempt > c.attempt)"
)
"""How many calls are claimed and not released (each call's latest claim row)."""


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


# 1. Two raters' runs at once on one served project --------------------------------------


def test_two_judge_runs_at_once_on_a_served_project_ask_each_call_once(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    n = 12
    total = 2 * n  # pairwise: both orders
    with LoopbackServer() as model:
        pairwise_project(cli, db, tmp_path, model, n)
        # No answer comes back until both runs have calls in flight: both planned every
        # call before either stored a verdict.
        model.hold()
        with Served(db, raters=["alice", "bob"]) as server:
            runs: dict[str, subprocess.Popen[str]] = {}
            try:
                for rater in ("alice", "bob"):
                    runs[rater] = subprocess.Popen(
                        [*evaltui_command(), "judge", "run", "--db", server.address,
                         "--rubric", "pw", "--concurrency", "2", "--timeout", "600",
                         "--api-base", model.api_base],
                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        env={**os.environ, "EVALTUI_TOKEN": server.tokens[rater]},
                    )  # fmt: skip

                def both_asking() -> bool:
                    for rater, process in runs.items():
                        assert process.poll() is None, (rater, process.communicate())
                    return model.calls >= 4  # two calls in flight from each run

                wait_until(both_asking, "the two runs never both reached the model")
                model.let_go()
                outputs = {}
                for rater, process in runs.items():
                    out, err = process.communicate(timeout=120)
                    assert process.returncode == 0, f"{rater}: {out}{err}"
                    outputs[rater] = (out, err)
            finally:
                for process in runs.values():
                    if process.poll() is None:
                        process.kill()
                        process.communicate()
            server.stop()
        asked = Counter(r.prompt for r in model.requests)

    for _, err in outputs.values():
        assert f"{total} call(s) to make" in err  # each planned every call
    assert len(asked) == total and set(asked.values()) == {1}, "a call was made twice"
    rows = verdict_rows(db)
    assert [(case, swapped, count) for _, case, swapped, count in rows] == sorted(
        (f"p{i}", s, 1) for i in range(n) for s in (False, True)
    )
    counts = {rater: reported(out) for rater, (out, _) in outputs.items()}
    assert sum(own for own, _ in counts.values()) == total
    # Each run ended once all the calls were answered, and says by whom: it never
    # reports fewer verdicts than the project holds.
    assert all(own + elsewhere == total for own, elsewhere in counts.values()), counts
    assert any(elsewhere for _, elsewhere in counts.values())


def test_two_clients_at_once_claim_each_call_once_and_agree_on_the_judge_and_split_seed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "evals.duckdb"
    Store.open(db).close()
    rounds, width = 30, 10
    won: list[list[tuple[str, bool]]] = [[], []]
    seeds: list[list[int]] = [[], []]
    failures: list[BaseException] = []
    with Served(db, raters=["alice", "bob"]) as server:
        clients = [Store.open(server.address, token=server.tokens[r]) for r in ("alice", "bob")]
        start = threading.Barrier(2)

        def race(i: int) -> None:
            me, store = Claimant(f"run-{i}", "host", 1), clients[i]
            try:
                for r in range(rounds):
                    wanted = {(f"c{r}-{j}", j % 2 == 0): Attempt(0, 0) for j in range(width)}
                    judge = Judge(rubric=f"r{r}", model="m", prompt=f"prompt {r}")
                    start.wait(timeout=30)
                    won[i] += stored.claim(store, "sha256:v", wanted, me, 60.0)
                    start.wait(timeout=30)
                    store.save_judge(judge)  # the same new version from both at once
                    start.wait(timeout=30)
                    seeds[i].append(split_seed(store, f"r{r}", seed=i))  # each its own seed
            except BaseException as error:
                failures.append(error)
                start.abort()

        threads = [threading.Thread(target=race, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for client in clients:
            client.close()
        server.stop()
    assert not failures, failures
    everything = won[0] + won[1]
    assert len(everything) == rounds * width == len(set(everything))
    assert seeds[0] == seeds[1]  # both read the seed the first one in locked
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM judges").fetchone() == (rounds,)
        assert con.execute("SELECT count(*) FROM judge_splits").fetchone() == (rounds,)


# 2. Two runs in one process on a file ---------------------------------------------------


async def test_two_runs_at_once_in_one_process_ask_each_call_once(
    store: Store, tmp_path: Path
) -> None:
    cases = load(store, tmp_path, PAIRWISE, pair_records(6))
    with LoopbackServer() as model:
        judge = judge_for(model, PAIRWISE)
        first, second = plan(store, judge, PAIRWISE, cases), plan(store, judge, PAIRWISE, cases)
        assert len(first) == len(second) == 12
        model.hold()  # nothing is answered before both runs have started
        runs = [
            asyncio.create_task(run(store, judge, PAIRWISE, calls, options=FAST))
            for calls in (first, second)
        ]
        while model.calls < FAST.concurrency:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time for anything else either run would ask
        model.let_go()
        progress = await asyncio.gather(*runs)
        asked = Counter(r.prompt for r in model.requests)
    assert len(asked) == 12 and set(asked.values()) == {1}
    assert sum(p.done for p in progress) == 12
    assert [p.finished for p in progress] == [12, 12]
    assert len(verdicts(store, judge.version)) == 12


# 3. Claims that stop holding ------------------------------------------------------------


def gone_pid() -> int:
    """The pid of a process of this machine that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_claims_of_runs_that_died_are_taken_over_and_a_live_claim_is_waited_for(
    tmp_path: Path,
) -> None:
    db = tmp_path / "evals.duckdb"
    with Store.open(db) as store:
        cases = load(store, tmp_path, BINARY, binary_records(6))
    with LoopbackServer() as model, Served(db, raters=["alice", "bob"]) as server:
        alice = Store.open(server.address, token=server.tokens["alice"])
        bob = Store.open(server.address, token=server.tokens["bob"])
        try:
            judge = judge_for(model, BINARY)
            alice.save_judge(judge)
            here = socket.gethostname()
            version = judge.version
            first = Attempt(0, 0)
            # b0: a run on another machine that died long enough ago: its claim expired.
            stored.claim(bob, version, {("b0", False): first}, Claimant("died", "far", 7), 0.0)
            # b1: a run on this machine whose process has gone: taken at once.
            killed = Claimant("killed", here, gone_pid())
            stored.claim(bob, version, {("b1", False): first}, killed, 3600.0)
            # b2: a run on another machine still making its call: waited for.
            other = Claimant("alive", "far", 7)
            stored.claim(bob, version, {("b2", False): first}, other, 3600.0)
            # b5: that run answered with an error and goes on: retrying errors asks again.
            stored.claim(bob, version, {("b5", False): first}, other, 3600.0)
            add_verdict(bob, Verdict(judge_version=version, case_id="b5", value=None, error="x"))

            answer = Verdict(
                judge_version=version, case_id="b2", value="pass", critique="from the other run"
            )

            waits: list[int] = []

            def answer_b2(progress: Progress) -> None:
                waits.append(progress.waiting)
                if progress.waiting:  # the other run answers while this one waits
                    add_verdict(bob, answer)
                    stored.release(bob, version, {("b2", False): 0}, other)

            calls = plan(alice, judge, BINARY, cases, retry_errors=True)
            resume = run(
                alice, judge, BINARY, calls, options=FAST,
                on_wait=answer_b2,
            )  # fmt: skip
            progress = await asyncio.wait_for(resume, timeout=60)  # not the claims' expiry
            latest = {v.case_id: v for v in verdicts(alice, version)}
        finally:
            alice.close()
            bob.close()
        server.stop()
        asked = Counter(case_of(r) for r in model.requests)
    assert asked == Counter({"b0": 1, "b1": 1, "b3": 1, "b4": 1, "b5": 1})
    assert (progress.done, progress.elsewhere, progress.total) == (5, 1, 6)
    assert waits == [1, 0]
    assert latest["b2"].critique == "from the other run"
    assert {c: v.value for c, v in latest.items() if c != "b2"} == {
        f"b{i}": expected_binary(i) for i in (0, 1, 3, 4, 5)
    }
    with duckdb.connect(str(db), read_only=True) as con:
        taken = con.execute(
            "SELECT case_id, attempt FROM judge_claims WHERE NOT released AND claimant NOT IN "
            "('died', 'killed', 'alive') ORDER BY case_id"
        ).fetchall()
    # The dead runs' claims were taken with new rows, never changed; b2 was never claimed.
    assert taken == [("b0", 1), ("b1", 1), ("b3", 0), ("b4", 0), ("b5", 1)]


def test_a_run_killed_on_a_served_project_is_resumed_at_once_asking_only_what_is_missing(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    n = 8
    total = 2 * n
    with LoopbackServer(latency=0.2) as model:
        pairwise_project(cli, db, tmp_path, model, n)
        with Served(db, raters=["alice"]) as server:
            command = [*evaltui_command(), "judge", "run", "--db", server.address,
                       "--rubric", "pw", "--concurrency", "2"]  # fmt: skip
            env = {**os.environ, "EVALTUI_TOKEN": server.tokens["alice"],
                   "EVALTUI_API_BASE": model.api_base}  # fmt: skip
            killed = subprocess.Popen(command, cwd=REPO, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
            try:
                wait_until(lambda: model.calls >= 4, "the judge run never reached the model")
                killed.send_signal(signal.SIGKILL)  # its claims stay behind
                killed.communicate(timeout=10)
            finally:
                if killed.poll() is None:
                    killed.kill()
            first_calls = model.calls
            with Store.open(server.address, token=server.tokens["alice"]) as client:
                judge = get_judge(client, "pw")
                stored_first = len(verdicts(client, judge.version))
                left = client.cursor().execute(LEFT_CLAIMED).fetchone()
                assert stored_first < total and left is not None and left[0] > 0
                # Its claims do not hold the calls: the resumed run asks them at once
                # (not after the claims' expiry, half an hour by default).
                calls = plan(client, judge, PAIRWISE, client.cases_by_id(client.case_ids()))
                resume = run(client, judge, PAIRWISE, calls, options=FAST)
                progress = asyncio.run(asyncio.wait_for(resume, timeout=60))
            assert model.calls - first_calls == total - stored_first
            assert (progress.done, progress.elsewhere) == (total - stored_first, 0)
            server.stop()
    assert [count for *_, count in verdict_rows(db)] == [1] * total


# 4. A cancelled run lets go of its calls -------------------------------------------------


async def test_a_cancelled_run_releases_its_claims_for_the_next_run(
    store: Store, tmp_path: Path
) -> None:
    cases = load(store, tmp_path, BINARY, binary_records(6))
    with LoopbackServer() as model:
        judge = judge_for(model, BINARY)
        model.hold()
        task = asyncio.create_task(
            run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
        )
        while model.calls < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        model.let_go()
        held = store.cursor().execute(LEFT_CLAIMED).fetchone()
        assert held == (0,)  # every claim the cancelled run made is released
        again = await run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
    assert (again.done, again.elsewhere) == (6, 0)

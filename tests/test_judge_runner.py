"""The judge runner over the real litellm path against an OpenAI-compatible server on loopback.

Nothing in litellm is mocked: requests leave through litellm's OpenAI client
and reach `tests/loopback.py`, whose responders script rate limits, server
errors, slow and unreadable answers, and a judge with a position bias.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from evaltui.ingest import import_cases
from evaltui.judge.calibration import calibration_report, outcomes
from evaltui.judge.prompt import default_template, render
from evaltui.judge.runner import JudgeRunError, RunOptions, plan, run
from evaltui.models import Case, Judge, Rubric, RubricKind, Verdict
from evaltui.store import Store
from evaltui.store.verdicts import get_judge, verdicts
from tests.conftest import REPO, Result, write_jsonl, write_rubric
from tests.loopback import LoopbackServer, Reply, Request, marked_verdict

KEY = "sk-evaltui-FAKE-q7Zr2-not-a-real-key-90417"
MODEL = "openai/evaltui-loopback-judge"  # unknown to litellm's cost map: unpriced
BINARY = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")
PAIRWISE = Rubric(name="pw", kind=RubricKind.pairwise, question="Which is better?")
FAST = RunOptions(concurrency=4, timeout=10.0, retries=3, backoff=0.01, max_backoff=5.0)

CLI = Callable[..., Result]


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The only place the key lives: the environment, as litellm reads it."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def ok(result: Result) -> Result:
    """A CLI run that must have succeeded."""
    assert result.code == 0, result.err
    return result


def expected_binary(i: int) -> str:
    return "pass" if i % 3 else "fail"


def binary_records(n: int) -> list[dict[str, object]]:
    return [
        {
            "id": f"b{i}",
            "input": f"question {i}",
            "output": f"reply b{i} [expect:{expected_binary(i)}]",
        }
        for i in range(n)
    ]


def pair_records(n: int) -> list[dict[str, object]]:
    """Pairs whose better reply is A, B or neither (a tie), in turn."""
    records: list[dict[str, object]] = []
    for i in range(n):
        better = "ABT"[i % 3]
        records.append({
            "id": f"p{i}", "input": f"question {i}",
            "output_a": f"reply p{i}-a" + (" [better]" if better == "A" else ""),
            "output_b": f"reply p{i}-b" + (" [better]" if better == "B" else ""),
        })  # fmt: skip
    return records


def expected_pair(i: int) -> str:
    return {"A": "A", "B": "B", "T": "tie"}["ABT"[i % 3]]


def load(
    store: Store, tmp_path: Path, rubric: Rubric, records: list[dict[str, object]]
) -> list[Case]:
    """Store the rubric and cases; return the cases as stored."""
    store.save_rubric(rubric)
    import_cases(store, write_jsonl(tmp_path / f"{rubric.name}-cases.jsonl", records))
    return [store.get_case(str(r["id"])) for r in records]


def judge_for(server: LoopbackServer, rubric: Rubric) -> Judge:
    return Judge(
        rubric=rubric.name, model=MODEL, api_base=server.api_base, prompt=default_template(rubric)
    )


def case_of(request: Request) -> str:
    """Which binary case a request is about (from `reply bN` in the prompt)."""
    found = re.search(r"reply (b\d+) ", request.prompt)
    assert found, f"no case id in prompt: {request.prompt[:200]}"
    return found.group(1)


def by_case(found: list[Verdict]) -> dict[str, Verdict]:
    return {v.case_id: v for v in found}


# 1. Verdicts and what is stored with them ------------------------------------------------


async def test_binary_verdicts_are_stored_with_tokens_latency_and_unknown_cost(
    store: Store, tmp_path: Path
) -> None:
    def responder(request: Request, seen: int) -> Reply:
        reply = marked_verdict(request, seen)
        return dataclasses.replace(reply, delay=0.05, prompt_tokens=123, completion_tokens=45)

    cases = load(store, tmp_path, BINARY, binary_records(6))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        calls = plan(store, judge, BINARY, cases)
        assert [c.case.id for c in calls] == [c.id for c in cases]
        progress = await run(store, judge, BINARY, calls, options=FAST)
        assert server.calls == 6
    assert (progress.done, progress.errors, progress.retries) == (6, 0, 0)
    assert progress.cost_unknown == 6 and progress.cost_usd == 0.0
    stored = verdicts(store, judge.version)
    assert len(stored) == 6
    for i, verdict in enumerate(stored):
        value = expected_binary(i)
        assert verdict.case_id == f"b{i}" and not verdict.swapped
        assert verdict.value == value and verdict.error is None
        assert verdict.critique == f"checked the reply; it is {value}"
        assert json.loads(verdict.raw) == {"critique": verdict.critique, "verdict": value}
        assert (verdict.prompt_tokens, verdict.completion_tokens) == (123, 45)
        assert verdict.latency_ms is not None and verdict.latency_ms >= 45  # the 50 ms delay
        assert verdict.cost_usd is None  # unpriced model: unknown, not zero


# 2. Retries ------------------------------------------------------------------------------


def scripted(
    first: Callable[[int], Reply | None],
) -> tuple[Callable[[Request, int], Reply], dict[str, list[float]]]:
    """A responder for case b0 scripted by attempt number (None: answer properly); arrival times kept."""
    arrivals: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()

    def responder(request: Request, seen: int) -> Reply:
        case = case_of(request)
        with lock:
            arrivals[case].append(time.monotonic())
        reply = first(seen) if case == "b0" else None
        return reply or marked_verdict(request, seen)

    return responder, arrivals


async def test_rate_limit_is_retried_after_the_retry_after_wait(
    store: Store, tmp_path: Path
) -> None:
    responder, arrivals = scripted(
        lambda seen: Reply(status=429, headers={"Retry-After": "1"}) if seen == 0 else None
    )
    cases = load(store, tmp_path, BINARY, binary_records(3))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        # backoff alone would wait at most 10 ms: a wait of a second can only be Retry-After
        options = dataclasses.replace(FAST, backoff=0.01)
        progress = await run(
            store, judge, BINARY, plan(store, judge, BINARY, cases), options=options
        )
        assert server.calls == 4
    assert progress.retries == 1 and progress.errors == 0
    first, second = arrivals["b0"]
    assert second - first >= 0.95
    assert [v.value for v in verdicts(store, judge.version)] == ["fail", "pass", "pass"]


async def test_server_errors_are_retried(store: Store, tmp_path: Path) -> None:
    responder, arrivals = scripted(lambda seen: Reply(status=500) if seen < 2 else None)
    cases = load(store, tmp_path, BINARY, binary_records(3))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        progress = await run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
        assert server.calls == 5
    assert len(arrivals["b0"]) == 3
    assert progress.retries == 2 and progress.errors == 0
    assert by_case(verdicts(store, judge.version))["b0"].value == "fail"


async def test_a_reply_slower_than_the_timeout_is_retried(store: Store, tmp_path: Path) -> None:
    responder, arrivals = scripted(
        lambda seen: (
            Reply('{"critique": "late", "verdict": "pass"}', delay=3.0) if seen == 0 else None
        )
    )
    cases = load(store, tmp_path, BINARY, binary_records(3))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        options = dataclasses.replace(FAST, timeout=1.5)
        progress = await run(
            store, judge, BINARY, plan(store, judge, BINARY, cases), options=options
        )
        assert server.calls == 4
    assert len(arrivals["b0"]) == 2
    assert progress.retries == 1 and progress.errors == 0
    b0 = by_case(verdicts(store, judge.version))["b0"]
    assert (b0.value, b0.critique) == ("fail", "checked the reply; it is fail")


# 3. Errors -------------------------------------------------------------------------------

UNREADABLE = {
    "b0": "I think it's fine",
    "b1": '{"critique": "hard to say", "verdict": "maybe"}',
}


async def test_unreadable_answers_are_error_verdicts_with_the_raw_text(
    store: Store, tmp_path: Path
) -> None:
    def responder(request: Request, seen: int) -> Reply:
        answer = UNREADABLE.get(case_of(request))
        return Reply(answer) if answer else marked_verdict(request, seen)

    cases = load(store, tmp_path, BINARY, binary_records(3))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        progress = await run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
        assert server.calls == 3  # an answer is not retried for being unreadable
    assert progress.errors == 2
    stored = by_case(verdicts(store, judge.version))
    for case_id, answer in UNREADABLE.items():
        verdict = stored[case_id]
        assert verdict.value is None
        assert verdict.raw == answer and verdict.error
    assert "maybe" in stored["b1"].error
    assert stored["b2"].value == "pass"
    answers = outcomes(store, judge, BINARY)
    assert answers["b0"].value is None and answers["b1"].value is None


async def test_an_answer_with_no_choices_is_an_error_verdict_not_a_stopped_run(
    store: Store, tmp_path: Path
) -> None:
    empty = {"id": "chatcmpl-empty", "object": "chat.completion", "created": 0, "model": "m",
             "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 0, "total_tokens": 9}}  # fmt: skip

    def responder(request: Request, seen: int) -> Reply:
        if case_of(request) == "b0":
            return Reply(body=json.dumps(empty))
        return marked_verdict(request, seen)

    cases = load(store, tmp_path, BINARY, binary_records(3))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        progress = await run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
        assert server.calls == 3
    assert (progress.done, progress.errors) == (3, 1)
    stored = by_case(verdicts(store, judge.version))
    assert stored["b0"].value is None and stored["b0"].error and stored["b0"].raw == ""
    assert (stored["b1"].value, stored["b2"].value) == ("pass", "pass")


async def test_exhausted_retries_store_an_error_verdict(store: Store, tmp_path: Path) -> None:
    responder, arrivals = scripted(lambda seen: Reply(status=500))
    cases = load(store, tmp_path, BINARY, binary_records(2))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        options = dataclasses.replace(FAST, retries=2)
        progress = await run(
            store, judge, BINARY, plan(store, judge, BINARY, cases), options=options
        )
        assert server.calls == 3 + 1
    assert len(arrivals["b0"]) == 3
    assert progress.errors == 1 and progress.retries == 2
    b0 = by_case(verdicts(store, judge.version))["b0"]
    assert b0.value is None
    assert "gave up after 3 attempt(s)" in b0.error
    assert "InternalServerError" in b0.error


def echo_key_401(request: Request, seen: int) -> Reply:
    """A 401 whose message repeats the key it was sent, as OpenAI's does."""
    sent = request.headers.get("authorization", "").removeprefix("Bearer ")
    message = f"Incorrect API key provided: {sent}. You can find your API key at ..."
    body = {
        "error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
    }
    return Reply(status=401, body=json.dumps(body))


async def test_a_401_stops_the_run_storing_nothing_and_never_shows_the_key(
    store: Store, tmp_path: Path
) -> None:
    cases = load(store, tmp_path, BINARY, binary_records(4))
    with LoopbackServer(echo_key_401) as server:
        judge = judge_for(server, BINARY)
        with pytest.raises(JudgeRunError) as raised:
            await run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
        assert 1 <= server.calls <= FAST.concurrency  # not retried
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    message = str(raised.value)
    assert "AuthenticationError" in message
    assert KEY not in message
    assert "Incorrect API key provided: [redacted]" in message  # the echo was there, scrubbed
    assert verdicts(store, judge.version) == []
    assert store.cursor().execute("SELECT count(*) FROM verdicts").fetchone() == (0,)


# 4. The project file is the cache (through the CLI) --------------------------------------


def binary_project(cli: CLI, db: Path, tmp_path: Path, server: LoopbackServer, n: int) -> None:
    """A binary project with n human-labelled cases and a judge pointed at the server."""
    ok(cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db))
    ok(cli("import", write_jsonl(tmp_path / "cases.jsonl", binary_records(n)), "--db", db))
    labels = [{"case_id": f"b{i}", "label": expected_binary(i)} for i in range(n)]
    ok(cli("labels", "import", write_jsonl(tmp_path / "labels.jsonl", labels),
           "--db", db, "--rater", "alice", "--rubric", "ok"))  # fmt: skip
    ok(cli("judge", "set", "--db", db, "--rubric", "ok", "--model", MODEL,
           "--api-base", server.api_base))  # fmt: skip


def test_a_rerun_makes_no_calls_and_retry_errors_asks_only_the_errors(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    flaky = {"b1", "b4"}

    def responder(request: Request, seen: int) -> Reply:
        if case_of(request) in flaky and seen == 0:
            return Reply("I think it's fine")
        return marked_verdict(request, seen)

    with LoopbackServer(responder) as server:
        binary_project(cli, db, tmp_path, server, 6)
        first = ok(cli("judge", "run", "--db", db, "--rubric", "ok", "--concurrency", "3"))
        assert "6 verdict(s) stored, 2 error verdict(s)" in first.out
        assert server.calls == 6

        again = ok(cli("judge", "run", "--db", db, "--rubric", "ok"))
        assert "0 verdict(s) stored" in again.out
        assert server.calls == 6
        with Store.open(db) as store:
            judge = get_judge(store, "ok")
            cases = [store.get_case(c) for c in store.case_ids()]
            assert plan(store, judge, BINARY, cases) == []
            retry = plan(store, judge, BINARY, cases, retry_errors=True)
            assert sorted(c.case.id for c in retry) == sorted(flaky)

        retried = ok(cli("judge", "run", "--db", db, "--rubric", "ok", "--retry-errors"))
        assert "2 verdict(s) stored, 0 error verdict(s)" in retried.out
        assert server.calls == 8
        assert {case_of(r) for r in server.requests[6:]} == flaky

        ok(cli("judge", "run", "--db", db, "--rubric", "ok", "--retry-errors"))
        assert server.calls == 8
    with Store.open(db) as store:
        latest = verdicts(store, judge.version)
    assert {v.case_id: v.value for v in latest} == {f"b{i}": expected_binary(i) for i in range(6)}


# 5. A killed run resumes where it left off -----------------------------------------------


def test_a_killed_run_resumes_without_asking_twice(cli: CLI, db: Path, tmp_path: Path) -> None:
    n = 10
    total = 2 * n  # pairwise: both orders
    ok(cli("rubric", "import", write_rubric(tmp_path / "pw.toml", "pw", "pairwise"), "--db", db))
    ok(cli("import", write_jsonl(tmp_path / "pairs.jsonl", pair_records(n)), "--db", db))
    labels = [{"case_id": f"p{i}", "label": expected_pair(i)} for i in range(n)]
    ok(cli("labels", "import", write_jsonl(tmp_path / "labels.jsonl", labels), "--db", db,
           "--rater", "alice", "--rubric", "pw"))  # fmt: skip
    with LoopbackServer(latency=0.2) as server:
        ok(cli("judge", "set", "--db", db, "--rubric", "pw", "--model", MODEL,
               "--api-base", server.api_base))  # fmt: skip
        command = [sys.executable, "-m", "evaltui", "judge", "run", "--db", str(db),
                   "--rubric", "pw", "--concurrency", "2"]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while server.calls < 6:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the judge run never reached the server"
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            out, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == -signal.SIGKILL
        assert KEY not in out + err
        first_calls = server.calls
        with Store.open(db) as store:
            judge = get_judge(store, "pw")
            stored_first = len(verdicts(store, judge.version))
        assert 0 < stored_first < total

        resumed = ok(cli("judge", "run", "--db", db, "--rubric", "pw", "--concurrency", "4"))
        assert server.calls - first_calls == total - stored_first
        assert f"{total - stored_first} verdict(s) stored, 0 error verdict(s)" in resumed.out
    with Store.open(db) as store:
        rows = store.cursor().execute(
            "SELECT case_id, swapped, count(*) FROM verdicts WHERE judge_version = ? "
            "GROUP BY ALL ORDER BY ALL", [judge.version],
        ).fetchall()  # fmt: skip
        answers = outcomes(store, judge, PAIRWISE)
    assert rows == sorted((f"p{i}", s, 1) for i in range(n) for s in (False, True))
    assert {c: a.value for c, a in answers.items()} == {f"p{i}": expected_pair(i) for i in range(n)}


# 6. Pairwise: both orders, position consistency ------------------------------------------


def always_a(request: Request, seen: int) -> Reply:
    return Reply(json.dumps({"critique": "the first one, always", "verdict": "A"}))


async def test_pairwise_asks_both_orders_and_measures_position_bias(
    store: Store, tmp_path: Path
) -> None:
    n = 6
    cases = load(store, tmp_path, PAIRWISE, pair_records(n))
    for i in range(n):
        store.add_label(f"p{i}", PAIRWISE, "alice", expected_pair(i))

    with LoopbackServer() as server:
        fair = judge_for(server, PAIRWISE)
        calls = plan(store, fair, PAIRWISE, cases)
        assert sorted((c.case.id, c.swapped) for c in calls) == sorted(
            (f"p{i}", s) for i in range(n) for s in (False, True)
        )
        await run(store, fair, PAIRWISE, calls, options=FAST)
        prompts = sorted(r.prompt for r in server.requests)
    assert prompts == sorted(
        render(fair.prompt, PAIRWISE, c, swapped=s) for c in cases for s in (False, True)
    )
    for verdict in verdicts(store, fair.version):  # each order stored in the case's orientation
        assert verdict.value == expected_pair(int(verdict.case_id[1:]))
    report = calibration_report(store, PAIRWISE, fair, split="all", resamples=50)
    assert report["position_consistency"] == 1.0 and report["position_consistency_n"] == n
    assert report["judge_kappa"] == 1.0

    with LoopbackServer(always_a) as server:
        biased = judge_for(server, PAIRWISE)
        await run(store, biased, PAIRWISE, plan(store, biased, PAIRWISE, cases), options=FAST)
        assert server.calls == 2 * n
    stored = verdicts(store, biased.version)
    assert {(v.swapped, v.value) for v in stored} == {(False, "A"), (True, "B")}
    answers = outcomes(store, biased, PAIRWISE)
    assert {a.value for a in answers.values()} == {"tie"}
    assert not any(a.consistent for a in answers.values())
    report = calibration_report(store, PAIRWISE, biased, split="all", resamples=50)
    assert report["position_consistency"] == 0.0
    assert report["first_slot_win_rate"] == 1.0 and report["first_slot_n"] == 2 * n


# 7. The key reaches the server and nothing else ------------------------------------------


def test_the_key_reaches_the_server_but_not_the_file_the_output_or_errors(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    deny = threading.Event()

    def responder(request: Request, seen: int) -> Reply:
        if deny.is_set():
            return echo_key_401(request, seen)
        if case_of(request) == "b2":  # a server error that echoes the key, every time
            sent = request.headers.get("authorization", "")
            return Reply(
                status=500, body=json.dumps({"error": {"message": f"upstream saw {sent}"}})
            )
        return marked_verdict(request, seen)

    outputs: list[Result] = []
    with LoopbackServer(responder) as server:
        binary_project(cli, db, tmp_path, server, 4)
        outputs.append(ok(cli("judge", "run", "--db", db, "--rubric", "ok", "--retries", "1")))
        assert "1 error verdict(s)" in outputs[-1].out
        outputs.append(ok(cli("judge", "report", "--db", db, "--rubric", "ok", "--split", "all",
                              "--json", "--resamples", "50")))  # fmt: skip
        report = json.loads(outputs[-1].out)
        assert [e["case_id"] for e in report["error_cases"]] == ["b2"]
        assert "upstream saw Bearer [redacted]" in report["error_cases"][0]["error"]

        deny.set()
        outputs.append(cli("judge", "run", "--db", db, "--rubric", "ok", "--retry-errors"))
        denied = outputs[-1]
        assert denied.code == 1
        assert "AuthenticationError" in denied.err and "[redacted]" in denied.err
        assert "Traceback" not in denied.err
        requests = list(server.requests)
    assert len(requests) == 4 + 1 + 1  # b2 retried once, then the denied retry
    assert {r.headers.get("authorization") for r in requests} == {f"Bearer {KEY}"}
    for result in outputs:
        assert KEY not in result.out and KEY not in result.err

    with Store.open(db) as store:
        judge = get_judge(store, "ok")
        b2 = by_case(verdicts(store, judge.version))["b2"]
        assert b2.value is None
        assert "gave up after 2 attempt(s)" in b2.error
        assert "[redacted]" in b2.error and KEY not in b2.error
        dump = ""
        for (table,) in store.cursor().execute("SELECT table_name FROM duckdb_tables()").fetchall():
            dump += repr(store.cursor().execute(f'SELECT * FROM "{table}"').fetchall())
    assert "upstream saw Bearer [redacted]" in dump  # the dump holds the error texts
    assert KEY not in dump
    files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
    data = b"".join(p.read_bytes() for p in files)
    assert data and KEY.encode() not in data

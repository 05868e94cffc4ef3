r"""A judge run never ends in `internal error`, and keeps every key out of what it stores.

Over the real litellm path against `tests/loopback.py`: a provider that reports more
than 2³¹ tokens, an answer nested 10,000 deep, an answer with a lone surrogate
(`\ud83d`), a verdict the store refuses and any other failure of one case each give
that case an error verdict with the cause, and the run goes on. A template that
formats a field (`{output:d}`) is refused by `judge set` and by `rubric import`, and a
stored judge with one is refused by `judge run` before any call. A key of any length
(`sk-1234`) is scrubbed from stored error texts and answers; one too short to scrub
refuses the run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evaltui.judge import runner
from evaltui.judge.runner import JudgeRunError, plan, run
from evaltui.models import Judge, Verdict
from evaltui.store import Store
from evaltui.store.verdicts import get_judge, verdicts
from tests.conftest import Result, write_rubric
from tests.loopback import LoopbackServer, Reply, Request, marked_verdict
from tests.test_judge_runner import (
    BINARY,
    FAST,
    MODEL,
    binary_project,
    binary_records,
    by_case,
    case_of,
    expected_binary,
    judge_for,
    load,
    ok,
)

CLI = Callable[..., Result]
SHORT_KEY = "sk-1234"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-evaltui-FAKE-case-failures-not-a-real-key")


def for_case(case: str, reply: Reply) -> Callable[[Request, int], Reply]:
    """A responder that answers `reply` for one case and properly for the others."""

    def responder(request: Request, seen: int) -> Reply:
        return reply if case_of(request) == case else marked_verdict(request, seen)

    return responder


async def run_three(store: Store, tmp_path: Path, responder: Any) -> tuple[Any, dict[str, Verdict]]:
    cases = load(store, tmp_path, BINARY, binary_records(3))
    with LoopbackServer(responder) as server:
        judge = judge_for(server, BINARY)
        progress = await run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
        assert server.calls == 3
    return progress, by_case(verdicts(store, judge.version))


def assert_others_fine(stored: dict[str, Verdict], failed: str) -> None:
    for case_id, verdict in stored.items():
        if case_id != failed:
            assert verdict.value == expected_binary(int(case_id[1:])) and verdict.error is None


# One case's failure is its error verdict --------------------------------------------------


@pytest.mark.parametrize("tokens", [2**31 + 5, -1], ids=["above-2**31", "negative"])
async def test_a_token_count_no_count_can_hold_is_an_error_verdict(
    store: Store, tmp_path: Path, tokens: int
) -> None:
    answer = json.dumps({"critique": "fine", "verdict": "pass"})
    reply = Reply(answer, prompt_tokens=tokens, completion_tokens=7)
    progress, stored = await run_three(store, tmp_path, for_case("b1", reply))
    assert (progress.done, progress.errors) == (3, 1)
    b1 = stored["b1"]
    assert b1.value is None and b1.raw == answer  # the answer is kept
    assert b1.error == (
        f"the provider reported {tokens} prompt tokens, not a count a verdict can hold "
        "(0 to 2147483647); the answer is kept in raw"
    )
    assert (b1.prompt_tokens, b1.completion_tokens, b1.cost_usd) == (None, 7, None)
    assert_others_fine(stored, "b1")
    assert stored["b2"].prompt_tokens == 50


async def test_an_answer_nested_10000_deep_is_an_error_verdict(
    store: Store, tmp_path: Path
) -> None:
    answer = '{"critique": "x", "verdict": "pass", "deep": ' + "[" * 10_000 + "]" * 10_000 + "}"
    progress, stored = await run_three(store, tmp_path, for_case("b1", Reply(answer)))
    assert (progress.done, progress.errors) == (3, 1)
    assert stored["b1"].value is None and stored["b1"].raw == answer
    assert stored["b1"].error == "the answer is nested too deeply to read as JSON"
    assert_others_fine(stored, "b1")


async def test_a_lone_surrogate_in_an_answer_is_stored_written_out(
    store: Store, tmp_path: Path
) -> None:
    # What a model writes when it cuts an emoji in half: valid JSON, not valid UTF-8 text.
    answer = '{"critique": "cut \\ud83d here", "verdict": "pass"}'
    progress, stored = await run_three(store, tmp_path, for_case("b1", Reply(answer)))
    assert (progress.done, progress.errors) == (3, 0)
    assert stored["b1"].value == "pass"
    assert stored["b1"].critique == "cut \\ud83d here"


async def test_a_verdict_the_store_refuses_is_stored_as_an_error_verdict(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = runner.write_verdicts

    def refusing(cur: Any, batch: Any) -> None:
        if any(v.case_id == "b1" and v.value is not None for v in batch):
            raise duckdb.ConversionException("Conversion Error: the store refused it")
        real(cur, batch)

    monkeypatch.setattr(runner, "write_verdicts", refusing)
    progress, stored = await run_three(store, tmp_path, marked_verdict)
    assert (progress.done, progress.errors) == (3, 1)
    assert stored["b1"].value is None
    assert stored["b1"].error == (
        "the verdict could not be stored: ConversionException: Conversion Error: "
        "the store refused it"
    )
    assert_others_fine(stored, "b1")


async def test_any_other_failure_of_one_case_is_its_error_verdict(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = runner.parse_answer

    def failing(text: str, kind: Any) -> Any:
        if '"id": "b1"' in text:
            raise ValueError("unexpected")
        return real(text, kind)

    answer = json.dumps({"critique": "about b1", "verdict": "pass", "id": "b1"})

    monkeypatch.setattr(runner, "parse_answer", failing)
    progress, stored = await run_three(store, tmp_path, for_case("b1", Reply(answer)))
    assert (progress.done, progress.errors) == (3, 1)
    assert stored["b1"].error == "could not judge the case: ValueError: unexpected"
    assert_others_fine(stored, "b1")


# Templates ---------------------------------------------------------------------------------

FORMATTED = ["{output:d}", "{output!r}", "{0}", "{output.attr}", "{output[0]}", "{output:{input}}"]


@pytest.mark.parametrize("placeholder", FORMATTED)
def test_judge_set_refuses_a_template_that_formats_a_field(
    cli: CLI, db: Path, tmp_path: Path, placeholder: str
) -> None:
    ok(cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db))
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(f"Grade {placeholder} for {{question}}", encoding="utf-8")
    result = cli("judge", "set", "--db", db, "--rubric", "ok", "--model", MODEL,
                 "--prompt-file", prompt)  # fmt: skip
    assert result.code == 1
    assert result.err.startswith("evaltui: judge prompt: ") and f" {placeholder}" in result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    with Store.open(db) as store:
        assert store.judges("ok") == []


def test_rubric_import_refuses_a_judge_prompt_that_formats_a_field(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    toml = tmp_path / "ok.toml"
    toml.write_text(
        '[rubric]\nname = "ok"\nkind = "binary"\nquestion = "Right?"\n\n'
        '[judge]\nmodel = "openai/x"\nprompt = "Grade {output:d}"\n',
        encoding="utf-8",
    )
    result = cli("rubric", "import", toml, "--db", db)
    assert result.code == 1
    assert result.err.startswith(f"evaltui: {toml}: judge prompt: {{output:d}} is more than")


def test_a_stored_judge_that_formats_a_field_is_refused_before_any_call(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    with LoopbackServer() as server:
        binary_project(cli, db, tmp_path, server, 3)
        with Store.open(db) as store:  # as a version stored before templates were checked so
            judge = get_judge(store, "ok")
            store.save_judge(judge.model_copy(update={"prompt": "Grade {output:d}"}))
        result = cli("judge", "run", "--db", db, "--rubric", "ok")
        assert server.calls == 0
    assert result.code == 1
    last = result.err.splitlines()[-1]
    assert last.startswith("evaltui: judge prompt: {output:d} is more than a field's name")
    assert "internal error" not in result.err


# Keys of any length ------------------------------------------------------------------------


def echo_key(status: int) -> Callable[[Request, int], Reply]:
    """A responder that fails case b2 with a message repeating the key it was sent."""

    def responder(request: Request, seen: int) -> Reply:
        if case_of(request) != "b2":
            return marked_verdict(request, seen)
        sent = request.headers.get("authorization", "")
        return Reply(status=status, body=json.dumps({"error": {"message": f"upstream saw {sent}"}}))

    return responder


def test_a_seven_character_key_is_scrubbed_from_stored_errors_and_answers(
    cli: CLI, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SHORT_KEY)

    def responder(request: Request, seen: int) -> Reply:
        if case_of(request) == "b1":  # an answer that quotes the key
            answer = {"critique": f"the key {SHORT_KEY} was used", "verdict": "pass"}
            return Reply(json.dumps(answer))
        return echo_key(500)(request, seen)

    with LoopbackServer(responder) as server:
        binary_project(cli, db, tmp_path, server, 4)
        result = ok(cli("judge", "run", "--db", db, "--rubric", "ok", "--retries", "1"))
        assert {r.headers.get("authorization") for r in server.requests} == {f"Bearer {SHORT_KEY}"}
        report = ok(cli("judge", "report", "--db", db, "--rubric", "ok", "--split", "all",
                        "--json", "--resamples", "20"))  # fmt: skip
    assert SHORT_KEY not in result.out + result.err + report.out + report.err
    with Store.open(db) as store:
        stored = by_case(verdicts(store, get_judge(store, "ok").version))
    assert "upstream saw Bearer [redacted]" in (stored["b2"].error or "")
    assert stored["b1"].critique == "the key [redacted] was used"
    assert SHORT_KEY not in stored["b1"].raw
    data = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    assert SHORT_KEY.encode() not in data


def test_a_seven_character_key_is_scrubbed_from_a_401_that_stops_the_run(
    cli: CLI, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SHORT_KEY)
    with LoopbackServer(echo_key(401)) as server:
        binary_project(cli, db, tmp_path, server, 3)
        result = cli("judge", "run", "--db", db, "--rubric", "ok", "--concurrency", "1")
    assert result.code == 1
    assert "upstream saw Bearer [redacted]" in result.err and SHORT_KEY not in result.err


async def test_a_key_too_short_to_scrub_refuses_the_run(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "abc")
    cases = load(store, tmp_path, BINARY, binary_records(2))
    with LoopbackServer() as server:
        judge: Judge = judge_for(server, BINARY)
        with pytest.raises(JudgeRunError) as raised:
            await run(store, judge, BINARY, plan(store, judge, BINARY, cases), options=FAST)
        assert server.calls == 0
    assert str(raised.value).startswith(
        "OPENAI_API_KEY holds only 3 character(s), too short to keep out of stored error texts"
    )
    assert verdicts(store, judge.version) == []


def test_scrub_takes_every_key_variable_and_leaves_words_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SHORT_KEY)
    monkeypatch.setenv("HF_TOKEN", "none")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE")  # long: scrubbed anywhere
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # not a key
    text = f"Bearer {SHORT_KEY}; {SHORT_KEY}9 none nonetheless xAKIAEXAMPLEEXAMPLEx false"
    assert runner.scrub(text) == (
        "Bearer [redacted]; sk-12349 [redacted] nonetheless x[redacted]x false"
    )

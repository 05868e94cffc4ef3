"""Running a judge: litellm calls with bounded concurrency and retries, each verdict stored as it arrives.

The project file is the cache: `plan` leaves out every call whose verdict is
already stored, so a stopped run resumes where it left off and a finished one
makes no calls at all. Runs at once (raters on a served project) claim each
call before asking for it (`evaltui.judge.claims`), so no call is made twice
and each run ends once every one of its calls is answered, by it or by
another run. An answer that cannot be read is stored as an error
verdict with its raw text; so is a call that still fails after every retry.
Configuration problems (a bad key, an unknown model) stop the run instead, so
they never fill the cache with errors.

API keys come from the environment through litellm's own conventions
(`OPENAI_API_KEY`, ...). They are never passed, stored or shown here, and
any error text is scrubbed of secret-looking environment values before it is
stored or printed.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from evaltui.errors import EvaltuiError
from evaltui.judge.claims import ClaimQueue, Claims
from evaltui.judge.parse import BinaryAnswer, PairwiseAnswer, parse_answer
from evaltui.judge.prompt import render
from evaltui.models import Case, Judge, Rubric, RubricKind, Verdict
from evaltui.store import Store
from evaltui.store.verdicts import tally, write_verdicts


class JudgeRunError(EvaltuiError):
    """A judge run stopped on a problem every call would hit (key, model, endpoint)."""


@dataclass(frozen=True)
class Call:
    """One request to make: a case, in the case's order or swapped (pairwise position check)."""

    case: Case
    swapped: bool = False
    stored: int | None = None
    """Verdicts already stored for this call when it was planned (None: not known)."""

    @property
    def key(self) -> tuple[str, bool]:
        """The call as the project knows it: case id and order."""
        return (self.case.id, self.swapped)


@dataclass(frozen=True)
class RunOptions:
    """How hard to push the provider."""

    concurrency: int = 8
    """Calls in flight at once."""
    timeout: float = 60.0
    """Seconds before one call is abandoned (and retried)."""
    retries: int = 4
    """Further attempts after a rate limit, timeout or server error."""
    backoff: float = 1.0
    """Base of the exponential backoff, in seconds (full jitter)."""
    max_backoff: float = 60.0
    """No single wait is longer than this, Retry-After included."""
    claim_poll: float = 1.0
    """Seconds between looks at calls another run is answering."""

    @property
    def claim_ttl(self) -> float:
        """Seconds a claim on a call holds: three times the longest one call can take, and a minute.

        A call claimed waits behind at most a chunk and a half of calls before it
        is asked, so its claim outlives the slowest call with room to spare.
        """
        longest = self.timeout * (self.retries + 1) + self.max_backoff * self.retries
        return 3 * longest + 60


@dataclass
class Progress:
    """A run's running totals, updated as each verdict is stored."""

    total: int
    done: int = 0
    """Verdicts this run stored."""
    errors: int = 0
    cost_usd: float = 0.0
    cost_unknown: int = 0
    """Verdicts whose cost litellm could not price (a self-hosted model, say)."""
    retries: int = 0
    elsewhere: int = 0
    """Calls another run answered while this one waited for them (not paid for here)."""
    waiting: int = 0
    """Calls another run is answering at the moment, that this run waits for."""

    @property
    def finished(self) -> int:
        """Calls answered so far, by this run or another."""
        return self.done + self.elsewhere


VerdictCallback = Callable[[Verdict, Progress], None]
ProgressCallback = Callable[[Progress], None]


def load_litellm() -> ModuleType:
    """Import litellm the way evaltui needs it: local cost map, no banners, no network."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm


def plan(
    store: Store, judge: Judge, rubric: Rubric, cases: Sequence[Case], *, retry_errors: bool = False
) -> list[Call]:
    """The calls still to make: pairwise rubrics ask both orders, stored verdicts are skipped."""
    found = tally(store, judge.version)
    orders = (False, True) if rubric.kind is RubricKind.pairwise else (False,)
    calls = []
    for case in cases:
        if case.id in judge.few_shot:
            continue
        for swapped in orders:
            count, answered = found.get((case.id, swapped), (0, False))
            if count == 0 or (retry_errors and not answered):
                calls.append(Call(case, swapped, count))
    return calls


async def run(
    store: Store,
    judge: Judge,
    rubric: Rubric,
    calls: Sequence[Call],
    *,
    options: RunOptions | None = None,
    examples: Sequence[tuple[Case, str]] = (),
    on_verdict: VerdictCallback | None = None,
    on_wait: ProgressCallback | None = None,
) -> Progress:
    """Make the calls, storing each verdict as it arrives; return the totals.

    Each call is claimed in the project before it is made. A call another run
    claimed first is left to it, and waited for: `on_verdict` is called for
    each verdict this run stores and each one another run stored for a call
    this run waited on (counted as `elsewhere`); `on_wait` whenever the number
    of calls waited for changes. Cancelling the task running this drops the
    calls in flight (nothing is stored for them), keeps every verdict already
    stored and releases the claims.
    """
    options = options or RunOptions()
    if judge.source is not None:
        raise JudgeRunError(
            f"judge {judge.name!r} holds verdicts imported from {judge.source}; it cannot be run"
        )
    store.save_judge(judge)
    by_key = {call.key: call for call in calls}  # a call listed twice is made once
    progress = Progress(total=len(by_key))
    if not by_key:
        return progress  # everything is cached: no need to load litellm
    litellm = await asyncio.to_thread(load_litellm)
    before = {key: call.stored for key, call in by_key.items() if call.stored is not None}
    if len(before) < len(by_key):
        found = await asyncio.to_thread(tally, store, judge.version)
        before = {key: found.get(key, (0, False))[0] for key in by_key} | before
    caller = _Caller(litellm, judge, rubric, options, examples, progress)
    writer = _Writer(store, progress, on_verdict)
    workers = max(1, min(options.concurrency, len(by_key)))

    def answered_elsewhere(verdict: Verdict) -> None:
        progress.elsewhere += 1
        if on_verdict is not None:
            on_verdict(verdict, progress)

    def waiting(count: int) -> None:
        progress.waiting = count
        if on_wait is not None:
            on_wait(progress)

    claims = Claims(store, judge.version, before, options.claim_ttl)
    queue = ClaimQueue(
        claims, list(by_key), workers=workers, poll=options.claim_poll,
        on_answered=answered_elsewhere, on_wait=waiting,
    )  # fmt: skip

    async def worker() -> None:
        while writer.healthy and (key := await queue.next()) is not None:
            writer.put(await caller.verdict(by_key[key]))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(workers):
                group.create_task(worker())
    except* JudgeRunError as failed:
        raise failed.exceptions[0] from None
    finally:
        # Answers already received are stored even when the run is cancelled;
        # then the claims go, so a call left unanswered is free for another run.
        try:
            await writer.finish()
        finally:
            await queue.close()
    queue.check()
    return progress


class _Writer:
    """Stores verdicts as they arrive, each batch in one commit, off the event loop.

    While one batch commits, the next gathers: under load a commit carries
    many verdicts, when calls are slow each carries one. Progress and the
    callback follow the commit, so whatever they report is stored.
    """

    def __init__(self, store: Store, progress: Progress, on_verdict: VerdictCallback | None):
        self.cur = store.cursor()  # made here, used only by the writer thread
        self.progress = progress
        self.on_verdict = on_verdict
        self.pending: list[Verdict] = []
        self.wake = asyncio.Event()
        self.closing = False
        self.task = asyncio.create_task(self._loop())

    @property
    def healthy(self) -> bool:
        """False once storing has failed: the run stops asking."""
        return not self.task.done()

    def put(self, verdict: Verdict) -> None:
        self.pending.append(verdict)
        self.wake.set()

    async def finish(self) -> None:
        """Store what is pending and stop; re-raises a storage error."""
        self.closing = True
        self.wake.set()
        try:
            await self.task
        finally:
            self.cur.close()

    async def _loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                batch, self.pending = self.pending, []
                await asyncio.to_thread(write_verdicts, self.cur, batch)
                for verdict in batch:
                    self._count(verdict)
            if self.closing:
                return

    def _count(self, verdict: Verdict) -> None:
        p = self.progress
        p.done += 1
        if verdict.value is None:
            p.errors += 1
        if verdict.cost_usd is None:
            p.cost_unknown += 1
        else:
            p.cost_usd += verdict.cost_usd
        if self.on_verdict is not None:
            self.on_verdict(verdict, p)


class _Caller:
    """One judge's request, retry and parse logic."""

    def __init__(
        self,
        litellm: ModuleType,
        judge: Judge,
        rubric: Rubric,
        options: RunOptions,
        examples: Sequence[tuple[Case, str]],
        progress: Progress,
    ) -> None:
        self.litellm = litellm
        self.judge = judge
        self.rubric = rubric
        self.options = options
        self.examples = examples
        self.progress = progress
        self.retryable = (
            litellm.RateLimitError,
            litellm.Timeout,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.BadGatewayError,
            litellm.APIConnectionError,
        )
        self.fatal = (
            litellm.AuthenticationError,
            litellm.PermissionDeniedError,
            litellm.NotFoundError,
            litellm.BadRequestError,
        )
        self.kwargs: dict[str, Any] = {
            "model": judge.model,
            "timeout": options.timeout,
            "num_retries": 0,  # retries are ours, so Retry-After is honoured and counted
            "max_retries": 0,
            **judge.params,
        }
        if judge.api_base:
            self.kwargs["api_base"] = judge.api_base
        if _supports_schema(litellm, judge.model):
            self.kwargs["response_format"] = (
                PairwiseAnswer if rubric.kind is RubricKind.pairwise else BinaryAnswer
            )

    async def verdict(self, call: Call) -> Verdict:
        prompt = render(
            self.judge.prompt, self.rubric, call.case, swapped=call.swapped, examples=self.examples
        )
        messages = [{"role": "user", "content": prompt}]
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                response = await self.litellm.acompletion(messages=messages, **self.kwargs)
            except self.fatal as error:
                raise JudgeRunError(
                    f"judge {self.judge.model}: {type(error).__name__}: {scrub(str(error))}"
                ) from None
            except self.retryable as error:
                if attempt >= self.options.retries:
                    return self._failed(call, attempt + 1, error)
                await asyncio.sleep(self._wait(error, attempt))
                attempt += 1
                self.progress.retries += 1
                continue
            except self.litellm.APIError as error:  # another provider error: keep it, move on
                return self._failed(call, attempt + 1, error)
            latency = (time.perf_counter() - started) * 1000
            return self._read(call, response, latency)

    def _wait(self, error: Exception, attempt: int) -> float:
        ceiling = min(self.options.max_backoff, self.options.backoff * 2**attempt)
        wait = random.uniform(0, ceiling)
        after = retry_after(getattr(error, "litellm_response_headers", None))
        if after is not None:
            wait = max(wait, min(after, self.options.max_backoff))
        return wait

    def _failed(self, call: Call, attempts: int, error: Exception) -> Verdict:
        text = f"gave up after {attempts} attempt(s): {type(error).__name__}: {scrub(str(error))}"
        return Verdict(
            judge_version=self.judge.version,
            case_id=call.case.id,
            swapped=call.swapped,
            value=None,
            error=text,
        )

    def _read(self, call: Call, response: Any, latency_ms: float) -> Verdict:
        choices = response.choices or ()  # a provider may answer with no choices at all
        raw = scrub((choices[0].message.content if choices else None) or "")
        parsed = parse_answer(raw, self.rubric.kind)
        value = parsed.value
        if value is not None and call.swapped:
            value = {"A": "B", "B": "A"}.get(value, value)  # back to the case's own orientation
        usage = getattr(response, "usage", None)
        return Verdict(
            judge_version=self.judge.version,
            case_id=call.case.id,
            swapped=call.swapped,
            value=value,
            critique=parsed.critique,
            raw=raw,
            error=parsed.error,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            cost_usd=self._cost(response),
            latency_ms=round(latency_ms, 3),
        )

    def _cost(self, response: Any) -> float | None:
        # litellm prices each call with completion_cost as it returns it; ask again only
        # when that figure is missing. None is "unknown" (a self-hosted model), never 0.
        hidden = getattr(response, "_hidden_params", None) or {}
        if "response_cost" in hidden:
            cost = hidden["response_cost"]
            return None if cost is None else float(cost)
        try:
            return float(self.litellm.completion_cost(completion_response=response))
        except Exception:  # litellm raises for models it cannot price
            return None


def _supports_schema(litellm: ModuleType, model: str) -> bool:
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # unknown models raise in some litellm versions
        return False


def retry_after(headers: Any) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), if any.

    >>> retry_after({"retry-after": "2"})
    2.0
    >>> retry_after({}) is None
    True
    """
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def scrub(text: str) -> str:
    """Text with every secret-looking environment value replaced by `[redacted]`.

    >>> os.environ["EXAMPLE_API_KEY"] = "sk-not-a-real-key"
    >>> scrub("Incorrect API key provided: sk-not-a-real-key")
    'Incorrect API key provided: [redacted]'
    >>> del os.environ["EXAMPLE_API_KEY"]
    """
    for value in _secrets(tuple(os.environ.items())):
        if value in text:
            text = text.replace(value, "[redacted]")
    return text


@functools.lru_cache(maxsize=4)
def _secrets(environ: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The secret-looking values of an environment (cached: read once per answer otherwise)."""
    return tuple(
        value
        for name, value in environ
        if len(value) >= 8 and any(word in name.upper() for word in _SECRET_WORDS)
    )

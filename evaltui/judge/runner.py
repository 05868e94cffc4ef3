"""Running a judge: litellm calls with bounded concurrency and retries, each verdict stored as it arrives.

The project file is the cache: `plan` leaves out every call whose verdict is
already stored, so a stopped run resumes where it left off and a finished one
makes no calls at all. Runs at once (raters on a served project) claim each
call before asking for it (`evaltui.judge.claims`), so no call is made twice
and each run ends once every one of its calls is answered, by it or by
another run. An answer that cannot be read is stored as an error verdict with
its raw text; so is a call that still fails after every retry, and any other
failure of one case (an answer nested too deeply to read, usage figures no
count can hold): the run goes on. Configuration problems (a bad key, an
unknown model, a template no case can fill) stop the run instead, so
they never fill the cache with errors.

API keys come from the environment through litellm's own conventions
(`OPENAI_API_KEY`, ...). They are never passed, stored or shown here, and
error texts and answers are scrubbed of every secret variable's value (see
`scrub`) before they are stored or printed. Which endpoints a judge from a
rubric TOML may send them to is decided before a run (`evaltui.judge.trust`);
a judge's params never carry an endpoint, headers or a credential.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from evaltui.errors import EvaltuiError
from evaltui.judge.claims import ClaimQueue, Claims
from evaltui.judge.parse import BinaryAnswer, PairwiseAnswer, parse_answer
from evaltui.judge.prompt import check_template, render
from evaltui.judge.trust import check_params
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

    The judge itself is not stored here: defining a project's judges is the
    caller's choice (`gate --run` stores verdicts of a file's judge without it).
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
    check_params(judge.params, f"judge {judge.name!r}: params.")
    check_template(judge.prompt, rubric.kind)  # one stored before templates were checked so
    by_key = {call.key: call for call in calls}  # a call listed twice is made once
    progress = Progress(total=len(by_key))
    if not by_key:
        return progress  # everything is cached: no need to load litellm
    check_secrets()
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
    except* EvaltuiError as failed:
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
                for verdict in await self._store(batch):
                    self._count(verdict)
            if self.closing:
                return

    async def _store(self, batch: list[Verdict]) -> list[Verdict]:
        """Store a batch; return what was stored.

        A verdict the store refuses (not a full disk or a server gone: those stop
        the run) is stored in its place as an error verdict giving the cause.
        """
        try:
            await asyncio.to_thread(write_verdicts, self.cur, batch)
            return batch
        except EvaltuiError:
            raise
        except Exception as error:
            if len(batch) > 1:
                return [stored for v in batch for stored in await self._store([v])]
            refused, cause = batch[0], _cause(error)
        stand_in = Verdict(
            judge_version=refused.judge_version,
            case_id=refused.case_id,
            swapped=refused.swapped,
            value=None,
            error=storable(f"the verdict could not be stored: {cause}"),
            latency_ms=refused.latency_ms,
        )
        await asyncio.to_thread(write_verdicts, self.cur, [stand_in])
        return [stand_in]

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
            **judge.params,  # first, so no param replaces what follows
            "model": judge.model,
            "timeout": options.timeout,
            "num_retries": 0,  # retries are ours, so Retry-After is honoured and counted
            "max_retries": 0,
        }
        if judge.api_base:
            self.kwargs["api_base"] = judge.api_base
        if _supports_schema(litellm, judge.model):
            self.kwargs["response_format"] = (
                PairwiseAnswer if rubric.kind is RubricKind.pairwise else BinaryAnswer
            )

    async def verdict(self, call: Call) -> Verdict:
        """The call's verdict; a failure of this case alone is its error verdict."""
        try:
            return await self._ask(call)
        except JudgeRunError:
            raise
        except Exception as error:
            return self._error(call, f"could not judge the case: {_cause(error)}")

    async def _ask(self, call: Call) -> Verdict:
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
        return self._error(call, f"gave up after {attempts} attempt(s): {_cause(error)}")

    def _error(self, call: Call, text: str) -> Verdict:
        return Verdict(
            judge_version=self.judge.version,
            case_id=call.case.id,
            swapped=call.swapped,
            value=None,
            error=storable(text),
        )

    def _read(self, call: Call, response: Any, latency_ms: float) -> Verdict:
        choices = response.choices or ()  # a provider may answer with no choices at all
        raw = storable(scrub((choices[0].message.content if choices else None) or ""))
        parsed = parse_answer(raw, self.rubric.kind)
        value, error = parsed.value, parsed.error
        if value is not None and call.swapped:
            value = {"A": "B", "B": "A"}.get(value, value)  # back to the case's own orientation
        prompt_tokens, completion_tokens, odd = token_counts(getattr(response, "usage", None))
        cost = self._cost(response) if odd is None else None  # priced from those counts
        if odd is not None:
            value, error = None, f"{error}; {odd}" if error else odd
        return Verdict(
            judge_version=self.judge.version,
            case_id=call.case.id,
            swapped=call.swapped,
            value=value,
            critique=storable(parsed.critique),
            raw=raw,
            error=error,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
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


MAX_COUNT = 2**31 - 1
"""The largest token count the verdicts table holds (a 32-bit INTEGER column)."""


def token_counts(usage: Any) -> tuple[int | None, int | None, str | None]:
    """Prompt and completion tokens as stored, and why they are not, if a figure cannot be.

    A provider that reports a count below 0, above `MAX_COUNT` or not a whole number
    is not to be trusted on this answer: the counts are left unknown and the caller
    makes the verdict an error verdict (its answer is kept in `raw`).

    >>> token_counts(None)
    (None, None, None)
    >>> token_counts(type("Usage", (), {"prompt_tokens": 2**31 + 5, "completion_tokens": 3}))
    (None, 3, 'the provider reported 2147483653 prompt tokens, not a count a verdict can hold (0 to 2147483647); the answer is kept in raw')
    """
    counts: list[int | None] = []
    odd: list[str] = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(usage, name, None)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is None or (type(value) is int and 0 <= value <= MAX_COUNT):
            counts.append(value)
        else:
            counts.append(None)
            odd.append(f"{scrub(str(value))[:40]} {name.replace('_', ' ')}")
    why = None
    if odd:
        why = (
            f"the provider reported {' and '.join(odd)}, not a count a verdict can hold "
            f"(0 to {MAX_COUNT}); the answer is kept in raw"
        )
    return counts[0], counts[1], why


def storable(text: str) -> str:
    r"""Text the store can hold: a lone surrogate (from a `\ud800` in an answer's JSON) written out.

    >>> storable("ok \ud800")
    'ok \\ud800'
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _cause(error: BaseException) -> str:
    return f"{type(error).__name__}: {scrub(str(error))}"


_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIALS")
SHORTEST_SECRET = 4
"""A secret variable's value shorter than this cannot be scrubbed without wrecking text."""
_ANYWHERE = 8
"""Values this long are scrubbed wherever they appear; shorter ones where they stand alone."""


def secret_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables that hold secrets, by name: a name whose last word
    (after the last `_`) is KEY, TOKEN, SECRET, PASSWORD, PASSWD or CREDENTIALS, or ends
    in APIKEY (OPENAI_API_KEY, WATSONX_APIKEY, HF_TOKEN, AZURE_CLIENT_SECRET, EVALTUI_TOKEN).

    >>> sorted(secret_variables({"OPENAI_API_KEY": "sk-1", "TOKENIZERS_PARALLELISM": "false",
    ...                          "LITELLM_KEY_ROTATION_ENABLED": "1", "HF_TOKEN": "hf_x"}))
    ['HF_TOKEN', 'OPENAI_API_KEY']
    """
    found = {}
    for name, value in (os.environ if environ is None else environ).items():
        last = name.upper().rsplit("_", 1)[-1]
        if value and (last in _SECRET_WORDS or last.endswith("APIKEY")):
            found[name] = value
    return found


def check_secrets() -> None:
    """Refuse a run while a secret variable holds fewer than `SHORTEST_SECRET` characters.

    Every other value is scrubbed from what is stored, whatever its length; one of
    one to three characters could not be without wrecking every answer it occurs in.
    """
    for name, value in sorted(secret_variables().items()):
        if len(value) < SHORTEST_SECRET:
            raise JudgeRunError(
                f"{name} holds only {len(value)} character(s), too short to keep out of "
                f"stored error texts; give it {SHORTEST_SECRET} or more (a server that checks "
                "no key takes any placeholder, e.g. no-key-needed), or unset it"
            )


def scrub(text: str) -> str:
    """Text with every secret variable's value replaced by `[redacted]`.

    Values of 8 characters or more go wherever they appear; shorter ones (down to
    `SHORTEST_SECRET`) where they stand alone, not inside a longer run of letters,
    digits, `-` and `_`, so a short key goes but the word it is part of stays.

    >>> os.environ["EXAMPLE_API_KEY"] = "sk-not-a-real-key"
    >>> os.environ["SHORT_API_KEY"] = "sk-1234"
    >>> scrub("Incorrect API key provided: sk-not-a-real-key")
    'Incorrect API key provided: [redacted]'
    >>> scrub("key sk-1234 is invalid, but sk-12345 is another")
    'key [redacted] is invalid, but sk-12345 is another'
    >>> del os.environ["EXAMPLE_API_KEY"], os.environ["SHORT_API_KEY"]
    """
    pattern = _secret_pattern(tuple(sorted(_secret_values())))
    return text if pattern is None else pattern.sub("[redacted]", text)


def _secret_values() -> set[str]:
    """The secret variables' values, and any long value of a variable named like a secret
    anywhere in its name (AWS_ACCESS_KEY_ID, AWS_BEARER_TOKEN_BEDROCK)."""
    values = set(secret_variables().values())
    for name, value in os.environ.items():
        if len(value) >= _ANYWHERE and any(word in name.upper() for word in _SECRET_WORDS):
            values.add(value)
    return values


@functools.lru_cache(maxsize=4)
def _secret_pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for every value, longest first (cached: read once per answer otherwise)."""
    alone = r"(?<![\w-]){}(?![\w-])"
    parts = [
        re.escape(v) if len(v) >= _ANYWHERE else alone.format(re.escape(v))
        for v in sorted(set(values), key=len, reverse=True)
        if len(v) >= SHORTEST_SECRET
    ]
    return re.compile("|".join(parts)) if parts else None

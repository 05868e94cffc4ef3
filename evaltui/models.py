"""Domain models: the only things that cross layers (store, ingest, CLI, UI).

Names follow the product vocabulary: a *case* is judged by a *rater* under a
*rubric*, giving a *label*; a *judge* gives *verdicts*.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

RubricName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$", min_length=1, max_length=64)]
"""A rubric name: lowercase letters, digits and dashes, unique in a project."""

RubricVersion = Annotated[int, Field(ge=1, lt=2**31)]
"""A rubric version: 1, 2, ... (stored as a 32-bit integer, so below 2^31)."""

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class Model(BaseModel):
    """Base for every domain model: unknown fields are an error, instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CaseKind(StrEnum):
    """Whether a case has one output (`single`) or two to compare (`pair`)."""

    single = "single"
    pair = "pair"


class RubricKind(StrEnum):
    """`binary` rubrics take pass/fail; `pairwise` ones take A/B/tie."""

    binary = "binary"
    pairwise = "pairwise"


class RubricStatus(StrEnum):
    """Lifecycle of a rubric version."""

    draft = "draft"
    approved = "approved"
    retired = "retired"


BINARY_VALUES = ("pass", "fail")
PAIRWISE_VALUES = ("A", "B", "tie")


def allowed_values(kind: RubricKind) -> tuple[str, ...]:
    """The label values a rubric of this kind accepts.

    >>> allowed_values(RubricKind.pairwise)
    ('A', 'B', 'tie')
    """
    return BINARY_VALUES if kind is RubricKind.binary else PAIRWISE_VALUES


class ToolCallFunction(Model):
    """The function part of an OpenAI-style tool call; `arguments` is a JSON string."""

    name: str
    arguments: str = ""


class ToolCall(Model):
    """One tool call made by an assistant turn."""

    id: str = ""
    type: str = "function"
    function: ToolCallFunction


class Message(Model):
    """One turn of a chat transcript in the OpenAI `messages` shape."""

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class Case(Model):
    """One thing to judge: an input (text or chat transcript) and one or two outputs."""

    id: NonEmpty
    kind: CaseKind
    input: str | None = None
    """Plain-text input; exactly one of `input` and `messages` is set."""
    messages: list[Message] | None = None
    """Chat transcript leading up to the output."""
    output: str | None = None
    """The single output (kind `single`)."""
    output_a: str | None = None
    """Output A (kind `pair`), in the case's own orientation."""
    output_b: str | None = None
    """Output B (kind `pair`)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Any JSON object; used for slicing and filtering."""
    split: str | None = None
    """`trusted`, `monitoring` or free text."""
    tags: tuple[str, ...] = ()
    source: str | None = None
    """File the case was imported from."""
    imported_at: datetime | None = None
    reason: str | None = None
    """Why the case was added (provenance)."""

    @model_validator(mode="after")
    def _check_shape(self) -> Case:
        if (self.input is None) == (self.messages is None):
            raise ValueError("a case needs exactly one of 'input' (text) or 'messages' (chat)")
        if self.kind is CaseKind.single:
            if self.output is None:
                raise ValueError("a single case needs 'output'")
            if self.output_a is not None or self.output_b is not None:
                raise ValueError("a single case has 'output', not 'output_a'/'output_b'")
        else:
            if self.output_a is None or self.output_b is None:
                raise ValueError("a pair case needs both 'output_a' and 'output_b'")
            if self.output is not None:
                raise ValueError("a pair case has 'output_a'/'output_b', not 'output'")
        return self


class Rubric(Model):
    """A named, versioned criterion that labels are made under."""

    name: RubricName
    version: RubricVersion = 1
    kind: RubricKind
    status: RubricStatus = RubricStatus.draft
    question: NonEmpty
    pass_: str = Field(default="", alias="pass")
    """What a passing (binary) or better (pairwise) output looks like."""
    fail: str = ""
    checklist: tuple[str, ...] = ()
    examples_pass: tuple[str, ...] = ()
    examples_fail: tuple[str, ...] = ()
    created_at: datetime | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def values(self) -> tuple[str, ...]:
        """The label values this rubric accepts."""
        return allowed_values(self.kind)


class RaterKind(StrEnum):
    """A rater is a person or a judge version."""

    human = "human"
    judge = "judge"


class Rater(Model):
    """Someone (or some judge version) who labels."""

    name: NonEmpty
    kind: RaterKind = RaterKind.human


class Label(Model):
    """One rater's judgement of one case under one rubric version.

    Labels are append-only: a change or an undo is a new row, and the current
    label is the latest row. `value` is None for a row that clears the label.
    """

    id: NonEmpty
    case_id: NonEmpty
    rubric: RubricName
    rubric_version: int
    rater: NonEmpty
    value: str | None
    """`pass`/`fail` or `A`/`B`/`tie`, always in the case's own A/B orientation."""
    note: str = ""
    tags: tuple[str, ...] = ()
    """Failure-mode tags."""
    shown_swapped: bool | None = None
    """For pairwise: whether B was shown on the left."""
    seconds: float | None = None
    created_at: datetime | None = None
    source: str | None = None
    """Where the label came from when imported; None when made in evaltui."""


class Session(Model):
    """A calibration assignment: raters label the same sample of cases."""

    name: NonEmpty
    rubric: RubricName
    raters: tuple[str, ...]
    case_ids: tuple[str, ...]
    blind: bool = True
    seed: int | None = None
    by_field: str | None = None
    created_at: datetime | None = None


class FailureMode(Model):
    """A named category of failure grouped from notes (axial coding)."""

    id: int
    rubric: RubricName
    name: NonEmpty
    description: str = ""


class AdjudicationCause(StrEnum):
    """Why raters disagreed on a case."""

    ambiguous_case = "ambiguous case"
    rubric_gap = "rubric gap"
    rater_error = "rater error"


class Adjudication(Model):
    """The gold label for a case where raters disagreed."""

    case_id: NonEmpty
    rubric: RubricName
    value: str
    cause: AdjudicationCause
    rationale: str = ""
    adjudicator: str
    created_at: datetime | None = None


class Judge(Model):
    """An LLM judge: model, prompt template and params. Its version hashes all three."""

    name: NonEmpty = "default"
    rubric: RubricName
    model: NonEmpty
    api_base: str = ""
    prompt: NonEmpty
    params: dict[str, Any] = Field(default_factory=dict)
    few_shot: tuple[str, ...] = ()
    source: str | None = None
    """Set for a judge whose verdicts were imported from a file (one order each); never run."""

    @property
    def version(self) -> str:
        """`sha256:` of model, api_base, prompt, params and few-shot ids (and source, if imported)."""
        parts: list[Any] = [
            self.model,
            self.api_base,
            self.prompt,
            self.params,
            list(self.few_shot),
        ]
        if self.source is not None:
            parts.append(self.source)
        payload = json.dumps(parts, sort_keys=True)
        return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


class Verdict(Model):
    """A judge's label for a case, with everything needed to audit it."""

    judge_version: str
    case_id: str
    value: str | None
    """None when the call failed or the answer could not be parsed (an error verdict)."""
    critique: str = ""
    raw: str = ""
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    swapped: bool = False
    created_at: datetime | None = None

"""Rubric <-> TOML: the stable file format that CI gates on (SPEC "Rubric TOML").

Sections other than `[rubric]` are optional; an unknown key anywhere is an
error naming that key.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evaltui import files
from evaltui.errors import InvalidInput
from evaltui.judge.prompt import check_template
from evaltui.judge.trust import check_params
from evaltui.models import Judge, Rubric, RubricKind, RubricName, RubricStatus, RubricVersion


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Examples(_Section):
    """Example case ids for each side of a binary rubric."""

    pass_: list[str] = Field(default_factory=list, alias="pass")
    fail: list[str] = Field(default_factory=list)


class RubricSection(_Section):
    """`[rubric]`: the criterion itself."""

    name: RubricName
    version: RubricVersion = 1
    kind: RubricKind
    status: RubricStatus = RubricStatus.draft
    question: str = Field(min_length=1)
    pass_: str = Field(default="", alias="pass")
    fail: str = ""
    checklist: list[str] = Field(default_factory=list)
    examples: Examples = Field(default_factory=Examples)


class JudgeSection(_Section):
    """`[judge]`: the approved judge for the rubric.

    `api_base` is not sent the API key until the user chooses that endpoint
    (see `evaltui.judge.trust`); `params` never hold an endpoint, headers or a
    credential.
    """

    model: str = Field(min_length=1)
    api_base: str = ""
    prompt: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    few_shot: list[str] = Field(default_factory=list)
    version: str | None = None
    """The hash of model, api_base, prompt, params and few-shot ids; checked when read."""


class CalibrationSection(_Section):
    """`[calibration]`: the measured agreement behind an approval."""

    judge_version: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    """The version of the judge these figures were read for."""
    n: int | None = None
    human_raters: list[str] = Field(default_factory=list)
    human_kappa: float | None = None
    human_kappa_ci: list[float] | None = None
    judge_kappa: float | None = None
    judge_kappa_ci: list[float] | None = None
    tpr: float | None = None
    tnr: float | None = None
    split_seed: int | None = None
    cases_sha256: str | None = None
    labels_sha256: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None


class ThresholdsSection(_Section):
    """`[thresholds]`: what `evaltui gate` requires."""

    human_kappa_lower: float = 0.6
    judge_kappa: float = 0.5
    tpr: float | None = None
    tnr: float | None = None


class RubricFile(_Section):
    """A whole rubric TOML file."""

    rubric: RubricSection
    judge: JudgeSection | None = None
    calibration: CalibrationSection | None = None
    thresholds: ThresholdsSection | None = None

    def to_rubric(self) -> Rubric:
        """The rubric as a domain model."""
        r = self.rubric
        return Rubric(
            name=r.name,
            version=r.version,
            kind=r.kind,
            status=r.status,
            question=r.question,
            pass_=r.pass_,
            fail=r.fail,
            checklist=tuple(r.checklist),
            examples_pass=tuple(r.examples.pass_),
            examples_fail=tuple(r.examples.fail),
        )

    def to_judge(self) -> Judge | None:
        """The `[judge]` section as the rubric's `default` judge, if present."""
        if self.judge is None:
            return None
        j = self.judge
        return Judge(
            name="default",
            rubric=self.rubric.name,
            model=j.model,
            api_base=j.api_base,
            prompt=j.prompt,
            params=j.params,
            few_shot=tuple(j.few_shot),
        )

    @classmethod
    def from_models(cls, rubric: Rubric, judge: Judge | None = None) -> RubricFile:
        """A file holding this rubric (and judge)."""
        section = RubricSection(
            name=rubric.name,
            version=rubric.version,
            kind=rubric.kind,
            status=rubric.status,
            question=rubric.question,
            pass_=rubric.pass_,
            fail=rubric.fail,
            checklist=list(rubric.checklist),
            examples=Examples(pass_=list(rubric.examples_pass), fail=list(rubric.examples_fail)),
        )
        judge_section = None
        if judge is not None:
            check_params(judge.params, f"judge {judge.name!r} of {rubric.name!r}: params.")
            judge_section = JudgeSection(
                model=judge.model,
                api_base=judge.api_base,
                prompt=judge.prompt,
                params=judge.params,
                few_shot=list(judge.few_shot),
                version=judge.version,
            )
        return cls(rubric=section, judge=judge_section)


def loads(text: str, *, source: str = "<toml>") -> RubricFile:
    """Parse and validate rubric TOML; errors name the file and the key."""
    data = files.parse_toml(text, source)
    try:
        parsed = RubricFile.model_validate(data)
    except ValidationError as e:
        raise InvalidInput(f"{source}: {_describe(e)}") from None
    if parsed.judge is not None:
        check_params(parsed.judge.params, f"{source}: judge.params.")
    judge = parsed.to_judge()
    if judge is not None:
        try:
            check_template(judge.prompt, parsed.to_rubric().kind)
        except InvalidInput as error:
            raise InvalidInput(f"{source}: {error}") from None
    stated = parsed.judge.version if parsed.judge is not None else None
    if stated and judge is not None and stated != judge.version:
        raise InvalidInput(
            f"{source}: judge.version does not match the judge's model, prompt and params "
            f"(they hash to {judge.version}); was the prompt edited by hand?"
        )
    return parsed


def load(path: Path | str) -> RubricFile:
    """Read a rubric TOML file."""
    path = Path(path)
    return loads(files.read_text(path, "rubric TOML file"), source=str(path))


def dumps(rubric_file: RubricFile) -> str:
    """Rubric TOML text; `load(dumps(f)) == f`."""
    data = rubric_file.model_dump(by_alias=True, exclude_none=True, mode="python")
    return tomli_w.dumps(data, multiline_strings=True)


def dump(rubric_file: RubricFile, path: Path | str, *, force: bool = False) -> None:
    """Write rubric TOML to `path`; an existing TOML file is replaced only with `force`."""
    files.write_text(path, dumps(rubric_file), files.TOML, force=force)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if first["type"] == "missing":
        return f"missing key {key!r}"
    return f"{key}: {first['msg']}"

"""Judge prompts: a template over the rubric and the case, asking for the critique before the verdict."""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence
from typing import Any

from evaltui.errors import InvalidInput
from evaltui.models import Case, Message, Rubric, RubricKind

BINARY_TEMPLATE = """You are grading one reply against a rubric.

Question: {question}
PASS means: {pass}
FAIL means: {fail}
Checklist:
{checklist}
{examples}
Input:
<<<
{input}
>>>

Reply to grade:
<<<
{output}
>>>

First write a short critique that checks the reply against each checklist item,
then give the verdict. Answer with JSON only:
{{"critique": "...", "verdict": "pass" or "fail"}}"""
"""Default template for binary rubrics."""

PAIRWISE_TEMPLATE = """You are comparing two replies to the same input against a rubric.

Question: {question}
Better means: {pass}
Worse means: {fail}
Checklist:
{checklist}
{examples}
Input:
<<<
{input}
>>>

Reply A:
<<<
{output_a}
>>>

Reply B:
<<<
{output_b}
>>>

First write a short critique comparing A and B on each checklist item, then give
the verdict. Answer with JSON only:
{{"critique": "...", "verdict": "A", "B" or "tie"}}"""
"""Default template for pairwise rubrics."""

FIELDS = (
    "question",
    "pass",
    "fail",
    "checklist",
    "examples",
    "input",
    "output",
    "output_a",
    "output_b",
)
"""The names a template may use, in braces."""


def default_template(rubric: Rubric) -> str:
    """The default judge template for the rubric's kind."""
    return PAIRWISE_TEMPLATE if rubric.kind is RubricKind.pairwise else BINARY_TEMPLATE


@functools.lru_cache(maxsize=64)
def check_template(template: str, kind: RubricKind | None = None) -> None:
    """Refuse a template that names an unknown field, formats one, or has unbalanced braces;
    given the rubric's `kind`, also one that never shows the judge the reply it judges.

    A field is its name in braces and nothing else: a format spec (`{output:d}`), a
    conversion (`{output!r}`), an index or attribute (`{output[0]}`, `{output.x}`) or a
    position (`{0}`) would fail, or change the text, on every case of a run.

    >>> check_template("Grade {output} for {question}")
    >>> check_template("Grade {reply}")
    Traceback (most recent call last):
    ...
    evaltui.errors.InvalidInput: judge prompt: unknown field {reply}; fields: question, pass, fail, checklist, examples, input, output, output_a, output_b (write {{ and }} for braces the judge should see, as in JSON)
    >>> check_template("Grade {input}", RubricKind.binary)
    Traceback (most recent call last):
    ...
    evaltui.errors.InvalidInput: judge prompt: it never shows the judge the reply: a binary rubric's prompt needs {output}
    >>> check_template("Grade {output:d}")
    Traceback (most recent call last):
    ...
    evaltui.errors.InvalidInput: judge prompt: {output:d} is more than a field's name; write {output}, the name in braces and nothing else (and {{ and }} for literal braces)
    """
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as error:
        raise InvalidInput(
            f"judge prompt: {error} (write {{{{ and }}}} for literal braces)"
        ) from None
    for name, spec, conversion in fields:
        placeholder = (
            "{"
            + name
            + (f"!{conversion}" if conversion else "")
            + (f":{spec}" if spec else "")
            + "}"
        )
        if name not in FIELDS:
            base = name.split(".")[0].split("[")[0]
            if base in FIELDS:
                raise InvalidInput(_formatted(placeholder, base))
            raise InvalidInput(
                f"judge prompt: unknown field {placeholder}; fields: {', '.join(FIELDS)} "
                "(write {{ and }} for braces the judge should see, as in JSON)"
            )
        if spec or conversion:
            raise InvalidInput(_formatted(placeholder, name))
    if kind is not None:
        needed = ("output",) if kind is RubricKind.binary else ("output_a", "output_b")
        missing = [name for name in needed if name not in {f[0] for f in fields}]
        if missing:
            raise InvalidInput(
                f"judge prompt: it never shows the judge the reply: a {kind.value} rubric's "
                f"prompt needs {' and '.join('{' + name + '}' for name in missing)}"
            )


def _formatted(placeholder: str, name: str) -> str:
    return (
        f"judge prompt: {placeholder} is more than a field's name; write {{{name}}}, the name "
        "in braces and nothing else (and {{ and }} for literal braces)"
    )


def transcript(messages: Sequence[Message]) -> str:
    """A chat transcript as plain text, one turn per block, tool calls included.

    >>> from evaltui.models import Message
    >>> print(transcript([Message(role="user", content="Where is it?")]))
    [user]
    Where is it?
    """
    blocks = []
    for m in messages:
        head = f"[{m.role}{' ' + m.name if m.name else ''}]"
        lines = [head] + ([m.content] if m.content else [])
        for call in m.tool_calls or ():
            lines.append(f"(calls {call.function.name} with {call.function.arguments})")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render(
    template: str,
    rubric: Rubric,
    case: Case,
    *,
    swapped: bool = False,
    examples: Sequence[tuple[Case, str]] = (),
) -> str:
    """The prompt for one case; with `swapped`, output B is shown as A (for position checks).

    Case text is substituted as data: braces inside a case are not read as fields.
    """
    check_template(template)
    a, b = case.output_a or "", case.output_b or ""
    if swapped:
        a, b = b, a
    shown = "\n".join(
        f"Example ({value}):\n{transcript(ex.messages) if ex.messages else ex.input}\n-> {ex.output or ''}"
        for ex, value in examples
    )
    values: Mapping[str, Any] = {
        "question": rubric.question,
        "pass": rubric.pass_,
        "fail": rubric.fail,
        "checklist": "\n".join(f"- {item}" for item in rubric.checklist) or "- (none)",
        "examples": f"\nLabelled examples:\n{shown}\n" if shown else "",
        "input": transcript(case.messages) if case.messages is not None else case.input or "",
        "output": case.output or "",
        "output_a": a,
        "output_b": b,
    }
    return template.format_map(values)

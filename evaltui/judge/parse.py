"""Reading a judge's answer: structured JSON when there is one, tolerant reading otherwise.

An answer that cannot be read as a verdict is an error verdict (value None),
never a pass or a fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from evaltui.models import RubricKind


class BinaryAnswer(BaseModel):
    """The structured answer a binary judge is asked for (critique first)."""

    critique: str
    verdict: Literal["pass", "fail"]


class PairwiseAnswer(BaseModel):
    """The structured answer a pairwise judge is asked for (critique first)."""

    critique: str
    verdict: Literal["A", "B", "tie"]


@dataclass(frozen=True)
class Parsed:
    """A judge's answer as a verdict: `value` None means an error verdict."""

    value: str | None
    critique: str
    error: str | None = None


_WORDS = {
    RubricKind.binary: {"pass": "pass", "fail": "fail"},
    RubricKind.pairwise: {"a": "A", "b": "B", "tie": "tie", "1": "A", "2": "B"},
}
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_LABELLED = re.compile(
    r"(?:verdict|answer|decision)\s*[:=]\s*\**\s*\"?([A-Za-z12]+)", re.IGNORECASE
)


def _normalise(word: str, kind: RubricKind) -> str | None:
    return _WORDS[kind].get(word.strip().strip('."*').lower())


def parse_answer(text: str, kind: RubricKind) -> Parsed:
    """Read a verdict from a judge's raw answer.

    >>> parse_answer('{"critique": "misses Q2", "verdict": "fail"}', RubricKind.binary)
    Parsed(value='fail', critique='misses Q2', error=None)
    >>> parse_answer('Critique: both fine.\\nVerdict: tie', RubricKind.pairwise).value
    'tie'
    >>> parse_answer('I cannot decide.', RubricKind.binary).error
    'no verdict found in the answer'
    >>> parse_answer('{"a":' * 100_000 + '1' + '}' * 100_000, RubricKind.binary).error
    'the answer is nested too deeply to read as JSON'
    """
    text = text or ""
    for candidate in _json_candidates(text):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        except RecursionError:  # Python's JSON reader stops near a thousand levels
            return Parsed(None, "", "the answer is nested too deeply to read as JSON")
        if isinstance(data, dict) and isinstance(data.get("verdict"), str):
            value = _normalise(data["verdict"], kind)
            critique = data.get("critique") if isinstance(data.get("critique"), str) else ""
            if value is None:
                return Parsed(
                    None,
                    critique or "",
                    f"verdict {data['verdict']!r} is not one of the rubric's labels",
                )
            return Parsed(value, critique or "")
    labelled = _LABELLED.findall(text)
    if labelled:
        value = _normalise(labelled[-1], kind)
        critique = text[: text.lower().rfind(labelled[-1].lower())].strip()
        if value is not None:
            return Parsed(value, _strip_label(critique))
        return Parsed(
            None, text.strip(), f"verdict {labelled[-1]!r} is not one of the rubric's labels"
        )
    return Parsed(None, text.strip(), "no verdict found in the answer")


def _json_candidates(text: str) -> list[str]:
    fenced = re.findall(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.DOTALL)
    found = _JSON_OBJECT.search(text)
    return [*fenced, *([found.group()] if found else []), text.strip()]


def _strip_label(critique: str) -> str:
    return re.sub(
        r"(verdict|answer|decision)\s*[:=]\s*\**\s*\"?$", "", critique, flags=re.IGNORECASE
    ).strip()

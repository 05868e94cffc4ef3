"""`evaltui judge import`: verdicts another tool's judge gave, stored as a judge of the rubric.

An answer the value map does not cover (a judge's unreadable output, say) is
stored as an error verdict with the raw answer kept, exactly as a run would
store it. A broken record (no case id, a case not in the project) stops the
import with nothing stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltui.errors import InvalidInput
from evaltui.ingest.formats import check_input_file
from evaltui.ingest.labels import _normalise, _pick
from evaltui.ingest.records import Problem, read_records
from evaltui.models import Judge, Verdict
from evaltui.store import Store
from evaltui.store.verdicts import add_verdicts, answered


@dataclass
class VerdictImportReport:
    """What a verdict import did."""

    judge: Judge
    added: int
    errors: int
    unchanged: int

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"judge {self.judge.name} ({self.judge.version[:19]}): {self.added} new verdict(s), "
            f"{self.errors} of them error verdicts, {self.unchanged} already stored"
        )


def import_verdicts(
    store: Store,
    path: Path | str,
    *,
    rubric: str,
    judge_name: str,
    model: str,
    case_id_column: str | None = None,
    value_column: str | None = None,
    values: dict[str, str] | None = None,
    critique_column: str | None = None,
) -> VerdictImportReport:
    """Store a file's verdicts as judge `judge_name` of the rubric; all or nothing."""
    path = Path(path)
    checked = check_input_file(path)
    target = store.get_rubric(rubric)
    records = list(read_records(path, checked.format))
    checked.check_unchanged()  # every record was read from the file that was checked
    columns = {key for _, rec in records if isinstance(rec, dict) for key in rec}
    id_col = _pick(path, columns, case_id_column, ("case_id", "id"), "--case-id")
    value_col = _pick(path, columns, value_column, ("verdict", "value", "label"), "--value")
    if critique_column is not None:
        _pick(path, columns, critique_column, (), "--critique")
    judge = Judge(
        name=judge_name,
        rubric=target.name,
        model=model,
        prompt=f"(verdicts imported from {path.name})",
        source=path.name,
    )
    known = set(store.case_ids())
    problems: list[Problem] = []
    parsed: list[Verdict] = []
    seen: set[str] = set()
    for location, record in records:
        if isinstance(record, Problem):
            problems.append(record)
            continue
        case_id = record.get(id_col)
        if isinstance(case_id, bool) or not isinstance(case_id, str | int):
            problems.append(
                Problem(location, id_col, "expected a case id (text or a whole number)")
            )
            continue
        case_id = str(case_id)
        if case_id not in known:
            problems.append(Problem(location, id_col, f"no case {case_id!r} in the project"))
            continue
        if case_id in seen:
            problems.append(Problem(location, id_col, f"case {case_id!r} appears twice"))
            continue
        seen.add(case_id)
        parsed.append(_verdict(record, judge, case_id, value_col, critique_column, values, target))
    if problems:
        more = f" ({len(problems) - 1} more invalid record(s))" if len(problems) > 1 else ""
        raise InvalidInput(f"{problems[0].describe(path)}{more}; nothing was imported")
    if not parsed:
        raise InvalidInput(f"{path}: no verdicts found; nothing was imported")
    store.save_judge(judge)
    done = answered(store, judge.version)
    new = [v for v in parsed if (v.case_id, False) not in done]
    add_verdicts(store, new)
    return VerdictImportReport(
        judge, len(new), sum(v.value is None for v in new), len(parsed) - len(new)
    )


def _verdict(
    record: dict[str, Any],
    judge: Judge,
    case_id: str,
    value_col: str,
    critique_col: str | None,
    values: dict[str, str] | None,
    rubric: Any,
) -> Verdict:
    raw_value = record.get(value_col)
    raw = "" if raw_value is None else str(raw_value).strip()
    mapped = values.get(raw, raw) if values else raw
    value = _normalise(mapped, rubric)
    critique = record.get(critique_col) if critique_col else None
    return Verdict(
        judge_version=judge.version,
        case_id=case_id,
        value=value,
        critique=critique if isinstance(critique, str) else "",
        raw=raw,
        error=None if value is not None else f"answer {raw!r} is not one of the rubric's labels",
    )

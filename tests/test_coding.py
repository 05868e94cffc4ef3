"""Adjudications and failure modes in the store: gold labels, merges and renames keep links."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltui.errors import InvalidInput
from evaltui.models import AdjudicationCause, Rubric, RubricKind
from evaltui.store import Store, coding

RUBRIC = Rubric(name="ok", kind=RubricKind.binary, question="Is it right?")


@pytest.fixture
def labelled(store: Store) -> Store:
    store.save_rubric(RUBRIC)
    for i in range(6):
        store.cursor().execute(
            "INSERT INTO cases (id, kind, input, output, metadata, tags) VALUES (?, 'single', 'q', 'a', '{}', [])",
            [f"c{i}"],
        )
    return store


def test_latest_adjudication_is_the_gold_label(labelled: Store) -> None:
    coding.adjudicate(
        labelled, "c1", "ok", "fail", AdjudicationCause.rater_error, "missed it", "carol"
    )
    coding.adjudicate(
        labelled, "c1", "ok", "pass", AdjudicationCause.rubric_gap, "rubric silent", "carol"
    )
    gold = coding.adjudications(labelled, "ok")
    assert list(gold) == ["c1"]
    assert (gold["c1"].value, gold["c1"].cause) == ("pass", AdjudicationCause.rubric_gap)
    with pytest.raises(InvalidInput, match="'A' is not a label"):
        coding.adjudicate(labelled, "c2", "ok", "A", AdjudicationCause.ambiguous_case, "", "carol")


def test_ranking_follows_merges_and_renames(labelled: Store) -> None:
    notes = {
        "c0": "quoted 45 days", "c1": "wrong return window", "c2": "ignored 2nd question",
        "c3": "wrong refund timing", "c4": "missed second question",
    }  # fmt: skip
    labels = {
        cid: labelled.add_label(cid, RUBRIC, "alice", "fail", note=n) for cid, n in notes.items()
    }
    policy = coding.create_mode(labelled, "ok", "wrong policy")
    refunds = coding.create_mode(labelled, "ok", "refund timing")
    missed = coding.create_mode(labelled, "ok", "missed question")
    for cid in ("c0", "c1"):
        coding.assign(labelled, labels[cid], policy.id)
    coding.assign(labelled, labels["c3"], refunds.id)
    for cid in ("c2", "c4"):
        coding.assign(labelled, labels[cid], missed.id)
    assert [(m.mode.name, m.count) for m in coding.ranking(labelled, "ok")] == [
        ("missed question", 2), ("wrong policy", 2), ("refund timing", 1),
    ]  # fmt: skip
    coding.merge_modes(labelled, refunds.id, policy.id)
    coding.rename_mode(labelled, policy.id, "wrong policy detail")
    ranked = coding.ranking(labelled, "ok")
    assert [(m.mode.name, m.count, m.examples) for m in ranked] == [
        ("wrong policy detail", 3, ("c0", "c1", "c3")),
        ("missed question", 2, ("c2", "c4")),
    ]
    assert coding.label_modes(labelled, "ok")[labels["c3"].id] == ["wrong policy detail"]
    with pytest.raises(InvalidInput, match="already exists"):
        coding.create_mode(labelled, "ok", "missed question")


def test_modes_survive_reopening(labelled: Store, db: Path) -> None:
    label = labelled.add_label("c0", RUBRIC, "alice", "fail", note="x")
    mode = coding.create_mode(labelled, "ok", "m")
    coding.assign(labelled, label, mode.id)
    labelled.close()
    with Store.open(db) as again:
        assert coding.ranking(again, "ok")[0].count == 1

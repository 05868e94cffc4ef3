"""Calibration sessions: a seeded sample of cases that named raters label blind."""

from __future__ import annotations

import json
import random
from collections import defaultdict

from evaltui.errors import InvalidInput
from evaltui.models import RubricKind, Session
from evaltui.store import Store
from evaltui.store.db import now


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` over strata in proportion to their sizes (largest remainder).

    >>> allocate({"a": 60, "b": 30, "c": 10}, 10)
    {'a': 6, 'b': 3, 'c': 1}
    """
    population = sum(sizes.values())
    exact = {k: total * v / population for k, v in sizes.items()}
    shares = {k: min(int(x), sizes[k]) for k, x in exact.items()}
    by_remainder = sorted(sizes, key=lambda k: exact[k] - int(exact[k]), reverse=True)
    while sum(shares.values()) < total:
        for key in by_remainder:
            if sum(shares.values()) < total and shares[key] < sizes[key]:
                shares[key] += 1
    return shares


def create_session(
    store: Store,
    name: str,
    rubric_name: str,
    raters: list[str],
    *,
    sample: int | None = None,
    by: str | None = None,
    seed: int = 0,
    blind: bool = True,
) -> Session:
    """Draw the session's cases (random, or stratified by a metadata field) and store it."""
    rubric = store.get_rubric(rubric_name)
    if len(set(raters)) < 2:
        raise InvalidInput("a calibration session needs at least two different raters")
    if store.cursor().execute("SELECT 1 FROM sessions WHERE name = ?", [name]).fetchone():
        raise InvalidInput(f"a session named {name!r} already exists")
    kind = "pair" if rubric.kind is RubricKind.pairwise else "single"
    rows = (
        store.cursor()
        .execute(
            "SELECT id, split, tags, metadata FROM cases WHERE kind = ? ORDER BY rowid", [kind]
        )
        .fetchall()
    )
    if not rows:
        raise InvalidInput(f"no {kind} cases to sample for rubric {rubric.name!r}")
    order = {row[0]: i for i, row in enumerate(rows)}
    size = len(rows) if sample is None else sample
    if size < 1:
        raise InvalidInput("--sample must be at least 1")
    size = min(size, len(rows))
    rng = random.Random(seed)
    if by is None:
        chosen = rng.sample([row[0] for row in rows], size)
    else:
        strata: dict[str, list[str]] = defaultdict(list)
        for case_id, split, tags, metadata in rows:
            if by == "split":
                value = split
            elif by in ("tag", "tags"):
                value = ",".join(sorted(tags)) if tags else None
            else:
                value = json.loads(metadata or "{}").get(by)
            strata["(none)" if value is None else str(value)].append(case_id)
        shares = allocate({k: len(v) for k, v in sorted(strata.items())}, size)
        chosen = [c for key, share in shares.items() for c in rng.sample(strata[key], share)]
    session = Session(
        name=name,
        rubric=rubric.name,
        raters=tuple(raters),
        case_ids=tuple(sorted(chosen, key=order.__getitem__)),
        blind=blind,
        seed=seed,
        by_field=by,
        created_at=now(),
    )
    store.cursor().execute(
        "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [session.name, session.rubric, list(session.raters), list(session.case_ids),
         session.blind, session.seed, session.by_field, session.created_at],
    )  # fmt: skip
    return session

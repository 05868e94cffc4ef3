"""What the benchmarks share: latency summaries and seeded filler text."""

from __future__ import annotations

import random
import statistics
import sys
from dataclasses import dataclass

WORDS = ("the", "a", "refund", "order", "account", "shipping", "policy", "within", "days",
         "customer", "support", "invoice", "number", "reply", "please", "thanks", "item",
         "returned", "damaged", "label", "carrier", "warehouse", "balance", "credit")  # fmt: skip


@dataclass
class Latencies:
    """Count, median, 95th percentile and maximum of some times (milliseconds)."""

    count: int
    p50: float
    p95: float
    max: float


def latencies(values: list[float], what: str = "measurement") -> Latencies:
    """Count, median, 95th percentile and maximum of `values` (milliseconds)."""
    if len(values) < 2:
        sys.exit(f"only {len(values)} {what}(s) were measured")
    p95 = statistics.quantiles(values, n=100, method="inclusive")[94]
    return Latencies(len(values), statistics.median(values), p95, max(values))


def filler_text(rng: random.Random, low: int, high: int) -> str:
    """Words joined into sentences until the text is `low` to `high` characters long."""
    target = rng.randint(low, high)
    parts: list[str] = []
    length = 0
    while length < target:
        sentence = " ".join(rng.choices(WORDS, k=rng.randint(5, 14)))
        parts.append(sentence[0].upper() + sentence[1:] + rng.choice("...?!"))
        length += len(parts[-1]) + 1
    return " ".join(parts)[:high]

"""SQL literals for statements run whole on a Quack server.

Quack's `query()` runs one SQL text on the server and takes no parameters of
its own, so the values of a statement sent there are written into its text.
This module is the one place that does it. Every value becomes a typed
literal DuckDB reads back unchanged (checked against DuckDB itself in the
tests), and a `?` is only ever replaced outside quotes and comments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any


def literal(value: Any) -> str:
    """A DuckDB literal for a parameter value, typed as DuckDB types that parameter.

    >>> literal("it's")
    "'it''s'"
    >>> literal([1, None])
    "[CAST('1' AS INTEGER), NULL]"
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST('{value}' AS {_integer_type(value)})"
    if isinstance(value, float):
        text = repr(value) if math.isfinite(value) else str(value)
        return f"CAST('{text}' AS DOUBLE)"
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime):
        kind = "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
        return f"CAST('{value.isoformat()}' AS {kind})"
    if isinstance(value, date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    if isinstance(value, time):
        return f"CAST('{value.isoformat()}' AS TIME)"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"unhex('{bytes(value).hex()}')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    raise TypeError(f"no SQL literal for a {type(value).__name__} parameter")


_INTEGER_TYPES = (
    ("INTEGER", -(2**31), 2**31 - 1),
    ("BIGINT", -(2**63), 2**63 - 1),
    ("UBIGINT", 0, 2**64 - 1),
    ("HUGEINT", -(2**127), 2**127 - 1),
    ("UHUGEINT", 0, 2**128 - 1),
)


def _integer_type(value: int) -> str:
    """The type DuckDB gives a Python int parameter: the narrowest that holds it."""
    for name, low, high in _INTEGER_TYPES:
        if low <= value <= high:
            return name
    raise TypeError(f"{value} does not fit a 128-bit integer")


def _decimal(value: Decimal) -> str:
    """An exact DECIMAL literal; DOUBLE beyond DuckDB's 38 digits, as a bound parameter."""
    if not value.is_finite():
        return f"CAST('{value}' AS DOUBLE)"
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    scale = max(0, -exponent)
    precision = max(len(digits) + max(exponent, 0), scale + 1)
    if precision > 38:
        return f"CAST('{value}' AS DOUBLE)"
    return f"CAST('{value:f}' AS DECIMAL({precision}, {scale}))"


def _string(value: str) -> str:
    """A VARCHAR literal. Quotes are doubled; NUL, which a quoted literal cannot hold, is chr(0)."""
    value.encode("utf-8")  # a lone surrogate cannot be stored: fail here, not on the server
    parts = ["'" + part.replace("'", "''") + "'" for part in value.split("\0")]
    if len(parts) == 1:
        return parts[0]
    return "(" + " || chr(0) || ".join(parts) + ")"


def inline(sql: str, params: Sequence[Any] | None) -> str:
    """`sql` with each `?` outside quotes and comments replaced by the next parameter's literal.

    >>> inline("SELECT ? AS \\"a?\\", '?' WHERE x = ?", ["o'k", True])
    'SELECT \\'o\\'\\'k\\' AS "a?", \\'?\\' WHERE x = TRUE'
    """
    values = list(params or ())
    out: list[str] = []
    used = 0
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in "'\"":  # a quoted string or identifier: copied as is, doubled quotes included
            end = i + 1
            while end < n:
                if sql[end] == char:
                    if end + 1 < n and sql[end + 1] == char:
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1])
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end])
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(sql[i:end])
            i = end
        elif char == "?":
            if used >= len(values):
                raise ValueError(f"the statement has more ? than the {len(values)} values given")
            out.append(literal(values[used]))
            used += 1
            i += 1
        else:
            out.append(char)
            i += 1
    if used != len(values):
        raise ValueError(f"the statement has {used} ? for {len(values)} values")
    return "".join(out)

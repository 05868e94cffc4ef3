"""What a client of a served project may run: the check `evaltui serve` gives Quack.

Quack calls the authorization function with the whole SQL text of every
statement a client sends. This module writes that function as SQL macros
that admit only the shapes evaltui's own client sends:

- reads (`SELECT`, `WITH`, `FROM`) that call only scalar and aggregate
  functions (and `unnest`, `range`, the catalog listings a Quack attach asks
  for), never a table function that reaches outside the project, and never
  the token table beyond looking up the rater of a token the client holds;
- appends (`INSERT` and `INSERT OR IGNORE`, never `OR REPLACE` or `ON
  CONFLICT`) to the project's tables, where a row naming a rater (labels,
  deferrals, adjudications) is appended only through the statements below,
  which prove on the server that the rater is the one the token belongs to;
- three exact updates: a rubric's status, a failure mode's name, and the mode
  a failure mode was merged into;
- `BEGIN`, `COMMIT`, `ROLLBACK`.

Everything else is refused: creating, replacing or dropping anything,
settings, `ATTACH`, `COPY`, `PRAGMA`, `CALL`, extensions, several statements
in one text, comments, and any update or delete of labels.

The check works on the statement's *skeleton*: every single-quoted string
replaced by `?`, the way DuckDB's own lexer reads them. Anything that could
make a lexer disagree about where a string ends (double quotes, comments,
dollar quotes, `E'...'` and other prefixed strings, a quote left open) is
refused, so the skeleton shows every word the parser will see as code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from evaltui.store.literals import literal
from evaltui.store.rows import LABEL_COLUMNS

CATALOG = "evaltui_guard"
"""The in-memory catalog of the serving process that holds the checks (never the project file)."""

AUTHENTICATE = f"{CATALOG}.main.token_ok"
"""The authentication function: is the presented token one of the project's?"""

AUTHORIZE = f"{CATALOG}.main.statement_ok"
"""The authorization function: may a client run this statement?"""

APPEND_TABLES = (
    "cases",
    "rubrics",
    "raters",
    "sessions",
    "failure_modes",
    "failure_mode_links",
    "judges",
    "verdicts",
    "judge_claims",
    "judge_splits",
    "test_views",
)
"""Tables a client may append to freely: none of their rows names the rater who wrote it."""

_TOKEN_RATER = "(SELECT rater FROM team_tokens WHERE token_sha256 = sha256(?))"


def own_rows(column: str) -> str:
    """A WHERE clause that lets a row in only when its `column` is the token's rater.

    The token is a parameter of the statement; a row naming anyone else stops
    the whole statement with an error, so nothing is silently dropped.
    """
    return (
        f" WHERE CASE WHEN new.{column} = {_TOKEN_RATER} THEN true "
        f"ELSE error('a served project stores rows only in the name of the token''s rater') END"
    )


LABELS_INSERT = (
    f"INSERT OR IGNORE INTO labels (seq, {LABEL_COLUMNS}) "
    "SELECT nextval('label_seq'), * FROM (SELECT unnest(?::VARCHAR[]), "
    "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::INTEGER[]), "
    "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
    "unnest(?::VARCHAR[][]), unnest(?::BOOLEAN[]), unnest(?::DOUBLE[]), "
    f"unnest(?::TIMESTAMP[]), unnest(?::VARCHAR[])) AS new({LABEL_COLUMNS})"
)
"""Labels in one statement, each column a list. Over a server, `own_rows('rater')` follows."""

DEFERRAL_INSERT = (
    "INSERT INTO deferrals (seq, case_id, rubric, rater, deferred, created_at) "
    "SELECT nextval('label_seq'), * FROM (VALUES (?, ?, ?, ?, ?)) "
    "AS new(case_id, rubric, rater, deferred, created_at)"
)
"""A deferral. Over a server, `own_rows('rater')` follows."""

ADJUDICATION_INSERT = (
    "INSERT INTO adjudications "
    "(seq, id, case_id, rubric, value, cause, rationale, adjudicator, created_at) "
    "SELECT nextval('label_seq'), * FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?)) "
    "AS new(id, case_id, rubric, value, cause, rationale, adjudicator, created_at)"
)
"""An adjudication. Over a server, `own_rows('adjudicator')` follows."""

UPDATES = (
    "UPDATE rubrics SET status = ? WHERE name = ? AND version = ?",
    "UPDATE failure_modes SET name = ? WHERE id = ?",
    "UPDATE failure_modes SET merged_into = ? WHERE id = ?",
)
"""The only updates a client may send; none touches a label."""

TOKEN_RATER_LOOKUP = "SELECT rater FROM team_tokens WHERE token_sha256 = ?"
"""The one read of the token table a client may make: the rater of a token it holds."""

_OWN_SHAPES = (
    LABELS_INSERT + own_rows("rater"),
    DEFERRAL_INSERT + own_rows("rater"),
    ADJUDICATION_INSERT + own_rows("adjudicator"),
)

_TRANSACTIONS = ("BEGIN", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "ABORT", "END")

_STRING = r"'(?:[^']|'')*'"
_SPACE = r"[ \t\n\r\f\v]+"  # DuckDB's whitespace (RE2's \s lacks the vertical tab)

# Double quotes, a quote left open, dollar quotes, backslashes, several statements,
# comments, and prefixed strings such as E'...': anything that could hide code.
_HIDING = r"[\"'$\\;]|--|/\*|[A-Z0-9_&]\?"

# literals.literal's literals, each to one '?': typed casts, blobs, NUL-joined
# strings, NULL/TRUE/FALSE; then lists of '?' (twice, for lists of lists).
_LITERALS = (
    r"CAST\(\? AS [A-Z]+(\(\d+, \d+\))?\)|UNHEX\(\?\)|\(\?( \|\| CHR\(0\) \|\| \?)+\)"
    r"|\bNULL\b|\bTRUE\b|\bFALSE\b"
)
_LIST = r"\[(\?(, \?)*)?\]"

_READ = r"^(SELECT|WITH|FROM) "
_APPEND_HEAD = r"^INSERT (OR IGNORE )?INTO "

# Table functions a client's reads may call: lists, and the catalog listings
# DuckDB's Quack client asks for when it attaches.
_TABLE_FUNCTIONS = frozenset(
    {"UNNEST", "RANGE", "GENERATE_SERIES", "DUCKDB_TABLES", "DUCKDB_VIEWS"}
)

_REFUSED_WORDS = (
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "COPY",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "SET",
    "RESET",
    "CALL",
    "INSTALL",
    "LOAD",
    "EXPORT",
    "IMPORT",
    "CHECKPOINT",
    "VACUUM",
    "TRUNCATE",
    "MERGE",
    "USE",
    "GRANT",
    "REVOKE",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "SUMMARIZE",
    "DESCRIBE",
    "SHOW",
    "EXPLAIN",
    "CONFLICT",
    "TEAM_TOKENS",
    CATALOG.upper(),
)

# Scalar functions that reach outside a statement's own rows.
_REFUSED_SCALARS = r"QUACK_[A-Z0-9_]*|WRITE_LOG|GETENV|SETSEED"


def skeleton(sql: str) -> str:
    """The statement with each single-quoted string replaced by `?`, upper-cased, spaces folded.

    The server's check computes the same (tests compare the two on evaltui's statements).

    >>> skeleton("select 'it''s'  FROM x")
    'SELECT ? FROM X'
    """
    text = re.sub(_STRING, "?", sql)
    return re.sub(_SPACE, " ", text.upper()).strip(" ")


def normalised(skeleton_text: str) -> str:
    """A skeleton with every literal, of any type and length, as one `?`.

    >>> normalised("X IN (CAST(? AS INTEGER), [?, [?]], NULL)")
    'X IN (?, ?, ?)'
    """
    text = re.sub(_LITERALS, "?", skeleton_text)
    for _ in range(2):
        text = re.sub(_LIST, "?", text)
    return text


def _refused(table_functions: Iterable[str]) -> str:
    """One regex over skeletons for what no read or append may hold."""
    names = sorted({n.upper() for n in table_functions} - _TABLE_FUNCTIONS)
    return (
        r"\b(" + "|".join(_REFUSED_WORDS) + r")\b"
        r"|\b(FROM|JOIN) \?"  # FROM 'file.csv' is a scan of a file
        r"|[A-Z0-9_]\.[A-Z_][A-Z0-9_]* ?\("  # a qualified call: another catalog's function
        r"|\b(" + "|".join([_REFUSED_SCALARS, *map(re.escape, names)]) + r") ?\("
    )


def macros(project_catalog: str, table_functions: Iterable[str]) -> list[str]:
    """The statements that create the two checks in the guard catalog.

    `project_catalog` is the served file's catalog name; `table_functions` are
    the names of the table and pragma functions the server knows, which no
    client statement may call (bar the few reads use).
    """
    project = '"' + project_catalog.replace('"', '""') + '"'
    tables = "|".join(t.upper() for t in APPEND_TABLES)
    exact = [
        *_TRANSACTIONS,
        *(normalised(skeleton(t)) for t in (*_OWN_SHAPES, *UPDATES, TOKEN_RATER_LOOKUP)),
    ]
    free = rf"^(SELECT|WITH|FROM) |^INSERT (OR IGNORE )?INTO ({tables}) (\(|VALUES |SELECT )"
    # Each value is computed once: a lambda over a one-element list binds it to a name.
    normalise = f"regexp_replace(regexp_replace(regexp_replace(s, {literal(_LITERALS)}, '?', 'g'), {literal(_LIST)}, '?', 'g'), {literal(_LIST)}, '?', 'g')"
    return [
        f"""CREATE MACRO {AUTHENTICATE}(quack_session, presented_token, quack_default_token) AS (
            EXISTS (SELECT 1 FROM {project}.main.team_tokens
                    WHERE token_sha256 = sha256(presented_token)))""",
        f"""CREATE MACRO {AUTHORIZE}(quack_connection, query) AS (
            list_transform(
                [trim(regexp_replace(upper(regexp_replace(query, {literal(_STRING)}, '?', 'g')),
                                     {literal(_SPACE)}, ' ', 'g'))],
                s -> NOT regexp_matches(s, {literal(_HIDING)}) AND (
                    {normalise} IN ({", ".join(map(literal, exact))})
                    OR (regexp_matches(s, {literal(free)})
                        AND NOT regexp_matches(regexp_replace(s, {literal(_APPEND_HEAD)}, ''),
                                               {literal(_refused(table_functions))}))))[1]
        )""",
    ]


def own_statement(
    template: str, params: Sequence[object], column: str, token: str
) -> tuple[str, list[object]]:
    """A rater-naming append as a served project takes it: checked against `token`'s rater."""
    return template + own_rows(column), [*params, token]

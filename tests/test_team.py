"""Team mode: `evaltui serve` run as a user runs it, and raters connecting over Quack.

Every server here is a real `evaltui serve` process (tests/served.py); every
client is either another process or the CLI in this one, so what is checked
is what crosses the wire and what ends up in the project file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from evaltui.errors import InvalidInput
from evaltui.store import Store
from evaltui.store.server import AccessDenied, ServerUnreachable, token_sha256
from tests.conftest import Result, write_jsonl, write_rubric
from tests.loopback import LoopbackServer
from tests.served import Served, evaltui_command, free_port

CLI = Callable[..., Result]

KEY = "sk-evaltui-FAKE-team-not-a-real-key-5521"
MODEL = "openai/evaltui-loopback-judge"


@pytest.fixture(autouse=True)
def hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token, and a fake judge key, from the environment of whoever runs the tests."""
    monkeypatch.delenv("EVALTUI_TOKEN", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def ok(result: Result) -> Result:
    """A CLI run that must have succeeded."""
    assert result.code == 0, result.err
    return result


def one_error_line(result: Result) -> str:
    """The single `evaltui: ...` line a failed command printed, checked to be just that."""
    assert result.code == 1, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaltui: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


def expected(i: int) -> str:
    """The judge's verdict (and alice's label) for case i, as loopback's marks say."""
    return "pass" if i % 3 else "fail"


def make_project(cli: CLI, db: Path, tmp_path: Path, n: int) -> list[str]:
    """A project file with n cases (ids c000...) and the binary rubric `ok`; returns the ids."""
    ids = [f"c{i:03d}" for i in range(n)]
    records: list[dict[str, object]] = [
        {"id": case, "input": f"question {i}", "output": f"reply {case} [expect:{expected(i)}]"}
        for i, case in enumerate(ids)
    ]
    ok(cli("import", write_jsonl(tmp_path / "cases.jsonl", records), "--db", db))
    ok(cli("rubric", "import", write_rubric(tmp_path / "ok.toml"), "--db", db))
    return ids


def import_labels(cli: CLI, db: Path, tmp_path: Path, rater: str, values: dict[str, str]) -> None:
    rows: list[dict[str, object]] = [{"case_id": c, "label": v} for c, v in values.items()]
    path = write_jsonl(tmp_path / f"labels-{rater}.jsonl", rows)
    ok(cli("labels", "import", path, "--db", db, "--rater", rater, "--rubric", "ok"))


def stop(server: Served) -> str:
    """Stop the server as Ctrl+C does; check it said so and exited 0."""
    process = server.process
    assert process is not None
    out = server.stop()
    assert process.returncode == 0, out
    assert "Stopped serving" in out, out
    return out


def next_line(server: Served, timeout: float = 10) -> str:
    """The next line serve prints (it must come within `timeout` seconds)."""
    assert server.process is not None and server.process.stdout is not None
    stdout, got = server.process.stdout, []
    reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert got, f"serve printed nothing more in {timeout} s"
    return got[0].rstrip("\n")


def port_of(server: Served) -> int:
    return int(server.address.rsplit(":", 1)[1])


def tcp_connects(host: str, port: int) -> bool:
    """Whether a plain TCP connection to host:port is accepted."""
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def non_loopback_address(family: socket.AddressFamily) -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    target = ("10.255.255.255", 1) if family == socket.AF_INET else ("2001:db8::1", 1)
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect(target)
        host = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    if host in ("0.0.0.0", "::") or host.startswith("127.") or host == "::1":
        return None
    return host


# 1. Four raters at once: no label lost, none duplicated -----------------------------------

CLIENT = """
import json, sys, time
from pathlib import Path

from evaltui.store import Store

address, token, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
go = out.with_name("go")
with Store.open(address, token=token) as store:
    rubric = store.get_rubric("ok")
    out.with_suffix(".ready").touch()
    deadline = time.monotonic() + 120
    while not go.exists():  # every client connected: now all write at once
        if time.monotonic() > deadline:
            raise SystemExit("never told to start")
        time.sleep(0.005)
    started = time.time()
    written = {}
    for i in range(n):
        case = f"c{i:03d}"
        value = "pass" if i % 3 else "fail"
        label = store.add_label(case, rubric, store.rater, value)
        written[label.id] = [case, value]
    ended = time.time()
    out.write_text(json.dumps(
        {"rater": store.rater, "written": written, "started": started, "ended": ended}
    ))
"""


def test_four_raters_writing_500_labels_each_at_once_store_exactly_2000(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    n, raters = 500, ["ann", "ben", "cat", "dan"]
    cases = make_project(cli, db, tmp_path, n)
    script = tmp_path / "client.py"
    script.write_text(CLIENT, encoding="utf-8")
    began = time.monotonic()
    processes: dict[str, subprocess.Popen[str]] = {}
    outs = {rater: tmp_path / f"out-{rater}.json" for rater in raters}
    with Served(db, raters=raters) as server:
        assert sorted(server.tokens) == raters
        assert len(set(server.tokens.values())) == 4
        try:
            for rater in raters:
                processes[rater] = subprocess.Popen(
                    [sys.executable, str(script), server.address, server.tokens[rater],
                     str(n), str(outs[rater])],
                    cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
            deadline = time.monotonic() + 120
            while not all(out.with_suffix(".ready").exists() for out in outs.values()):
                for rater, process in processes.items():
                    assert process.poll() is None, (rater, process.communicate())
                assert time.monotonic() < deadline, "the clients never connected"
                time.sleep(0.01)
            (tmp_path / "go").touch()
            for rater, process in processes.items():
                out, err = process.communicate(timeout=300)
                assert process.returncode == 0, f"{rater}: {out}{err}"
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.communicate()
        stop(server)
    elapsed = time.monotonic() - began

    reports = {rater: json.loads(out.read_text()) for rater, out in outs.items()}
    # Each client was told, by the server, that it is the rater its token was issued to.
    assert {rater: r["rater"] for rater, r in reports.items()} == {r: r for r in raters}
    # The writes really overlapped: every client started before any finished.
    assert max(r["started"] for r in reports.values()) < min(r["ended"] for r in reports.values())
    told: dict[str, tuple[str, str, str]] = {}
    for rater, report in reports.items():
        assert len(report["written"]) == n
        for label_id, (case, value) in report["written"].items():
            assert label_id not in told
            told[label_id] = (rater, case, value)

    with duckdb.connect(str(db), read_only=True) as con:  # the file itself, server gone
        rows = con.execute("SELECT id, seq, rater, case_id, value FROM labels").fetchall()
        per_rater = dict(
            con.execute("SELECT rater, count(*) FROM labels GROUP BY rater").fetchall()
        )
        current = dict(
            con.execute("SELECT rater, count(*) FROM current_labels GROUP BY rater").fetchall()
        )
    assert len(rows) == 2000
    assert len({r[0] for r in rows}) == 2000, "duplicated label ids"
    assert len({r[1] for r in rows}) == 2000, "two rows share a seq"
    pairs = Counter((r[2], r[3]) for r in rows)
    assert all(count == 1 for count in pairs.values()), "a rater's label for a case stored twice"
    assert per_rater == dict.fromkeys(raters, 500)
    assert current == dict.fromkeys(raters, 500)
    assert {r[3] for r in rows} == set(cases)
    # Exactly the labels the clients were told were stored, each as written, under its rater.
    assert {r[0]: (r[2], r[3], r[4]) for r in rows} == told
    print(f"4 x {n} labels through the server in {elapsed:.1f} s")


# 2. Tokens: refused when wrong or missing, retired when re-issued, kept only hashed ------


def test_a_wrong_token_is_refused_by_the_store_and_the_cli(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    make_project(cli, db, tmp_path, 3)
    with Served(db, raters=["alice"]) as server:
        good = server.tokens["alice"]
        for wrong in ["wrong", good + "x", good[:-1], good.upper()]:
            with pytest.raises(AccessDenied, match="refused the token"):
                Store.open(server.address, token=wrong)
        result = cli("--db", server.address, "--token", "not-a-token", "agreement",
                     "--rubric", "ok")  # fmt: skip
        line = one_error_line(result)
        assert "refused the token" in line and server.address in line
        assert result.out == ""
        # The same server takes the right token, and says whose it is.
        with Store.open(server.address, token=good) as store:
            assert store.rater == "alice"
            assert store.count_cases() == 3
        stop(server)


def test_no_token_or_an_empty_one_says_where_the_token_goes(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    make_project(cli, db, tmp_path, 3)
    with Served(db, raters=["alice"]) as server:
        for token in (None, ""):
            with pytest.raises(InvalidInput, match="--token TOKEN or EVALTUI_TOKEN"):
                Store.open(server.address, token=token)
        for args in ([], ["--token", ""]):
            line = one_error_line(cli("--db", server.address, *args, "agreement", "--rubric", "ok"))
            assert "needs the token" in line and "--token" in line and "EVALTUI_TOKEN" in line
        stop(server)


def test_a_reissued_token_retires_the_old_one_and_tokens_are_kept_only_as_sha256(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    make_project(cli, db, tmp_path, 3)
    with Served(db, raters=["alice", "bob"]) as first:
        old_alice, bob = first.tokens["alice"], first.tokens["bob"]
        with Store.open(first.address, token=old_alice) as store:
            assert store.rater == "alice"
        stop(first)

    with Served(db, raters=["alice"]) as second:
        new_alice = second.tokens["alice"]
        assert new_alice not in (old_alice, bob)
        assert next_line(second).startswith("Earlier tokens still valid: bob ")
        with pytest.raises(AccessDenied):
            Store.open(second.address, token=old_alice)
        line = one_error_line(
            cli("--db", second.address, "--token", old_alice, "agreement", "--rubric", "ok")
        )
        assert "refused the token" in line
        with Store.open(second.address, token=new_alice) as store:
            assert store.rater == "alice"
        with Store.open(second.address, token=bob) as store:  # bob's was not re-issued
            assert store.rater == "bob"
        stop(second)

    # Without --rater, serve runs on the tokens already issued.
    with Served(db, raters=[]) as third:
        assert third.tokens == {}
        assert next_line(third).startswith("Earlier tokens still valid: alice, bob ")
        with Store.open(third.address, token=new_alice) as store:
            assert store.rater == "alice"
        stop(third)

    live = {new_alice: "alice", bob: "bob"}
    files = [db, db.with_name(db.name + ".wal")]
    stored = b"".join(path.read_bytes() for path in files if path.exists())
    plain = [token for token in [old_alice, *live] if token.encode() in stored]
    assert plain == [], "tokens stored in plain text"
    hashed = [token for token in live if token_sha256(token).encode() in stored]
    assert hashed == list(live)  # what is there instead: each one's sha256, as hex text
    with duckdb.connect(str(db), read_only=True) as con:
        kept = dict(con.execute("SELECT token_sha256, rater FROM team_tokens").fetchall())
        assert kept == {hashlib.sha256(t.encode()).hexdigest(): r for t, r in live.items()}
        for token in [old_alice, *live, "wrong"]:
            row = con.execute(  # what serve's authentication asks of the file
                "SELECT sha256(?), EXISTS (SELECT 1 FROM team_tokens "
                "WHERE token_sha256 = sha256(?))",
                [token, token],
            )
            in_duckdb, accepted = row.fetchone() or (None, None)
            assert in_duckdb == token_sha256(token) == hashlib.sha256(token.encode()).hexdigest()
            assert accepted is (token in live)


# 3. Localhost unless --host ------------------------------------------------------------


def test_a_server_without_host_is_not_reachable_on_a_non_loopback_address(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    outside = non_loopback_address(socket.AF_INET)
    if outside is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    outside6 = non_loopback_address(socket.AF_INET6)
    make_project(cli, db, tmp_path, 3)

    with Served(db, raters=["alice"]) as local:
        port, token = port_of(local), local.tokens["alice"]
        assert local.address == f"quack:localhost:{port}"
        assert "this machine only" in local.lines[0]
        assert tcp_connects("127.0.0.1", port)  # it is listening...
        assert not tcp_connects(outside, port)  # ...but not there
        if outside6 is not None:
            assert not tcp_connects(outside6, port)
        with pytest.raises(ServerUnreachable, match="nothing answers"):
            Store.open(f"quack:{outside}:{port}", token=token)
        with Store.open(local.address, token=token) as store:
            assert store.rater == "alice"
        stop(local)

    # The control: asked to, the same project is served on that address.
    with Served(db, raters=["alice"], host="0.0.0.0") as wide:
        port = port_of(wide)
        assert wide.address == f"quack:{outside}:{port}"
        assert "reachable from other machines" in wide.lines[0]
        assert any("not encrypted" in line for line in wide.lines)
        assert tcp_connects(outside, port)
        with Store.open(f"quack:{outside}:{port}", token=wide.tokens["alice"]) as store:
            assert store.rater == "alice"
            assert store.count_cases() == 3
        stop(wide)


# 4. Serve itself: how it stops, what it refuses, what a second process is told -----------


def test_one_ctrl_c_stops_serve_even_right_after_it_printed_the_tokens(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    make_project(cli, db, tmp_path, 3)
    for _ in range(3):
        server = Served(db, raters=["alice"]).start()
        process, port = server.process, port_of(server)
        assert process is not None
        server.process = None  # stopped here, not by the helper
        process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail("evaltui serve was still running 10 s after one Ctrl+C")
        assert process.returncode == 0, out + err
        assert "Stopped serving" in out
        assert not tcp_connects("127.0.0.1", port)
    with Store.open(db) as store:  # the file is free again
        assert store.count_cases() == 3


def run_evaltui(*args: str | Path | int, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """evaltui in its own process (serve would block this one if it started)."""
    return subprocess.run(
        [*evaltui_command(), *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_serve_without_a_rater_on_a_project_with_no_tokens_says_to_name_them(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    make_project(cli, db, tmp_path, 3)
    port = free_port()
    done = run_evaltui("serve", db, "--port", port)
    assert done.returncode == 1, done
    assert done.stdout == ""
    assert "--rater NAME" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not tcp_connects("127.0.0.1", port)
    with duckdb.connect(str(db), read_only=True) as con:  # nothing was issued
        assert con.execute("SELECT count(*) FROM team_tokens").fetchone() == (0,)


def test_serve_on_a_missing_file_fails_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.duckdb"
    done = run_evaltui("serve", missing, "--rater", "alice", "--port", free_port())
    assert done.returncode == 1, done
    assert f"no project at {missing}" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not missing.exists()


def test_a_second_process_on_a_served_file_is_told_the_address_to_connect_to(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    make_project(cli, db, tmp_path, 3)
    with Served(db, raters=["alice"]) as server:
        port = port_of(server)
        line = one_error_line(cli("--db", db, "agreement", "--rubric", "ok"))
        assert f"EVALTUI_TOKEN=TOKEN evaltui --db quack:localhost:{port}" in line
        assert "being served by 'evaltui serve'" in line
        # The same from another process, as a rater in another terminal would see it.
        done = run_evaltui("--db", db, "export", "labels", tmp_path / "out.csv")
        assert done.returncode == 1
        assert f"quack:localhost:{port}" in done.stderr
        assert not (tmp_path / "out.csv").exists()
        stop(server)


# 5. Commands over the server give what they give on the file -----------------------------


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return sorted(csv.DictReader(f), key=lambda row: row["label_id"])


def test_agreement_export_and_judge_give_the_same_results_over_the_server_as_on_the_file(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    n = 30
    cases = make_project(cli, db, tmp_path, n)
    import_labels(cli, db, tmp_path, "alice", {c: expected(i) for i, c in enumerate(cases)})
    bob = {c: ("fail" if i % 4 == 0 else "pass") for i, c in enumerate(cases)}
    import_labels(cli, db, tmp_path, "bob", bob)
    agreement = ["agreement", "--rubric", "ok", "--json", "--resamples", "200"]
    report = ["judge", "report", "--rubric", "ok", "--json", "--resamples", "200"]

    with LoopbackServer() as model:
        ok(cli("judge", "set", "--db", db, "--rubric", "ok", "--model", MODEL,
               "--api-base", model.api_base))  # fmt: skip
        with Served(db, raters=["alice"]) as server:
            remote = ["--db", server.address, "--token", server.tokens["alice"]]
            served_agreement = json.loads(ok(cli(*remote, *agreement)).out)
            ok(cli(*remote, "export", "labels", tmp_path / "served.csv", "--rubric", "ok"))
            run = ["judge", "run", "--rubric", "ok", "--cases", "all", "--api-base", model.api_base]
            ran = ok(cli(*remote, *run))
            assert f"{n} verdict(s) stored, 0 error verdict(s)" in ran.out
            assert model.calls == n
            served_report = json.loads(ok(cli(*remote, *report)).out)
            # A second run finds the verdicts stored through the server: no call made.
            again = ok(cli(*remote, *run))
            assert "0 verdict(s) stored" in again.out and model.calls == n
            stop(server)

    file_agreement = json.loads(ok(cli("--db", db, *agreement)).out)
    assert served_agreement == file_agreement
    assert served_agreement != {} and "alice" in json.dumps(served_agreement)

    ok(cli("--db", db, "export", "labels", tmp_path / "file.csv", "--rubric", "ok"))
    served_rows, file_rows = csv_rows(tmp_path / "served.csv"), csv_rows(tmp_path / "file.csv")
    assert (len(served_rows), len(file_rows)) == (2 * n, 2 * n)
    assert served_rows == file_rows

    with duckdb.connect(str(db), read_only=True) as con:
        stored = dict(con.execute("SELECT case_id, value FROM verdicts").fetchall())
    assert stored == {c: expected(i) for i, c in enumerate(cases)}
    assert served_report == json.loads(ok(cli("--db", db, *report)).out)


# 6. Where the token comes from, and who it says you are -------------------------------


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each time the TUI would have opened: the store and settings it was given."""
    from evaltui.ui.app import EvaltuiApp

    opened: list[dict[str, Any]] = []

    def run(app: EvaltuiApp, *args: object, **kwargs: object) -> None:
        opened.append({
            "store_rater": app.store.rater, "rater": app.config.rater,
            "label": app._start_label, "location": app.store.location,
        })  # fmt: skip

    monkeypatch.setattr(EvaltuiApp, "run", run)
    return opened


@pytest.fixture
def served(cli: CLI, db: Path, tmp_path: Path) -> Iterator[Served]:
    make_project(cli, db, tmp_path, 3)
    import_labels(cli, db, tmp_path, "alice", {"c000": "fail", "c001": "pass"})
    import_labels(cli, db, tmp_path, "bob", {"c000": "fail", "c001": "fail"})
    with Served(db, raters=["alice", "bob"]) as server:
        yield server
        stop(server)


def test_evaltui_token_in_the_environment_stands_in_for_the_flag(
    cli: CLI, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = ["--db", served.address, "agreement", "--rubric", "ok", "--json"]
    flagged = json.loads(ok(cli(*command, "--token", served.tokens["alice"])).out)
    monkeypatch.setenv("EVALTUI_TOKEN", served.tokens["alice"])
    assert json.loads(ok(cli(*command)).out) == flagged
    monkeypatch.setenv("EVALTUI_TOKEN", "wrong")
    assert "refused the token" in one_error_line(cli(*command))
    # An explicit --token is the one used.
    assert json.loads(ok(cli(*command, "--token", served.tokens["alice"])).out) == flagged


def test_the_token_names_the_rater_and_label_as_someone_else_is_refused_before_the_tui(
    cli: CLI, served: Served, shown: list[dict[str, Any]], tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('rater = "carol"\n', encoding="utf-8")
    alice = ["--config", config, "--db", served.address, "--token", served.tokens["alice"]]

    line = one_error_line(cli(*alice, "label", "--rubric", "ok", "--rater", "bob"))
    assert "this token belongs to alice" in line and "bob's own token" in line
    assert shown == []  # refused before the screen opened

    ok(cli(*alice, "label", "--rubric", "ok"))
    ok(cli(*alice, "label", "--rubric", "ok", "--rater", "alice"))
    ok(cli("--config", config, "--db", served.address, "--token", served.tokens["bob"]))
    assert [(s["store_rater"], s["rater"], s["label"]) for s in shown] == [
        ("alice", "alice", ("ok", None)),
        ("alice", "alice", ("ok", "alice")),
        ("bob", "bob", None),
    ]
    assert shown[0]["location"] == f"server {served.address} as alice"


# 7. Tokens are issued only once serve holds its port; IPv6 hosts -------------------------


def ipv6_loopback_port() -> int | None:
    """A free TCP port on ::1, or None when this machine has no IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            return int(probe.getsockname()[1])
    except OSError:
        return None


def kept_token_hashes(db: Path) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return dict(con.execute("SELECT token_sha256, rater FROM team_tokens").fetchall())


def test_serve_on_a_port_already_taken_fails_and_retires_no_token(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    make_project(cli, db, tmp_path, 3)
    with Served(db, raters=["alice", "bob"]) as first:
        alice, bob = first.tokens["alice"], first.tokens["bob"]
        stop(first)
    before = kept_token_hashes(db)
    assert before == {token_sha256(alice): "alice", token_sha256(bob): "bob"}

    with socket.create_server(("127.0.0.1", 0)) as taken:  # something else holds the port
        port = int(taken.getsockname()[1])
        done = run_evaltui("serve", db, "--rater", "alice", "--port", port)
    assert done.returncode == 1, done
    assert done.stdout == ""  # no token printed: none was issued
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"evaltui: port {port} is already in use by PID {os.getpid()} ")
    assert "Traceback" not in done.stderr
    assert kept_token_hashes(db) == before  # alice's token was not retired

    with Served(db, raters=[]) as again:
        assert next_line(again).startswith("Earlier tokens still valid: alice, bob ")
        with Store.open(again.address, token=alice) as store:
            assert store.rater == "alice"
            assert store.count_cases() == 3
        stop(again)


def test_serve_on_ipv6_loopback_serves_there_and_a_failure_keeps_the_tokens(
    cli: CLI, db: Path, tmp_path: Path
) -> None:
    port = ipv6_loopback_port()
    if port is None:
        pytest.skip("this machine has no IPv6 loopback")
    make_project(cli, db, tmp_path, 3)
    # `--host ::1` serves: the address is bracketed, and a client given it connects.
    with Served(db, raters=["x"], host="::1", port=port) as served:
        assert served.address == f"quack:[::1]:{port}"
        assert served.lines[0].startswith(f"Serving {db} at quack:[::1]:{port} (this machine only)")
        assert tcp_connects("::1", port)
        token = served.tokens["x"]
        with Store.open(f"quack:[::1]:{port}", token=token) as store:
            assert store.rater == "x"
            assert store.count_cases() == 3
            assert store.location == f"server quack:[::1]:{port} as x"
        stop(served)
    kept = kept_token_hashes(db)
    assert kept == {token_sha256(token): "x"}

    # The same port on ::1 held by something else: a readable failure, x's token kept.
    with socket.create_server(("::1", port), family=socket.AF_INET6) as taken:
        assert taken.getsockname()[1] == port
        done = run_evaltui("serve", db, "--host", "::1", "--rater", "x", "--port", port)
    assert done.returncode == 1, done
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"evaltui: port {port} is already in use by PID {os.getpid()} ")
    assert kept_token_hashes(db) == kept
    with Served(db, raters=[], host="[::1]") as again:  # brackets given by the user work too
        assert again.address.startswith("quack:[::1]:")
        with Store.open(again.address, token=token) as store:
            assert store.rater == "x"
        stop(again)


def test_commands_that_make_or_serve_a_file_refuse_a_server_address(cli: CLI) -> None:
    line = one_error_line(cli("init", "quack:localhost:9494"))
    assert "is a served project" in line and "'init' makes a project file" in line
    line = one_error_line(cli("--db", "quack:localhost:9494", "serve"))
    assert "is a server already; serve a project file" in line
    line = one_error_line(cli("--db", "quack:nowhere:", "agreement", "--rubric", "ok"))
    assert "is not a server address" in line and "quack:HOST:PORT" in line

"""`evaltui serve` in its own process, as a user starts it, for tests and benchmarks.

with Served(db, raters=["alice", "bob"]) as server:
    Store.open(server.address, token=server.tokens["alice"])
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

_COMMAND = re.compile(
    r"^\s+(?P<rater>\S+)\s+EVALTUI_TOKEN=(?P<token>\S+) evaltui --db (?P<address>\S+)$"
)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def evaltui_command() -> list[str]:
    """The evaltui command line of this environment."""
    return [sys.executable, "-m", "evaltui"]


class Served:
    """A running `evaltui serve DB --rater ...`; tokens read from what it printed."""

    def __init__(
        self,
        db: Path,
        *,
        raters: list[str] | tuple[str, ...] = ("alice",),
        port: int | None = None,
        host: str | None = None,
        extra: list[str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.db = db
        self.port = port or free_port()
        self.args = [*evaltui_command(), "serve", str(db), "--port", str(self.port)]
        if host:
            self.args += ["--host", host]
        if raters:
            self.args += ["--rater", *raters]
        self.args += extra or []
        self.timeout = timeout
        self.tokens: dict[str, str] = {}
        self.address = ""
        self.lines: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Served:
        """Start the server and wait until it has printed every token."""
        self.process = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + self.timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                err = self.process.stderr.read() if self.process.stderr else ""
                raise RuntimeError(f"evaltui serve exited: {self.lines} {err}")
            self.lines.append(line.rstrip("\n"))
            if match := _COMMAND.match(line.rstrip("\n")):
                self.tokens[match["rater"]] = match["token"]
                self.address = match["address"]
            if line.startswith("Serving "):
                self.address = self.address or line.split(" at ", 1)[1].split(" ", 1)[0]
            if "Stop with Ctrl+C" in line and not any(
                "--rater" in a for a in self.args
            ):  # nothing more to wait for
                break
            if self.tokens and len(self.tokens) == len(self._raters()):
                break
        return self

    def _raters(self) -> list[str]:
        if "--rater" not in self.args:
            return []
        at = self.args.index("--rater") + 1
        names = []
        while at < len(self.args) and not self.args[at].startswith("--"):
            names.append(self.args[at])
            at += 1
        return list(dict.fromkeys(names))

    def stop(self) -> str:
        """Stop it as Ctrl+C does; return the rest of what it printed."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            out, err = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        self.process = None
        return out + err

    def kill(self) -> None:
        """Kill it without warning (a crash or a pulled plug)."""
        if self.process is not None:
            self.process.kill()
            self.process.communicate()
            self.process = None

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

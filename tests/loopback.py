"""A small OpenAI-compatible chat completions server on 127.0.0.1, for tests and benchmarks.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) for the
OpenAI client inside litellm. Each request is recorded; what it answers is
decided by a `responder`, which tests replace to script rate limits, server
errors, slow answers and malformed verdicts; `hold()` keeps every reply back
until `let_go()`, so a test can have calls in flight from several clients.

Run it on its own (the judge benchmark does, so its CPU does not compete with
the client being measured): `python tests/loopback.py --latency 0.1` prints
the port and serves until killed. `GET /stats` answers `{"requests": N}`, the
number of completion requests so far (it is not counted itself), so a
benchmark can count calls across the process boundary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """What the server sends back for one request."""

    content: str | None = None
    """The assistant message; None sends `body` as is."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering (a slow model, or a timeout)."""
    body: str | None = None
    prompt_tokens: int = 50
    completion_tokens: int = 20


@dataclass
class Request:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt(self) -> str:
        """The text of every message, joined."""
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))


Responder = Callable[[Request, int], Reply]
"""Decides the reply to a request; the int counts earlier requests with the same prompt."""

_MARK = re.compile(r"\[expect:(pass|fail)\]")


def marked_verdict(request: Request, seen: int) -> Reply:
    """Answer as a perfectly consistent judge would, from marks in the prompt.

    Binary: the verdict named by an `[expect:pass]` or `[expect:fail]` mark
    (fail when there is none). Pairwise: the slot whose reply holds `[better]`
    (tie when neither), so a swapped prompt gets the other letter.
    """
    prompt = request.prompt
    a_at, b_at = prompt.find("Reply A:"), prompt.find("Reply B:")
    if a_at >= 0 and b_at > a_at:
        better = prompt.find("[better]", a_at)
        verdict = "tie" if better < 0 else ("A" if better < b_at else "B")
    else:
        marks = _MARK.findall(prompt)
        verdict = marks[-1] if marks else "fail"
    critique = f"checked the reply; it is {verdict}"
    return Reply(json.dumps({"critique": critique, "verdict": verdict}))


def completion_body(reply: Reply, model: str) -> str:
    """A chat.completion JSON body carrying the reply's content."""
    return json.dumps(
        {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }
    )


_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}


class LoopbackServer:
    """The server, run on its own event loop in a daemon thread.

    >>> with LoopbackServer() as server:
    ...     server.api_base.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, responder: Responder = marked_verdict, *, latency: float = 0.0) -> None:
        self.responder = responder
        self.latency = latency
        self.requests: list[Request] = []
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._open = threading.Event()
        self._open.set()
        self.port = 0

    @property
    def api_base(self) -> str:
        """The base URL to give litellm (`openai/` models with `api_base`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def calls(self) -> int:
        """How many completion requests arrived."""
        with self._lock:
            return len(self.requests)

    def hold(self) -> None:
        """Keep every reply back (requests are still received and counted) until `let_go`."""
        self._open.clear()

    def let_go(self) -> None:
        """Send the replies held back, and answer as usual from now on."""
        self._open.set()

    def start(self) -> LoopbackServer:
        """Listen on a free port and serve in the background."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=10)
        return self

    def stop(self) -> None:
        """Stop serving."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                if method == "GET" and path == "/stats":
                    stats = json.dumps({"requests": self.calls}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: %d\r\n\r\n%s" % (len(stats), stats)
                    )
                    await writer.drain()
                    continue
                body = json.loads(raw) if raw else {}
                request = Request(path, headers, body)
                with self._lock:
                    self.requests.append(request)
                    seen = self._seen.get(request.prompt, 0)
                    self._seen[request.prompt] = seen + 1
                reply = self.responder(request, seen)
                while not self._open.is_set():
                    await asyncio.sleep(0.005)
                if reply.delay or self.latency:
                    await asyncio.sleep(reply.delay + self.latency)
                text = reply.body
                if text is None:
                    text = (
                        completion_body(reply, str(body.get("model", "")))
                        if reply.status == 200
                        else json.dumps({"error": {"message": "scripted failure"}})
                    )
                payload = text.encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                writer.write(
                    (
                        f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
                        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
                        f"{extra}\r\n"
                    ).encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def main() -> None:
    """Serve until killed, printing the port on the first line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = LoopbackServer(latency=args.latency).start()
    print(server.port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()

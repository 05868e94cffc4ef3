"""Claiming judge calls, so that runs at once never ask the model for the same verdict.

A run hands its calls to its workers through a `ClaimQueue`, which claims
them in the project a chunk at a time just before they are needed: only the
run whose claim landed asks the model. A call another run holds is waited
for, and the verdict that run stores is the answer. A claim stops holding
when its run releases it (every run releases what it still holds as it ends:
finished, cancelled or failed), or when its run is known to be gone: on a
project file, which one process at a time can open, any claim not made by a
run of this very process; on a served project, one made on this machine by
a process that no longer exists. Only the claims of a run that died on
another machine have to wait for their expiry; a claim of a run still in
progress in this process never expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evaltui.models import Verdict
from evaltui.store import Store
from evaltui.store import claims as stored
from evaltui.store.claims import Attempt, CallState, Claimant, Key
from evaltui.store.verdicts import latest_verdicts

_FILE_CHUNK = 512
_RUNNING: set[str] = set()
"""Run ids of the runs in progress in this process: their claims hold."""


@dataclass(frozen=True)
class Taken:
    """What one look at a chunk of calls found."""

    mine: list[Key]
    """Claimed by this run: ask the model."""
    held: list[Key]
    """Held by another run: wait for its verdict."""
    answered: list[Verdict]
    """Answered by another run since this one planned them."""


class Claims:
    """One run's claims in a project (blocking calls: run them off the event loop)."""

    def __init__(
        self, store: Store, judge_version: str, stored_before: dict[Key, int], ttl: float
    ) -> None:
        self.store = store
        self.judge_version = judge_version
        self.stored_before = stored_before
        """Verdicts each call had when it was planned: one more is another run's answer."""
        self.ttl = ttl
        self.me = Claimant(uuid.uuid4().hex, socket.gethostname(), os.getpid())
        self.held: dict[Key, int] = {}
        """This run's claims and the attempt each was made at."""
        _RUNNING.add(self.me.run_id)

    def take(self, keys: Sequence[Key]) -> Taken:
        """Claim whichever of these calls no other run holds or has answered."""
        found = stored.states(self.store, self.judge_version, keys)
        wanted: dict[Key, Attempt] = {}
        held: list[Key] = []
        answered: list[Key] = []
        for key in keys:
            state = found[key]
            if state.verdicts > self.stored_before.get(key, 0):
                answered.append(key)
            elif state.holder is None:
                wanted[key] = Attempt(0, state.verdicts)
            elif self._free(state):
                wanted[key] = Attempt(state.holder.attempt + 1, state.verdicts)
            else:
                held.append(key)
        won = stored.claim(self.store, self.judge_version, wanted, self.me, self.ttl)
        self.held.update((key, wanted[key].number) for key in won)
        held += [key for key in wanted if key not in won]  # another run claimed it just now
        return Taken(
            mine=[key for key in keys if key in won],
            held=held,
            answered=latest_verdicts(self.store, self.judge_version, answered),
        )

    def _free(self, state: CallState) -> bool:
        holder = state.holder
        assert holder is not None
        if holder.released or state.verdicts > holder.verdicts:
            return True  # given up, or answered since it was claimed
        if holder.claimant in _RUNNING:
            return False  # a run of this process: alive, however long it takes
        if holder.expired or self.store.server is None:
            return True  # on a file, open in this process only, the run has ended
        if holder.host != self.me.host:
            return False
        return holder.pid == self.me.pid or not _process_exists(holder.pid)

    def release(self) -> None:
        """Give up every claim still held."""
        held, self.held = self.held, {}
        stored.release(self.store, self.judge_version, held, self.me)

    def end(self) -> None:
        """The run is over: a claim of its that was not released no longer holds in this process."""
        _RUNNING.discard(self.me.run_id)


def _process_exists(pid: int) -> bool:
    """Whether a process of this machine has this pid (when unsure: yes)."""
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


class ClaimQueue:
    """A run's calls, claimed a chunk at a time just ahead of the workers that ask for them.

    `next()` gives each worker its next claimed call, and None once every
    call is claimed and handed out, or answered by another run. Calls other
    runs hold are looked at again every `poll` seconds until their verdicts
    are stored, or their claims stop holding and this run takes them.

    On a served project a chunk is one call per worker, claimed when half the
    claimed calls are handed out: a claim waits behind at most a chunk and a
    half before it is asked, well within its expiry. On a file no other
    process can hold a claim, so chunks are large and claiming costs next to
    nothing.
    """

    def __init__(
        self,
        claims: Claims,
        keys: Sequence[Key],
        *,
        workers: int,
        poll: float,
        on_answered: Callable[[Verdict], None],
        on_wait: Callable[[int], None],
    ) -> None:
        self.claims = claims
        self.workers = workers
        self.chunk = workers if claims.store.server is not None else max(workers, _FILE_CHUNK)
        self.poll = poll
        self.on_answered = on_answered
        self.on_wait = on_wait
        self.pending = deque(keys)
        self.elsewhere: dict[Key, None] = {}
        """Calls other runs held at the last look: waited for."""
        self.ready: asyncio.Queue[Key | None] = asyncio.Queue()
        self.hungry = asyncio.Event()
        self.stopped = asyncio.Event()
        self.failure: Exception | None = None
        self.task = asyncio.create_task(self._feed())

    async def next(self) -> Key | None:
        """The next call this run claimed, or None when there are no more."""
        if self._low():
            self.hungry.set()
        key = await self.ready.get()
        if key is None:
            self.ready.put_nowait(None)  # for the next worker too
        return key

    async def close(self) -> None:
        """Stop claiming and release every claim this run holds; never raises.

        Call it once the run's verdicts are stored: a call this run claimed is
        then either answered or (a cancelled or failed run) free for others.
        """
        self.stopped.set()
        self.hungry.set()
        try:
            await asyncio.wait([self.task])
            await asyncio.to_thread(self.claims.release)
        except Exception:  # a lost server: the claims expire instead
            pass
        finally:
            self.claims.end()

    def check(self) -> None:
        """Raise what stopped the claiming, if anything did."""
        if self.failure is not None:
            raise self.failure

    def _low(self) -> bool:
        return self.ready.qsize() <= self.workers // 2

    async def _feed(self) -> None:
        try:
            while not self.stopped.is_set():
                if not self.pending:
                    if not self.elsewhere:
                        return
                    with contextlib.suppress(TimeoutError):  # woken early only to stop
                        await asyncio.wait_for(self.stopped.wait(), self.poll)
                    self.pending.extend(self.elsewhere)  # look at them again
                    continue
                size = self.chunk if self.ready.qsize() else self.workers  # the first ones soon
                batch = [self.pending.popleft() for _ in range(min(size, len(self.pending)))]
                taken = await asyncio.to_thread(self.claims.take, batch)
                for key in taken.mine:
                    self.ready.put_nowait(key)
                before = len(self.elsewhere)
                for key in batch:
                    self.elsewhere.pop(key, None)
                self.elsewhere.update(dict.fromkeys(taken.held))
                for verdict in taken.answered:
                    self.on_answered(verdict)
                if len(self.elsewhere) != before:
                    self.on_wait(len(self.elsewhere))
                while self.pending and not self.stopped.is_set() and not self._low():
                    self.hungry.clear()
                    await self.hungry.wait()
        except Exception as error:  # a storage error: the run stops, then raises it
            self.failure = error
        finally:
            self.ready.put_nowait(None)

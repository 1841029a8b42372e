"""The background sampler: the only module with timers.

This departs on purpose from the Prometheus exporter guide's advice to collect
at scrape time (https://prometheus.io/docs/instrumenting/writing_exporters/#scheduling):

- one snapshot feeds two protocols (the /metrics exposition and the gRPC
  shim), and both must agree;
- scrape latency stays flat whatever the sources cost, because a scrape only
  returns bytes rendered from the last sample (rendered once, for the first
  scrape that asks: at a 15 s scrape of a 1 s sampler, 14 of 15 snapshots are
  never read, and rendering is half of a cycle's cost; when the last two scrapes
  show a cadence, the snapshot the next one will find is rendered as it is
  published, so that scrape waits for no render);
- CPU usage is a windowed quantity (the busy share between two reads of
  /proc/stat), so something must read on a clock anyway.

The price: values are up to one interval old. ``sysmon_last_sample_timestamp_seconds``
says how old, and samples never carry timestamps, so Prometheus' staleness
handling is unchanged.

Each :class:`Job` runs on its own interval (CPU every second, cgroups every
few); all steps run one at a time on a single worker thread, so a step always
starts from the snapshot the previous step produced and the event loop never
waits on file I/O. The worker keeps the ticks itself (it sleeps until the next
job is due), so the event loop wakes only for requests and a busy loop never
delays a sample. A job's slow part that needs no snapshot (the cgroup walk)
runs before its step on a thread of its own, so it never holds up the CPU job.
Work that makes no snapshot but feeds the sources (the vm source's discovery)
is a :class:`Chore`: it runs on a thread of its own, which keeps its ticks, and publishes an
immutable result that the steps read, so no step carries its cost.
A step that overruns its interval skips the ticks it missed instead of
letting them pile up. A snapshot is rendered on a thread of its own (so a
scrape never waits for a step in progress), one render at a time. Sources that can
hang run under a deadline on threads of their own (snapshot.Deadline), so a
hung read fails its source instead of stopping the worker; :meth:`Sampler.stale` says when a job has
nevertheless gone without a good sample for ``STALE_INTERVALS`` intervals.

What no scrape will see is not read. The scrape cadence (the last two first
scrapes' gap) says which ticks a scrape is expected to see: at the others the
CPU job runs its ``light`` step (only what usage's window needs) and a
``skip_unseen`` job (cgroups) does not run. Once the cadence is known, a
``pause_unseen`` CPU job runs only the ticks a scrape is expected to see and
the light tick before each (whose /proc/stat read opens the window the seen
one closes); it rests at the others. A resting job is not woken for its rested
ticks: the worker sleeps to the next tick it will run, and a first scrape that
changes the cadence has it look again at its next tick. A scrape that comes unexpected has
the CPU job's ``refresh`` (its whole step, when it rested) and the skip_unseen
jobs run for it first, and waits for them (one run however many scrapes ask;
at most one interval). The app builds its jobs so only while scrapes are the
snapshot's only readers.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Generic, TypeVar

from exporter.snapshot import Snapshot

log = logging.getLogger("exporter.sampler")

R = TypeVar("R")

# /-/ready turns 503 when a job's last good sample is older than this many of its intervals.
STALE_INTERVALS = 3

# How far from the time the cadence gives a scrape may come and still see the tick it was expected to see
# (Sampler._margin), at most.
MARGIN_SECONDS = 0.05

# A job that rests sleeps through at most this many of its ticks before it looks at the cadence again.
MAX_REST_TICKS = 600


Step = Callable[[Snapshot | None], Snapshot]


@dataclass(frozen=True)
class Job:
    """``step`` runs on the worker the jobs share.

    With ``prepare``, the job's slow part that needs no snapshot (the cgroup walk)
    runs first on a thread of the job's own and returns the step to run on the
    worker instead of ``step``: a long walk never delays the other jobs' ticks.
    """

    name: str
    interval_seconds: float
    step: Step
    prepare: Callable[[], Step] | None = None
    # With both: ``light`` is the step of a tick whose snapshot no consumer is expected to see (it
    # reads only what a window needs), and ``refresh`` brings a snapshot's other values up to now for
    # a scrape that came unexpected (Snapshot.instants_behind).
    light: Step | None = None
    refresh: Step | None = None
    # A job whose values are all instant (cgroups): a tick no scrape is expected to see is skipped, and a
    # scrape that finds its last run older than its interval and the slack (Sampler._behind) has it run first.
    skip_unseen: bool = False
    # With light and refresh: once the scrape cadence is known, a tick whose snapshot no scrape is expected to
    # see, nor the next tick's, does not run at all (a window needs only the tick before the one a scrape
    # sees), and a scrape that finds the last run older than its interval and the slack has ``step`` run first.
    pause_unseen: bool = False

    def __post_init__(self) -> None:
        if self.pause_unseen and (self.light is None or self.refresh is None):
            raise ValueError(f"job {self.name}: pause_unseen needs light (the tick before a seen one) and refresh")


@dataclass(frozen=True)
class _Refresh(Generic[R]):
    """A scrape's request for ``job``'s refresh (or, for a skip_unseen job, its run) now; ``done`` has the
    snapshot it published (None when it failed)."""

    job: Job
    done: Future[_Published[R] | None]


class _Replan:
    """The cadence changed: a job sleeping through its rested ticks looks at it again at its next tick."""


_REPLAN = _Replan()


@dataclass(frozen=True)
class Chore:
    """``run`` every ``interval_seconds`` on a thread of the chore's own, never on the worker.

    It makes no snapshot: what it finds reaches the steps only through an
    immutable value it publishes (``VmWatch.rescan``'s Discovery). A chore
    that overruns skips the ticks it missed, as a job does.
    """

    name: str
    interval_seconds: float
    run: Callable[[], object]
    # Once the scrape cadence is known, a run whose result no scrape is expected to have does not run: one
    # is due only when a scrape is expected before the next run and the CPU job's tick after it (whose
    # whole step reads what the last run published).
    skip_unseen: bool = False


def _next_tick(start: float, tick: int, interval: float, now: float) -> tuple[int, int]:
    """The tick to sleep until, for work begun at ``start`` whose run for ``tick`` ended at ``now``,
    and how many ticks it overran (skipped, not piled up)."""
    due = math.floor((now - start) / interval) + 1
    return due, max(due - tick - 1, 0)


class _Published(Generic[R]):
    """A snapshot and, once a scrape asked for it, its rendering (one render, however many scrapes ask)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.rendering: asyncio.Future[R] | None = None
        self.early: Future[R] | None = None  # its render, begun before any scrape asked (a scrape is expected)
        self.asked = False  # a scrape has asked for it


class Sampler(Generic[R]):
    """Runs jobs in the background; ``latest()`` and ``rendered()`` are the only way out.

    The ticks are kept by plain threads, not by the event loop: the worker sleeps until its next
    job is due (or a prepared step arrives) and each chore sleeps on its own thread, so a tick
    costs one thread wake-up and the event loop wakes only for requests. The hand-over from the
    loop to an executor and back cost about half a millisecond of CPU a tick here, more than
    reading and parsing /proc/stat.
    """

    def __init__(self, jobs: Sequence[Job], render: Callable[[Snapshot], R], chores: Sequence[Chore] = ()) -> None:
        if not jobs:
            raise ValueError("a sampler needs at least one job")
        self._jobs = tuple(jobs)
        self._chores = tuple(chores)
        self._render = render
        self._rendering_lock = threading.Lock()  # the renderer keeps state between calls: one at a time
        self.renders = 0  # snapshots rendered so far
        self._current: _Published[R] | None = None
        self._rendering: ThreadPoolExecutor | None = None
        self._preparing: ThreadPoolExecutor | None = None
        # Prepared steps (or what their prepare raised) for the worker; None from stop().
        self._queue: queue.SimpleQueue[tuple[Job, Step | Exception] | _Refresh[R] | _Replan | None] = (
            queue.SimpleQueue()
        )
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop start() ran on: ready is set there
        self._ready_sent = False
        self.skipped_ticks = {job.name: 0 for job in jobs}
        self.ready = asyncio.Event()
        self._last_good: dict[str, float] = {}  # job or chore -> monotonic time its last run ended without an error
        # Monotonic times of the last two first scrapes of a snapshot (one tuple: the worker reads it whole).
        self._asked: tuple[float, ...] = ()
        self._refresher = next((j for j in self._jobs if j.light is not None and j.refresh is not None), None)
        self._unseen = tuple(j for j in self._jobs if j.skip_unseen)
        # The refresh (or skip_unseen run) the worker was asked for, by job: one however many scrapes ask
        self._refreshing: dict[str, Future[_Published[R] | None]] = {}
        self._ran_at: dict[str, float] = {}  # job -> monotonic time its last run ended

    def latest(self) -> Snapshot | None:
        current = self._current
        return None if current is None else current.snapshot

    async def rendered(self) -> R | None:
        """The latest snapshot rendered; the first caller for a snapshot has it rendered on the render thread."""
        current = self._current
        if current is None:
            return None
        now = time.monotonic()
        behind = [j for j in self._unseen if self._behind(j, now)]
        refresher = self._refresher
        if refresher is not None and (
            current.snapshot.instants_behind() or (refresher.pause_unseen and self._behind(refresher, now))
        ):
            # first: the worker runs it at once, so a skip_unseen run's snapshot (served) already has it
            behind.insert(0, refresher)
        if behind:
            current = await self._refreshed(current, behind)
        if not current.asked:
            current.asked = True
            before = self._cadence()
            self._asked = (*self._asked[-1:], now)
            after = self._cadence()
            if self._threads and before is not None and (after is None or abs(after[1] - before[1]) > MARGIN_SECONDS):
                self._queue.put(_REPLAN)  # a job resting on the old cadence may sleep past this one's next scrape
        if current.rendering is None:
            early, current.early = current.early, None
            current.rendering = (
                asyncio.wrap_future(early)
                if early is not None
                else asyncio.ensure_future(self._render_on_thread(current.snapshot))
            )
        rendering = current.rendering
        try:
            # shielded: a scrape whose client went away does not cancel the render the others wait for
            return await asyncio.shield(rendering)
        except Exception:
            if current.rendering is rendering:
                current.rendering = None  # the next scrape tries again
            raise

    async def _refreshed(self, current: _Published[R], jobs: Sequence[Job]) -> _Published[R]:
        """The latest snapshot once the worker ran ``jobs``' refreshes (the CPU job's instant sources read
        now; a skip_unseen job's run), one each however many scrapes ask. A scrape waits for them at most
        one interval of the longest, then has what the last samples had."""
        if not self._threads:  # not started (or stopped): on the caller's thread
            for job in jobs:
                if job.refresh is not None:
                    current = self._refresh(job) or current
            return current
        waits = []
        for job in jobs:
            pending = self._refreshing.get(job.name)
            if pending is None or pending.done():
                pending = self._refreshing[job.name] = Future()
                self._queue.put(_Refresh(job, pending))
            waits.append(asyncio.wrap_future(pending))
        timeout = max(job.interval_seconds for job in jobs)
        try:
            # shielded: a scrape whose client went away does not cancel the refreshes the others wait for
            done = await asyncio.wait_for(asyncio.shield(asyncio.gather(*waits)), timeout)
        except TimeoutError:
            log.debug("no refresh within %gs; this scrape has the last samples' values", timeout)
            return self._current or current
        return next((p for p in reversed(done) if p is not None), current)

    async def _render_on_thread(self, snap: Snapshot) -> R:
        executor = self._rendering
        if executor is None:  # not started (or stopped): on the caller's thread
            return self._render_one(snap)
        return await asyncio.get_running_loop().run_in_executor(executor, self._render_one, snap)

    def _render_one(self, snap: Snapshot) -> R:
        with self._rendering_lock:
            self.renders += 1
            return self._render(snap)

    def _cadence(self) -> tuple[float, float] | None:
        """The last first scrape and the gap before it (Prometheus scrapes a target at a fixed phase of its
        interval); None until two first scrapes a gap apart are known."""
        asked = self._asked
        if len(asked) < 2:
            return None
        previous, last = asked
        return (last, last - previous) if last > previous else None

    def _next_scrape(self, since: float) -> float | None:
        """When the first scrape after the last one is expected at or after ``since``: the cadence carried on;
        None while it is unknown."""
        cadence = self._cadence()
        if cadence is None:
            return None
        last, gap = cadence
        return last + max(1, math.ceil((since - last) / gap)) * gap

    def _scrape_expected(self, since: float, until: float) -> bool:
        """Whether a scrape is expected in [since, until)."""
        scrape = self._next_scrape(since)
        return scrape is not None and scrape < until

    def _render_early(self, published: _Published[R], next_publication: float) -> None:
        """On the worker, as ``published`` is published: render it now if the next scrape is expected before the
        next snapshot, so that scrape finds it rendered and waits for no render. A scrape that comes
        at another time has the snapshot rendered as it asks."""
        rendering = self._rendering
        if rendering is not None and self._scrape_expected(time.monotonic(), next_publication):
            published.early = rendering.submit(self._render_one, published.snapshot)

    def stale(self) -> str:
        """Why sampling is stale ("" when every job and chore ran well within STALE_INTERVALS intervals)."""
        if not self._threads:
            return ""
        now = time.monotonic()
        late = [
            f"job {job.name} has had no good sample for {now - self._last_good[job.name]:.1f}s "
            f"(interval {job.interval_seconds:g}s)"
            for job in self._jobs
            if now - self._last_good[job.name] > STALE_INTERVALS * job.interval_seconds
        ]
        late += [
            f"chore {chore.name} has not run well for {now - self._last_good[chore.name]:.1f}s "
            f"(interval {chore.interval_seconds:g}s)"
            for chore in self._chores
            if now - self._last_good[chore.name] > STALE_INTERVALS * chore.interval_seconds
        ]
        return "; ".join(late)

    # --- on the worker ---

    def _run_step(self, job: Job, step: Step) -> Snapshot | None:
        """One step on the worker (steps never overlap); None when it failed (logged)."""
        try:
            current = self._current
            snap = step(None if current is None else current.snapshot)
            # The ticks each job skipped so far ride on the snapshot (sysmon_sampler_skipped_ticks_total);
            # a step keeps the last snapshot's, so the copy is made only when a tick was skipped since.
            if snap.skipped_ticks == self.skipped_ticks:
                return snap
            return replace(snap, skipped_ticks=dict(self.skipped_ticks))
        except Exception:
            log.exception("sampling job %s failed; it will run again at its next tick", job.name)
            return None

    @staticmethod
    def _slack(job: Job) -> float:
        """How late a run of ``job`` may end and still not be behind: half an interval, at most a second."""
        return min(job.interval_seconds / 2, 1.0)

    @staticmethod
    def _margin(job: Job) -> float:
        """How far from the time the cadence gives a scrape may come and still see the tick it was expected to
        see: half an interval, at most 0.05 s. Prometheus keeps a target's scrapes at a fixed phase to within
        milliseconds, and the ticks keep theirs; a scrape that comes further off has what one that came
        unexpected has (a refresh, or the snapshot of the tick before if that is not behind). A tick boundary
        within the margin of an expected scrape has both ticks read for it: with half of a 1 s interval as the
        margin, that was every scrape."""
        return min(job.interval_seconds / 2, MARGIN_SECONDS)

    def _seen(self, job: Job, ticks: int = 1) -> bool:
        """Whether a scrape is expected to see the snapshot of ``job``'s tick now (or, with ``ticks`` 2, that of
        the tick after it): before the next tick (the one after), give or take the margin."""
        now, margin = time.monotonic(), self._margin(job)
        return self._scrape_expected(now - margin, now + ticks * job.interval_seconds + margin)

    def _behind(self, job: Job, now: float) -> bool:
        """Whether ``job`` has not run yet (a first cgroup walk under way as the first CPU sample is out) or its
        last run ended longer ago than an interval and the slack (a skipped or paused tick, not one a little late)."""
        ran = self._ran_at.get(job.name)
        return ran is None or now - ran > job.interval_seconds + self._slack(job)

    def _needed_tick(self, job: Job, start: float, tick: int) -> int:
        """The first of the ticks from ``tick`` on (of a worker begun at ``start``) at which ``job`` does not rest:
        whose snapshot a scrape is expected to see (a skip_unseen job) or the next tick's (a pause_unseen one,
        which runs light there), as :meth:`_seen` has it then; ``tick`` itself while the cadence is unknown,
        at most MAX_REST_TICKS on."""
        interval, margin = job.interval_seconds, self._margin(job)
        scrape = self._next_scrape(start + tick * interval - margin)  # the first expected from that tick on
        if scrape is None:
            return tick
        seen_from = scrape - (2 if job.pause_unseen else 1) * interval - margin  # a tick after this sees it
        return min(max(math.floor((seen_from - start) / interval) + 1, tick), tick + MAX_REST_TICKS)

    def _tick_step(self, job: Job) -> Step | None:
        """The step for ``job``'s tick: its light one unless a scrape is expected to see this tick's snapshot;
        none for a pause_unseen job when the cadence is known and no scrape is expected to see the next one's."""
        if job.light is None or self._seen(job):
            return job.step
        if job.pause_unseen and self._cadence() is not None and not self._seen(job, ticks=2):
            return None
        return job.light

    def _refresh(self, job: Job) -> _Published[R] | None:
        """On the worker: the latest snapshot with its instant sources read now (as it is when a step since
        read them), or for a paused job its whole step run now, published; None when it failed (logged)."""
        current = self._current
        if job.refresh is None or current is None:
            return current
        if job.pause_unseen and self._behind(job, time.monotonic()):
            step = job.step
        elif current.snapshot.instants_behind():
            step = job.refresh
        else:
            return current
        snap = self._run_step(job, step)
        if step is job.step:
            self._ran_at[job.name] = time.monotonic()
        if snap is None:
            return None
        return self._publish(job, snap, None)

    def _publish(self, job: Job, snap: Snapshot, next_publication: float | None) -> _Published[R]:
        """``snap`` as the latest snapshot; its early render (if any) is begun before a scrape can see it.
        A refresh (``next_publication`` None) is published for a scrape already waiting: no early render."""
        published = _Published[R](snap)
        if next_publication is not None:
            self._render_early(published, next_publication)
        self._current = published
        self._last_good[job.name] = time.monotonic()
        if not self._ready_sent and self._loop is not None:
            self._ready_sent = True
            self._loop.call_soon_threadsafe(self.ready.set)
        return published

    def _prepare(self, job: Job, prepare: Callable[[], Step]) -> None:
        """On the job's prepare thread: its slow part, whose step (or error) goes to the worker's queue."""
        try:
            step: Step | Exception = prepare()
        except Exception as e:
            step = e
        self._queue.put((job, step))

    def _work(self) -> None:
        """The worker: each job's step at its ticks, prepared steps as they arrive, until stop()."""
        start = time.monotonic()
        ticks = dict.fromkeys((job.name for job in self._jobs), 0)
        due = dict.fromkeys(ticks, start)
        preparing: set[str] = set()
        asked: dict[str, list[Future[_Published[R] | None]]] = {}  # skip_unseen job -> refreshes waiting for its run

        def ended(job: Job, snap: Snapshot | None, ran: bool = True) -> None:
            now = time.monotonic()
            ticks[job.name], skipped = _next_tick(start, ticks[job.name], job.interval_seconds, now)
            due[job.name] = start + ticks[job.name] * job.interval_seconds
            if skipped:
                self.skipped_ticks[job.name] += skipped
                log.debug("sampling job %s overran its interval and skipped %d ticks", job.name, skipped)
            published = None
            if snap is not None:
                published = self._publish(job, snap, min(t for name, t in due.items() if name not in preparing))
            elif not ran:
                # A tick no scrape was expected to see: the job sleeps through those that follow it up to the
                # next it runs (a wake-up costs ~0.1 ms of CPU here). Nothing failed at any of them.
                ticks[job.name] = self._needed_tick(job, start, ticks[job.name])
                due[job.name] = start + ticks[job.name] * job.interval_seconds
                self._last_good[job.name] = max(now, due[job.name] - job.interval_seconds)
            if ran:
                self._ran_at[job.name] = now
                for waiting in asked.pop(job.name, ()):
                    waiting.set_result(published)

        while not self._stopping.is_set():
            for job in self._jobs:
                if job.name in preparing or due[job.name] > time.monotonic():
                    continue
                if job.skip_unseen and job.name in self._ran_at and job.name not in asked and not self._seen(job):
                    ended(job, None, ran=False)
                    continue
                if job.prepare is None:
                    step = self._tick_step(job)
                    if step is None:
                        ended(job, None, ran=False)
                    else:
                        ended(job, self._run_step(job, step))
                else:
                    assert self._preparing is not None
                    preparing.add(job.name)
                    self._preparing.submit(self._prepare, job, job.prepare)
            waiting = [due[name] for name in due if name not in preparing]
            timeout = (min(waiting) - time.monotonic()) if waiting else None
            if timeout is not None and timeout <= 0:
                continue
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                continue
            if item is None:  # stop()
                return
            if isinstance(item, _Replan):  # resting jobs look at the new cadence at their next tick
                now = time.monotonic()
                for job in self._jobs:
                    following = math.floor((now - start) / job.interval_seconds) + 1
                    if job.name not in preparing and ticks[job.name] > following:
                        ticks[job.name] = following
                        due[job.name] = start + following * job.interval_seconds
                        self._last_good[job.name] = min(self._last_good[job.name], now)
                continue
            if isinstance(item, _Refresh):
                if item.job.skip_unseen:  # its run now (or the one under way)
                    asked.setdefault(item.job.name, []).append(item.done)
                    if item.job.name not in preparing:
                        due[item.job.name] = time.monotonic()
                else:
                    item.done.set_result(self._refresh(item.job))
                continue
            job, prepared = item
            preparing.discard(job.name)
            if isinstance(prepared, Exception):
                log.error(
                    "sampling job %s failed; it will run again at its next tick",
                    job.name,
                    exc_info=(type(prepared), prepared, prepared.__traceback__),
                )
                ended(job, None)
            else:
                ended(job, self._run_step(job, prepared))

    def _unseen_run(self, chore: Chore, now: float) -> bool:
        """Whether a skip_unseen ``chore``'s run at ``now`` would publish what no scrape is expected to have:
        the cadence is known and no scrape is expected before its next run and the CPU job's tick after."""
        if not chore.skip_unseen or self._cadence() is None:
            return False
        reader = self._refresher.interval_seconds if self._refresher is not None else 0.0
        return not self._scrape_expected(now, now + chore.interval_seconds + reader)

    def _chore_loop(self, chore: Chore) -> None:
        """A chore's own thread: ``run`` at its ticks; a run that overruns skips the ticks it missed."""
        start = time.monotonic()
        tick = 0
        while True:
            if self._unseen_run(chore, time.monotonic()):
                self._last_good[chore.name] = time.monotonic()  # a run no scrape would have: nothing failed
            else:
                try:
                    chore.run()
                    self._last_good[chore.name] = time.monotonic()
                except Exception:
                    log.exception("chore %s failed; it will run again at its next tick", chore.name)
            now = time.monotonic()
            tick, skipped = _next_tick(start, tick, chore.interval_seconds, now)
            if skipped:
                log.debug("chore %s overran its interval and skipped %d ticks", chore.name, skipped)
            if self._stopping.wait(start + tick * chore.interval_seconds - now):
                return

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready_sent = False
        self._stopping.clear()
        self._rendering = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sampler-render")
        preparing = sum(job.prepare is not None for job in self._jobs)
        if preparing:
            self._preparing = ThreadPoolExecutor(max_workers=preparing, thread_name_prefix="sampler-prepare")
        now = time.monotonic()
        self._last_good = {name: now for name in [j.name for j in self._jobs] + [c.name for c in self._chores]}
        # Daemon threads: a step or chore stuck in a read never holds up the process's exit.
        # Chores first: the first discovery is under way when the first step runs.
        self._threads = [
            threading.Thread(target=self._chore_loop, args=(c,), name=f"sampler-chore-{c.name}", daemon=True)
            for c in self._chores
        ]
        self._threads.append(threading.Thread(target=self._work, name="sampler", daemon=True))
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        self._queue.put(None)
        threads, self._threads = self._threads, []
        loop = asyncio.get_running_loop()
        # Lets a step or chore that is already reading finish (milliseconds); none starts after this.
        for thread in threads:
            await loop.run_in_executor(None, thread.join)
        rendering, self._rendering = self._rendering, None  # renders from now on run on the caller's thread
        if rendering is not None:
            await loop.run_in_executor(None, partial(rendering.shutdown, wait=True, cancel_futures=True))
        if self._preparing is not None:
            await loop.run_in_executor(None, partial(self._preparing.shutdown, wait=True, cancel_futures=True))
            self._preparing = None
        while not self._queue.empty():  # a step prepared while stopping: dropped
            self._queue.get_nowait()

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import pytest

from exporter.sampler import Chore, Job, Sampler
from exporter.snapshot import Snapshot


class Recorder:
    """A step that records when it ran; optionally slow or failing."""

    def __init__(self, seconds: float = 0.0, fail_on: frozenset[int] = frozenset()) -> None:
        self.seconds, self.fail_on = seconds, fail_on
        self.spans: list[tuple[float, float]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, previous: Snapshot | None) -> Snapshot:
        start = time.monotonic()
        self.threads.add(threading.current_thread().name)
        n = len(self.spans)
        time.sleep(self.seconds)
        self.spans.append((start, time.monotonic()))
        if n in self.fail_on:
            raise RuntimeError("boom")
        seq = (previous.timestamp_seconds if previous else 0) + 1
        return Snapshot(timestamp_seconds=seq)


async def wait_for_steps(rec: Recorder, n: int) -> None:
    while len(rec.spans) < n:
        await asyncio.sleep(0.01)


async def test_overrunning_step_skips_ticks_instead_of_piling_up():
    rec = Recorder(seconds=0.12)
    sampler = Sampler([Job("slow", 0.05, rec)], lambda snap: snap.timestamp_seconds)
    await sampler.start()
    await asyncio.wait_for(wait_for_steps(rec, 4), 10)
    await sampler.stop()
    assert sampler.skipped_ticks["slow"] >= 3
    latest = sampler.latest()  # each snapshot carries the skips counted before its step
    assert latest is not None and 1 <= latest.skipped_ticks["slow"] <= sampler.skipped_ticks["slow"]
    for (_, end), (start, _) in zip(rec.spans, rec.spans[1:], strict=False):
        assert start >= end  # never two at once


async def test_jobs_share_one_worker_and_each_step_sees_the_last_snapshot():
    a, b = Recorder(0.01), Recorder(0.01)
    sampler = Sampler([Job("a", 0.03, a), Job("b", 0.05, b)], lambda snap: snap.timestamp_seconds)
    await sampler.start()
    await asyncio.wait_for(asyncio.gather(wait_for_steps(a, 3), wait_for_steps(b, 3)), 10)
    await sampler.stop()
    assert len(a.threads | b.threads) == 1
    snap = sampler.latest()
    assert snap is not None
    # every step added one to the snapshot it was given: none was lost between jobs
    assert snap.timestamp_seconds == len(a.spans) + len(b.spans)
    assert await sampler.rendered() == snap.timestamp_seconds


async def test_a_failing_step_is_logged_and_sampling_goes_on(caplog):
    rec = Recorder(fail_on=frozenset({0}))
    sampler = Sampler([Job("flaky", 0.02, rec)], lambda snap: snap)
    await sampler.start()
    await asyncio.wait_for(sampler.ready.wait(), 10)
    await sampler.stop()
    assert len(rec.spans) >= 2
    assert "sampling job flaky failed" in caplog.text


async def test_a_jobs_slow_prepare_does_not_hold_up_the_other_jobs():
    fast = Recorder()
    walking = threading.Event()
    release = threading.Event()

    def prepare():  # the slow part (a cgroup walk), blocked until the fast job has sampled five times
        walking.set()
        release.wait(10)
        return lambda previous: previous or Snapshot()

    sampler = Sampler([Job("fast", 0.02, fast), Job("slow", 0.02, Recorder(), prepare=prepare)], lambda snap: snap)
    await sampler.start()
    try:
        await asyncio.wait_for(asyncio.to_thread(walking.wait, 10), 10)
        before = len(fast.spans)
        await asyncio.wait_for(wait_for_steps(fast, before + 5), 10)
    finally:
        release.set()
        await sampler.stop()


async def test_a_chore_runs_on_its_own_thread_and_a_blocked_one_holds_up_no_step(caplog):
    step = Recorder()
    runs: list[str] = []
    running = threading.Event()
    release = threading.Event()

    def chore() -> None:  # a discovery: fails once, then blocks until the job has stepped five more times
        runs.append(threading.current_thread().name)
        if len(runs) == 1:
            raise RuntimeError("boom")
        running.set()
        release.wait(10)

    sampler = Sampler([Job("cpu", 0.02, step)], lambda snap: snap, [Chore("discovery", 0.02, chore)])
    await sampler.start()
    try:
        await asyncio.wait_for(asyncio.to_thread(running.wait, 10), 10)
        before = len(step.spans)
        await asyncio.wait_for(wait_for_steps(step, before + 5), 10)
        while not sampler.stale():  # three intervals without a run that ended
            await asyncio.sleep(0.01)
        assert sampler.stale().startswith("chore discovery has not run well for ")
    finally:
        release.set()
        await sampler.stop()
    assert len(runs) >= 2 and not set(runs) & step.threads
    assert "chore discovery failed" in caplog.text
    assert sampler.skipped_ticks == {"cpu": sampler.skipped_ticks["cpu"]}  # chores are no job's ticks


async def test_a_skip_unseen_chore_runs_only_before_the_scrapes_a_regular_scraper_makes():
    runs: list[float] = []
    cpu = Instants(0.05, pause=True)
    discovery = Chore("discovery", 0.1, lambda: runs.append(time.monotonic()), skip_unseen=True)
    sampler = Sampler([cpu.job], lambda snap: snap, [discovery])
    await sampler.start()
    try:
        await asyncio.wait_for(_until(lambda: len(runs) >= 3), 10)  # no cadence yet: every tick runs
        asked: list[float] = []
        async for n in _scraper(sampler, 10, 0.5):  # five of its ticks a scrape
            if n == 2:  # the cadence is known
                before = len(runs)
            asked.append(time.monotonic())
            await sampler.rendered()
        await asyncio.sleep(0.3)  # its ticks go on between scrapes, skipped: no failure
        assert sampler.stale() == ""
    finally:
        await sampler.stop()
    assert len(runs) - before <= 2 * 8  # eight scrapes since: one run before each, or two (not five)
    # each of those scrapes had a run within the chore's interval and the CPU job's before it
    assert all(any(0 <= a - r < 0.1 + 0.05 + 0.05 for r in runs) for a in asked[3:])


class CountingRender:
    """A render that records each snapshot it rendered and the thread it ran on."""

    def __init__(self) -> None:
        self.rendered: list[float] = []
        self.threads: set[str] = set()

    def __call__(self, snap: Snapshot) -> float:
        self.threads.add(threading.current_thread().name)
        self.rendered.append(snap.timestamp_seconds)
        return snap.timestamp_seconds


async def test_no_render_happens_for_a_snapshot_nobody_asked_for():
    rec, render = Recorder(), CountingRender()
    sampler = Sampler([Job("cpu", 0.01, rec)], render)
    await sampler.start()
    try:
        await asyncio.wait_for(wait_for_steps(rec, 5), 10)
        assert render.rendered == [] and sampler.renders == 0
        value = await sampler.rendered()
        latest = sampler.latest()
        assert value is not None and latest is not None and value <= latest.timestamp_seconds
        assert render.rendered == [value]  # the snapshot asked for, and only it
    finally:
        await sampler.stop()
    assert render.threads.isdisjoint(rec.threads)  # never on the worker: a step in progress holds up no scrape


async def test_one_render_per_snapshot_however_many_ask_at_once():
    go = threading.Semaphore(0)
    count = 0

    def step(previous: Snapshot | None) -> Snapshot:
        nonlocal count
        if count:
            go.acquire()  # the worker stays in the next step until the test lets it finish
        count += 1
        return Snapshot(timestamp_seconds=count)

    render = CountingRender()
    sampler = Sampler([Job("cpu", 0.01, step)], render)
    await sampler.start()
    try:
        await asyncio.wait_for(sampler.ready.wait(), 10)
        assert await asyncio.gather(*(sampler.rendered() for _ in range(5))) == [1] * 5
        assert await sampler.rendered() == 1
        assert render.rendered == [1]  # rendered while the worker was held in the next step
        go.release()
        while (latest := sampler.latest()) is None or latest.timestamp_seconds < 2:
            await asyncio.sleep(0.01)
        assert await asyncio.gather(*(sampler.rendered() for _ in range(3))) == [2] * 3
        assert render.rendered == [1, 2]
    finally:
        go.release()
        go.release()
        await sampler.stop()


async def test_a_failed_render_fails_that_scrape_and_the_next_one_renders_again():
    calls = []

    def render(snap: Snapshot) -> float:
        calls.append(snap.timestamp_seconds)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return snap.timestamp_seconds

    sampler = Sampler([Job("cpu", 60, lambda prev: Snapshot(timestamp_seconds=7))], render)
    await sampler.start()
    try:
        await asyncio.wait_for(sampler.ready.wait(), 10)
        try:
            await sampler.rendered()
        except RuntimeError as e:
            assert str(e) == "boom"
        else:
            raise AssertionError("the render's error did not reach the scrape")
        assert await sampler.rendered() == 7
        assert calls == [7, 7]
    finally:
        await sampler.stop()


async def test_ticks_are_kept_off_the_event_loop_so_a_blocked_loop_does_not_stop_sampling():
    rec = Recorder()
    sampler = Sampler([Job("cpu", 0.01, rec)], lambda snap: snap)
    await sampler.start()
    try:
        await asyncio.wait_for(sampler.ready.wait(), 10)
        before = len(rec.spans)
        time.sleep(0.3)  # the loop is held (a slow callback): the worker's ticks go on without it
        during = len(rec.spans) - before
    finally:
        await sampler.stop()
    assert during >= 5  # 30 ticks were due; a loop-driven timer would have run none


async def _scraper(sampler: Sampler[object], times: int, every: float) -> AsyncIterator[int]:
    """Once the first snapshot is out, a scraper's turns ``every`` seconds: the caller scrapes at each."""
    await asyncio.wait_for(sampler.ready.wait(), 10)
    for n in range(times):
        await asyncio.sleep(every)
        yield n


async def test_a_snapshot_is_rendered_before_a_scrape_expected_at_a_regular_cadence():
    rendered_at: list[float] = []

    def render(snap: Snapshot) -> float:
        rendered_at.append(time.monotonic())
        return snap.timestamp_seconds

    sampler = Sampler([Job("cpu", 0.05, Recorder())], render)
    await sampler.start()
    try:
        early = 0
        async for n in _scraper(sampler, 12, 0.2):  # four snapshots a scrape
            renders_before = len(rendered_at)
            await sampler.rendered()
            if n >= 2 and renders_before and len(rendered_at) == renders_before:
                early += 1  # this scrape's snapshot had been rendered before it asked: no render for it
    finally:
        await sampler.stop()
    assert early >= 5  # once the cadence is known, most scrapes find their snapshot already rendered
    assert len(rendered_at) <= 12 + 3  # about one render a scrape, not one a snapshot (some 48 were taken)


def test_a_snapshot_is_copied_for_its_skipped_ticks_only_when_they_changed():
    job = Job("cpu", 1.0, lambda prev: Snapshot())
    sampler = Sampler([job], lambda snap: snap)
    kept = Snapshot(timestamp_seconds=1.0, skipped_ticks={"cpu": 0})  # a step keeps its previous snapshot's
    assert sampler._run_step(job, lambda prev: kept) is kept
    sampler.skipped_ticks["cpu"] = 2
    copied = sampler._run_step(job, lambda prev: kept)
    assert copied is not None and copied.skipped_ticks == {"cpu": 2} and copied.timestamp_seconds == 1.0
    assert kept.skipped_ticks == {"cpu": 0}


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.01)


class Instants:
    """A CPU job as the app builds it: the light step keeps the instant values it was given (as
    take_snapshot(instants=False) does), the refresh reads them. Counts each; timestamp_seconds numbers
    the snapshots."""

    def __init__(self, interval: float, hold_light: threading.Event | None = None, pause: bool = False) -> None:
        self.whole = self.light = self.refreshes = 0
        self.hold_light = hold_light  # set: the light steps after the first wait on it
        self.job = Job("cpu", interval, self.step, light=self.light_step, refresh=self.refresh, pause_unseen=pause)

    def _next(self, prev: Snapshot | None, instants_read: float | None) -> Snapshot:
        now = time.monotonic()
        seq = (prev.timestamp_seconds if prev else 0) + 1
        return replace(
            prev or Snapshot(), timestamp_seconds=seq, monotonic_seconds=now, instants_read_seconds=instants_read or now
        )

    def step(self, prev: Snapshot | None) -> Snapshot:
        self.whole += 1
        return self._next(prev, None)

    def light_step(self, prev: Snapshot | None) -> Snapshot:
        self.light += 1
        if self.hold_light is not None and self.light > 1:
            self.hold_light.wait()
        return self._next(prev, prev.instants_read_seconds if prev else None)

    def refresh(self, prev: Snapshot | None) -> Snapshot:
        self.refreshes += 1
        assert prev is not None
        return replace(prev, instants_read_seconds=time.monotonic())


async def test_ticks_nobody_scrapes_are_light_and_an_unexpected_scrape_has_one_refresh_however_many_ask():
    cpu = Instants(0.05)
    sampler = Sampler([cpu.job], lambda snap: snap)
    await sampler.start()
    try:
        await asyncio.wait_for(_until(lambda: cpu.light + cpu.whole >= 4), 10)
        assert cpu.whole == 0 and cpu.refreshes == 0  # nobody scraped: no tick read the instant sources
        latest = sampler.latest()
        assert latest is not None and latest.instants_behind()
        served = await asyncio.gather(*(sampler.rendered() for _ in range(5)))
        assert cpu.refreshes == 1  # one refresh for the five scrapes that came at once
        assert len({id(s) for s in served}) == 1
        snap = served[0]
        assert snap is not None and not snap.instants_behind() and snap.instants_read_seconds is not None
        assert snap.instants_read_seconds >= latest.monotonic_seconds
    finally:
        await sampler.stop()
    # stopped: a scrape of a snapshot whose instants are behind has them read on its own thread
    behind = replace(snap, instants_read_seconds=snap.monotonic_seconds - 1)
    sampler._publish(cpu.job, behind, None)
    after = await sampler.rendered()
    assert cpu.refreshes == 2 and after is not None and not after.instants_behind()


async def test_a_scraper_at_a_regular_cadence_has_its_ticks_read_whole_and_waits_for_no_refresh():
    cpu = Instants(0.1)
    sampler = Sampler([cpu.job], lambda snap: snap)
    await sampler.start()
    try:
        waited = 0
        async for n in _scraper(sampler, 10, 0.5):  # five ticks a scrape
            before = cpu.refreshes
            snap = await sampler.rendered()
            assert snap is not None and not snap.instants_behind()
            if n >= 2 and cpu.refreshes > before:
                waited += 1
    finally:
        await sampler.stop()
    assert cpu.refreshes >= 2  # the first two scrapes came unexpected
    assert waited <= 4  # once the cadence is known, most scrapes find their tick read whole
    assert cpu.whole >= 5 and cpu.light > cpu.whole  # and most ticks, which no scrape sees, were light


async def test_a_pause_unseen_job_rests_between_the_ticks_a_regular_scraper_sees_and_runs_whole_for_another():
    cpu = Instants(0.05, pause=True)
    sampler = Sampler([cpu.job], lambda snap: snap)
    await sampler.start()
    try:
        waited = 0
        async for n in _scraper(sampler, 10, 0.5):  # ten ticks a scrape
            before = cpu.refreshes + cpu.whole
            asked = time.monotonic()
            snap = await sampler.rendered()
            assert snap is not None and not snap.instants_behind()
            assert asked - snap.monotonic_seconds <= 0.05 + 0.025 + 0.02  # a sample of the tick it was expected to see
            if n >= 2 and cpu.refreshes + cpu.whole > before:
                waited += 1
        ran = cpu.light + cpu.whole
        assert ran <= 2 + 10 * 5  # two before the cadence was known, then a few ticks a scrape (not ten)
        assert cpu.light >= 8  # the tick before each seen one opened its window
        await asyncio.sleep(0.25)  # half way to the next expected scrape: the job rests
        assert cpu.light + cpu.whole == ran and sampler.stale() == ""  # a rested tick is no failure
        latest = sampler.latest()
        assert latest is not None
        whole, refreshes = cpu.whole, cpu.refreshes
        snap = await sampler.rendered()  # unexpected: the sample is older than an interval and the slack
        assert cpu.whole == whole + 1 and cpu.refreshes == refreshes  # the whole step ran for it, no refresh on top
        assert snap is not None and snap.monotonic_seconds > latest.monotonic_seconds and not snap.instants_behind()
    finally:
        await sampler.stop()
    assert waited <= 4  # once the cadence is known, most scrapes find the tick they see already run


async def test_a_scraper_at_a_regular_cadence_has_one_tick_read_whole_for_each_scrape_not_two():
    # Scrapes a fifth of a tick after the tick they see: a margin of half an interval around the expected
    # scrape (0.3 s here) would take in the tick before as well and have it read whole too.
    cpu = Instants(0.6, pause=True)
    sampler = Sampler([cpu.job], lambda snap: snap)
    await sampler.start()
    try:
        await asyncio.wait_for(sampler.ready.wait(), 10)
        first = sampler.latest()
        assert first is not None
        phase = first.monotonic_seconds + 0.2
        for n in range(8):
            await asyncio.sleep(max(0.0, phase + (n + 1) * 1.2 - time.monotonic()))  # every other tick
            if n == 2:  # the cadence is known
                whole, refreshes = cpu.whole, cpu.refreshes
            asked = time.monotonic()
            snap = await sampler.rendered()
            assert snap is not None and not snap.instants_behind()
            assert asked - snap.monotonic_seconds < 0.6  # a sample of the tick just before it
    finally:
        await sampler.stop()
    assert cpu.whole + cpu.refreshes - whole - refreshes <= 6 + 1  # six scrapes: one whole read each (one to spare)


class CountedWaits:
    """The worker's queue, counting the waits on it: the worker waits once each time it sleeps."""

    def __init__(self, inner: queue.SimpleQueue) -> None:  # type: ignore[type-arg]
        self.inner = inner
        self.waits = 0

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        self.waits += 1
        return self.inner.get(block, timeout)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


async def test_resting_jobs_sleep_through_the_ticks_no_scrape_will_see():
    cpu = Instants(0.05, pause=True)
    walks = Walks()
    cgroup = Job("cgroup", 0.1, lambda prev: prev, prepare=walks.prepare, skip_unseen=True)
    sampler = Sampler([cpu.job, cgroup], lambda snap: snap)
    counted = CountedWaits(sampler._queue)
    sampler._queue = counted  # type: ignore[assignment]
    await sampler.start()
    try:
        async for n in _scraper(sampler, 8, 1.0):  # twenty CPU ticks and ten cgroup ticks a scrape
            if n == 2:  # the cadence is known
                waits, ran = counted.waits, cpu.light + cpu.whole + walks.walks
            await sampler.rendered()
        await asyncio.sleep(0.2)
        assert sampler.stale() == ""  # the ticks slept through are no failure
    finally:
        await sampler.stop()
    # Six scrapes: a few ticks run for each (the light one and the one it sees, a walk; at these short intervals
    # the margin is half an interval, so two ticks are read whole), and the worker wakes about once for each
    # of those (twice for a walk: its tick, and its prepared step), not at each of the 180 ticks between.
    ran = cpu.light + cpu.whole + walks.walks - ran
    assert ran <= 6 * 5
    assert counted.waits - waits <= 2 * ran + 6


async def test_a_resting_job_follows_a_new_cadence_from_its_second_scrape_on():
    cpu = Instants(0.05, pause=True)
    sampler = Sampler([cpu.job], lambda snap: snap)
    await sampler.start()
    try:
        async for _ in _scraper(sampler, 3, 1.5):  # the job rests for most of each 1.5 s
            await sampler.rendered()
        waited = 0
        async for n in _scraper(sampler, 8, 0.2):  # then a scraper every 0.2 s
            before = cpu.whole + cpu.refreshes
            await sampler.rendered()
            if n >= 2 and cpu.whole + cpu.refreshes > before:
                waited += 1  # the job was resting through the tick it saw
    finally:
        await sampler.stop()
    # From the third scrape on the cadence is 0.2 s and the job wakes for it, not for the next 1.5 s one.
    assert waited <= 2


def test_a_pause_unseen_job_without_its_light_step_or_refresh_is_refused():
    with pytest.raises(ValueError, match="pause_unseen needs light"):
        Job("cpu", 1.0, lambda prev: Snapshot(), refresh=lambda prev: Snapshot(), pause_unseen=True)
    with pytest.raises(ValueError, match="pause_unseen needs light"):
        Job("cpu", 1.0, lambda prev: Snapshot(), light=lambda prev: Snapshot(), pause_unseen=True)


async def test_a_refresh_the_busy_worker_cannot_run_in_time_serves_the_last_sample():
    hold = threading.Event()
    cpu = Instants(0.2, hold_light=hold)
    sampler = Sampler([cpu.job], lambda snap: snap)
    await sampler.start()
    try:
        await asyncio.wait_for(sampler.ready.wait(), 10)
        await asyncio.wait_for(_until(lambda: cpu.light >= 2), 10)  # the worker is held in its second light step
        latest = sampler.latest()
        assert latest is not None
        latest = replace(latest, instants_read_seconds=latest.monotonic_seconds - 1)
        sampler._publish(cpu.job, latest, None)  # behind: a scrape asks for a refresh the worker cannot run
        snap = await asyncio.wait_for(sampler.rendered(), 5)
        assert snap is not None and snap.timestamp_seconds == latest.timestamp_seconds and snap.instants_behind()
        assert cpu.refreshes == 0
    finally:
        hold.set()
        await sampler.stop()


class Walks:
    """A prepared job (as the cgroup job is): counts its walks; its step numbers them in the snapshot."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.walks = 0
        self.seconds = seconds  # each walk's length

    def prepare(self) -> Callable[[Snapshot | None], Snapshot]:
        time.sleep(self.seconds)
        self.walks += 1
        n = self.walks
        return lambda prev: replace(prev or Snapshot(), syscalls={"walk": float(n)})

    def sampler(self, interval: float = 0.1) -> Sampler[Snapshot]:
        """This job every ``interval`` beside a CPU job every 0.05 s."""
        cgroup = Job("cgroup", interval, lambda prev: prev, prepare=self.prepare, skip_unseen=True)
        return Sampler([Job("cpu", 0.05, Recorder()), cgroup], lambda snap: snap)


async def test_a_skip_unseen_job_runs_only_for_the_scrape_that_comes_and_stays_ready():
    walks = Walks()
    sampler = walks.sampler()
    await sampler.start()
    try:
        await asyncio.wait_for(_until(lambda: walks.walks == 1), 10)
        await asyncio.sleep(0.6)  # six of its ticks, none of which a scrape was expected to see
        assert walks.walks == 1
        assert sampler.stale() == ""  # a skipped tick is no failure: /-/ready stays 200
        snap = await asyncio.wait_for(sampler.rendered(), 5)
        assert walks.walks == 2  # the scrape found the last run older than the interval and had it run
        assert snap is not None and snap.syscalls == {"walk": 2.0}
        again = await sampler.rendered()  # within the interval: no run for it
        assert walks.walks == 2 and again is not None and again.syscalls == {"walk": 2.0}
    finally:
        await sampler.stop()


async def test_a_scrape_before_a_skip_unseen_jobs_first_run_ends_waits_for_it():
    walks = Walks(seconds=0.3)
    sampler = walks.sampler(interval=1.0)  # a scrape waits for a run at most one interval
    await sampler.start()
    try:
        await asyncio.wait_for(sampler.ready.wait(), 10)  # the CPU job's first sample, the first walk under way
        assert walks.walks == 0
        snap = await asyncio.wait_for(sampler.rendered(), 5)
        assert walks.walks == 1 and snap is not None and snap.syscalls == {"walk": 1.0}
    finally:
        await sampler.stop()


async def test_a_skip_unseen_job_runs_the_ticks_a_scraper_at_a_regular_cadence_will_see():
    walks = Walks()
    sampler = walks.sampler()
    await sampler.start()
    try:
        waited = 0
        async for n in _scraper(sampler, 10, 0.5):  # five of its ticks a scrape
            before = walks.walks
            snap = await sampler.rendered()
            assert snap is not None and snap.syscalls == {"walk": float(walks.walks)}
            if n >= 2 and walks.walks > before:
                waited += 1
    finally:
        await sampler.stop()
    assert waited <= 4  # once the cadence is known, most scrapes find a run of the tick they see
    assert walks.walks <= 10 * 3  # and most ticks (some 50) were skipped

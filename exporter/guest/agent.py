"""``sysmon-exporter agent``: samples this guest with the exporter's own sources and
writes protocol lines (see :mod:`exporter.guest.protocol`) to the host channel.

Sampling never waits for the channel: rows go into a bounded queue that a writer
thread drains. When the host is not reading (a virtio-serial port whose host
side is closed blocks writes) the queue fills, the oldest rows are dropped, and
the next row that gets through carries the number dropped so far. When the
channel goes away the writer reopens it with exponential backoff and sends a
new ``hello`` first. A virtio-serial port does not go away when the host's
reader does (the exporter restarting, say): poll() reports POLLHUP until a
reader is back, and then the writer sends a new ``hello`` before the next row,
so the host learns who the guest is again.

The host writes back on the same channel: one ``host`` line per host sample
(:mod:`exporter.guest.hoststate`). A reader thread per connection takes them
with a bounded wait, so neither the writer nor the sampler ever waits for it;
each line is checked, a bad or oversized one is dropped and counted (every row
carries the count so far as ``host_lines_rejected``; the first of each reason
is logged), and the latest good one replaces the state file. A state file that
cannot be written is logged once (until it can be again) and the agent goes on.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.catalogue import HOST_STATE
from exporter.config import Address
from exporter.guest.channel import HostGone, Writer, open_agent_channel
from exporter.guest.hoststate import (
    BadHostLine,
    parse_host_line,
    state_bytes,
    write_state,
)
from exporter.guest.lines import MAX_HOST_LINE_BYTES, TOO_LONG, LineSplitter
from exporter.guest.protocol import hello_line, row_from_snapshot
from exporter.snapshot import CgroupSources, Clock, CpuSources, Snapshot, take_cgroup_snapshot, take_snapshot

log = logging.getLogger("exporter.agent")

BACKOFF_MAX_SECONDS = 10.0
STABLE_SECONDS = BACKOFF_MAX_SECONDS  # a connection up this long was working
HOST_POLL_SECONDS = 0.2  # how often a port without a host reader is polled again
READ_WAIT_MS = 200  # the reader's longest wait for host lines: how soon it sees its connection end


@dataclass(frozen=True)
class AgentSettings:
    channel: Address
    interval_seconds: float
    queue_size: int
    readers: CpuSources
    dev: Path
    version: str
    cgroups: CgroupSources | None = None  # with --collector.cgroup
    host_state: Path = HOST_STATE  # --agent.host-state


class HostLines:
    """Host lines taken and dropped on this agent's channel (by reason), shared by reader and writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected: dict[str, int] = {}

    def accept(self) -> None:
        with self._lock:
            self.accepted += 1

    def reject(self, reason: str, detail: str) -> None:
        with self._lock:
            first = reason not in self.rejected
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if first:
            log.warning("host line dropped (%s); later ones are counted in each row's host_lines_rejected", detail)

    def rejected_total(self) -> int:
        with self._lock:
            return sum(self.rejected.values())


class Outbox:
    """A bounded queue of rows; a full queue drops its oldest row and counts it."""

    def __init__(self, size: int, host_lines: HostLines | None = None) -> None:
        self._rows: collections.deque[dict[str, Any]] = collections.deque()
        self._size = size
        self._cond = threading.Condition()
        self.dropped = 0
        self._host_lines = host_lines

    def put(self, row: dict[str, Any]) -> None:
        with self._cond:
            if len(self._rows) >= self._size:
                self._rows.popleft()
                self.dropped += 1
            self._rows.append(row)
            self._cond.notify()

    def get(self, timeout: float) -> bytes | None:
        """The oldest row as a line, stamped with the drop count so far; None on timeout."""
        with self._cond:
            if not self._rows and not self._cond.wait_for(lambda: bool(self._rows), timeout):
                return None
            row = self._rows.popleft()
            row["dropped"] = self.dropped
        if self._host_lines is not None:
            row["host_lines_rejected"] = self._host_lines.rejected_total()
        return json.dumps(row, separators=(",", ":")).encode() + b"\n"

    def lost(self) -> None:
        """A row that was taken but could not be written counts as dropped."""
        with self._cond:
            self.dropped += 1


class _Shared:
    """A channel used by the writer and its reader: closed by whichever of them is done last,
    so a reader held up by a slow state write never holds up the writer's reconnect."""

    def __init__(self, writer: Writer, users: int) -> None:
        self.writer = writer
        self._users = users
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.writer.close()


def _read_id(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        clock: Clock,
        stop: threading.Event,
        open_channel: Callable[[], Writer] | None = None,
    ) -> None:
        self.settings = settings
        self._open_channel = open_channel or (
            lambda: open_agent_channel(settings.channel, settings.readers.sysfs, settings.dev)
        )
        self.clock = clock
        self.stop = stop
        self.host_lines = HostLines()
        self.outbox = Outbox(settings.queue_size, self.host_lines)
        self._state_failing = ""  # the state file's failure last logged, until a write succeeds
        self._state_lock = threading.Lock()  # a reader outliving its connection may overlap the next one
        procfs = settings.readers.procfs
        self.boot_id = _read_id(procfs / "sys/kernel/random/boot_id")
        self.hostname = _read_id(procfs / "sys/kernel/hostname")
        self._first_delay = min(settings.interval_seconds, 1.0)
        self._delay = self._first_delay
        self._failing = ""  # the failure last logged since the last stable connection
        self._announced = False  # "connected" logged since the last stable connection

    def _retry(self, what: str, reason: str) -> None:
        """Log a failure once per distinct reason (since the last stable connection), then back off."""
        if reason != self._failing:
            log.warning("%s %s: %s; retrying with backoff", what, self.settings.channel, reason)
            self._failing = reason
        self.stop.wait(self._delay)
        self._delay = min(self._delay * 2, BACKOFF_MAX_SECONDS)

    def _open(self) -> Writer | None:
        while not self.stop.is_set():
            try:
                writer = self._open_channel()
            except OSError as e:
                self._retry("cannot open", e.strerror or str(e))
                continue
            if not self._announced:
                log.info("connected to %s", self.settings.channel)
                self._announced = True
            return writer
        return None

    def write_loop(self) -> None:
        """Send hello, then rows. Only a connection that stayed up for :data:`STABLE_SECONDS`
        resets the backoff and the logging: a write succeeds as soon as the kernel buffers
        it, so a host that accepts and closes (one at --guest.max-vms, say) would otherwise
        be reconnected to in a loop and logged each time."""
        capabilities = sorted(self.settings.readers.collectors)
        hello = hello_line(self.settings.version, self.boot_id, self.hostname, capabilities)
        while not self.stop.is_set():
            writer = self._open()
            if writer is None:
                return
            opened = self.clock.monotonic()
            done = threading.Event()
            channel = _Shared(writer, 2 if writer.readable else 1)
            if writer.readable:
                threading.Thread(target=self.read_loop, args=(channel, done), name="agent-reader", daemon=True).start()
            try:
                self._send(writer, hello)
            except OSError as e:
                if self.clock.monotonic() - opened >= STABLE_SECONDS:
                    self._failing, self._delay, self._announced = "", self._first_delay, False
                self._retry("lost", e.strerror or str(e))
            finally:
                done.set()
                channel.release()  # the reader may still be in a read or a state write: it closes last

    def read_loop(self, channel: _Shared, done: threading.Event) -> None:
        try:
            self._read(channel.writer, done)
        finally:
            channel.release()

    def _read(self, writer: Writer, done: threading.Event) -> None:
        """Host lines from one connection until ``done``; the latest valid one of each read is kept."""
        # Per connection: a line cut by a reconnect is not joined to the next.
        splitter = LineSplitter(MAX_HOST_LINE_BYTES)
        while not done.is_set():
            try:
                data = writer.read(READ_WAIT_MS)
            except OSError as e:
                log.warning(
                    "cannot read host lines on %s: %s; reading again after a reconnect", self.settings.channel, e
                )
                return
            if data is None:  # no host there now
                done.wait(HOST_POLL_SECONDS)
                continue
            latest = None
            for line in splitter.feed(data):
                if line is TOO_LONG:
                    self.host_lines.reject("too_long", f"too_long: a line longer than {MAX_HOST_LINE_BYTES} bytes")
                    continue
                try:
                    latest = parse_host_line(line)
                except BadHostLine as e:
                    self.host_lines.reject(e.reason, str(e))
                    continue
                self.host_lines.accept()
            if latest is not None:
                self._keep(state_bytes(latest, self.clock.wall()))

    def _keep(self, data: bytes) -> None:
        path = self.settings.host_state
        with self._state_lock:
            try:
                write_state(path, data)
            except OSError as e:
                reason = e.strerror or str(e)
                if reason != self._state_failing:
                    log.warning("cannot write the host state %s: %s; the agent goes on without it", path, reason)
                    self._state_failing = reason
                return
            if self._state_failing:
                log.info("the host state %s is written again", path)
                self._state_failing = ""

    def _send(self, writer: Writer, hello: bytes) -> None:
        """Hello, then rows, until the writer fails (OSError) or the agent stops.

        Before each row, and while no row is due, the host side is polled: after
        POLLHUP (no host reader) nothing is written until it is back, and then
        ``hello`` goes first.
        """
        need_hello, pending, host_left = True, None, False
        while not self.stop.is_set():
            if not writer.host_connected():
                if not host_left:
                    log.info("no host reader on %s (POLLHUP); waiting for one", self.settings.channel)
                    host_left = True
                need_hello = True
                self.stop.wait(HOST_POLL_SECONDS)
                continue
            if host_left:
                log.info("a host reader is on %s; sending hello", self.settings.channel)
                host_left = False
            line = hello if need_hello else pending or self.outbox.get(timeout=HOST_POLL_SECONDS)
            if line is None:
                continue
            try:
                writer.write(line)
            except HostGone as e:
                need_hello = True
                if line is not hello:  # kept for after the hello, unless half of it went out
                    pending = None if e.partial else line
                    if e.partial:
                        self.outbox.lost()
                continue
            except OSError:
                if line is not hello:
                    self.outbox.lost()
                raise
            if line is hello:
                need_hello = False
            else:
                pending = None

    def sample_loop(self) -> None:
        snap: Snapshot | None = None
        seq = 0
        start = self.clock.monotonic()
        tick = 0
        while not self.stop.is_set():
            snap = take_snapshot(snap, self.settings.readers, self.clock)
            if self.settings.cgroups is not None:
                snap = take_cgroup_snapshot(snap, self.settings.cgroups, self.clock)
            self.outbox.put(row_from_snapshot(snap, seq, self.boot_id))
            seq += 1
            interval = self.settings.interval_seconds
            tick = max(tick + 1, int((self.clock.monotonic() - start) / interval) + 1)
            self.stop.wait(max(0.0, start + tick * interval - self.clock.monotonic()))

    def run(self) -> int:
        writer = threading.Thread(target=self.write_loop, name="agent-writer", daemon=True)
        writer.start()
        self.sample_loop()
        writer.join(timeout=1.0)
        return 0

"""Host-side ingest: reads every guest's protocol lines and keeps bounded per-VM state.

Two ways in. ``--guest.socket=PATTERN``: QEMU's chardev unix sockets (the host
end of a virtio-serial port, ``-chardev socket,server=on``): QEMU listens, we
connect. The pattern is re-globbed every ``--guest.rescan-interval``; ``{vm}``
names the VM, and the VM exists while the path up to the component holding
``{vm}`` exists: as a socket, or as a directory when more follows (so
``/run/vms/{vm}/agent.sock`` counts ``connect_failed`` for a VM whose
directory is there before QEMU has created the socket; a stray plain file is
no VM).
``--guest.listen=unix:PATH|vsock:PORT``: agents connect in.

The ``vm`` label always comes from this side (pattern capture, socket name or
peer CID); what a guest says about itself only reaches ``sysmon_guest_info``.
Each row is re-stamped with the host's clocks; the guest's wall clock is kept
only as the offset. Rows, hellos, the guest's own CloudEvents (which make no
series) and channel events go to the recorder (record.py), which writes what
its format holds. Bounds: a line longer than ``max_line_bytes`` is discarded
up to its newline, a token bucket limits rows per VM, a VM has one connection
at a time (on a listener the newest replaces the older), and at most
``max_vms`` VMs are tracked, so memory does not grow with what guests send.

State is written on the event loop and read by the sampler's worker thread
through :meth:`Ingest.view`, under one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from exporter.config import Address, GuestConfig
from exporter.guest.channel import listen_socket, vm_of_unix_listener
from exporter.guest.lines import MAX_NUMBER, TOO_LONG, LineSplitter
from exporter.guest.protocol import GuestEvent, Hello, Malformed, Row, parse_line
from exporter.guest_state import GuestVm, vm_label
from exporter.snapshot import Clock

log = logging.getLogger("exporter.guest")

READ_BYTES = 65536


def _is(path: str, kind: Callable[[int], bool]) -> bool:
    try:
        return kind(os.stat(path).st_mode)
    except OSError:  # gone since the glob, or a dangling link
        return False


def expand_pattern(pattern: str) -> dict[str, Path]:
    """{vm: socket path} for the VMs a pattern names now (see the module docstring).

    Only sockets are VMs (and, for a ``{vm}`` directory, directories): a stray
    file the glob also matches is no VM.
    """
    parts = Path(pattern).parts
    index = next((i for i, p in enumerate(parts) if "{vm}" in p), None)
    if index is None:
        if not glob.has_magic(pattern):
            return {vm_label(Path(pattern).stem): Path(pattern)}
        return {vm_label(Path(p).stem): Path(p) for p in glob.glob(pattern) if _is(p, stat.S_ISSOCK)}
    before, _, after = parts[index].partition("{vm}")
    capture = re.compile(re.escape(before) + "(.+)" + re.escape(after.replace("{vm}", "")))
    prefix = str(Path(*parts[: index + 1])).replace("{vm}", "*")
    rest = parts[index + 1 :]
    kind = stat.S_ISDIR if rest else stat.S_ISSOCK
    out: dict[str, Path] = {}
    for match in sorted(glob.glob(prefix)):
        m = capture.fullmatch(Path(match).name)
        if m and _is(match, kind):
            out[vm_label(m.group(1))] = Path(match, *rest)
    return out


class _Bucket:
    """Token bucket: ``rate`` rows per second, up to ``burst`` at once (an agent's backlog after a reconnect)."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class _Vm:
    """Mutable per-VM state, touched on the event loop under the ingest lock."""

    def __init__(self, vm: str, rate: float, burst: float, now: float, from_pattern: bool) -> None:
        self.view = GuestVm(vm)
        self.bucket = _Bucket(rate, burst, now)
        self.from_pattern = from_pattern
        self.connections = 0
        self.conn: socket.socket | None = None  # the VM's connection (a listener's or the one to its socket)
        self.last_seq = -1
        self.last_row_monotonic: float | None = None
        self.last_dropped = 0
        self.last_rejected = 0
        self.events: dict[str, int] = {}
        self.malformed: dict[str, int] = {}
        self.unsent = b""  # the tail of a host line the socket took only part of
        self.host_lines_sent = 0
        self.host_lines_dropped = 0


Entry = dict[str, Any]
LIFECYCLE_BYTES = 128  # what a channel event's entry counts against the recorder's queue


class Record(Protocol):
    """Where accepted rows, hellos, guest CloudEvents and channel events are recorded (record.Recorder)."""

    def __call__(self, vm: str, record: Entry, size: int) -> None:
        """Queue the re-stamped entry of ``vm``; ``size`` is the length of the line it came from."""

    def unrecorded(self) -> Mapping[str, int]:
        """Rows per VM that were accepted but not written."""
        ...


def _saturating_add(total: int, n: int) -> int:
    """Counters stay below MAX_NUMBER (int64 and float64 exact enough), whatever guests report."""
    return min(total + n, MAX_NUMBER - 1)


class Ingest:
    def __init__(self, settings: GuestConfig, clock: Clock, record: Record | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.record = record
        self._lock = threading.Lock()
        self._vms: dict[str, _Vm] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._connectors: dict[str, asyncio.Task[None]] = {}
        self._servers: list[tuple[Address, socket.socket]] = []
        self._warned_full = False
        self._warned_parse = False
        self._accept_failing: str | None = None  # why accepting last failed, logged once until it works

    # --- read side (sampler thread) ---

    def view(self) -> dict[str, GuestVm]:
        now = self.clock.monotonic()
        unrecorded = self.record.unrecorded() if self.record is not None else {}
        with self._lock:
            return {
                name: replace(
                    st.view,
                    channel_up=st.connections > 0,
                    up=st.connections > 0
                    and st.last_row_monotonic is not None
                    and now - st.last_row_monotonic <= self.settings.silent_seconds,
                    channel_events_total=dict(st.events),
                    malformed_rows_total=dict(st.malformed),
                    unrecorded_rows_total=unrecorded.get(name, 0),
                    host_lines_sent_total=st.host_lines_sent,
                    host_lines_dropped_total=st.host_lines_dropped,
                )
                for name, st in sorted(self._vms.items())
            }

    def send_host_lines(self, lines: Mapping[str, bytes]) -> None:
        """Write each VM's host line (guest/downlink.py) into its connected channel, never waiting.

        A guest that does not read fills the socket's buffer (and QEMU's): a line the
        socket would not take at once is dropped and counted. A line the socket took
        only part of is finished before the next one is sent, so the guest never sees
        a line cut short. Runs on the sampler's thread; sockets close under the same lock.
        """
        with self._lock:
            for vm, line in lines.items():
                st = self._vms.get(vm)
                if st is None or st.conn is None:
                    continue
                if st.unsent:
                    st.unsent = self._send(st, st.conn, st.unsent)
                    if st.unsent:
                        st.host_lines_dropped += 1
                        continue
                    st.host_lines_sent += 1
                if len(line) > self.settings.max_line_bytes:  # the guest's bound is the host's
                    st.host_lines_dropped += 1
                    continue
                rest = self._send(st, st.conn, line)
                if rest == line:
                    st.host_lines_dropped += 1
                elif rest:
                    st.unsent = rest
                else:
                    st.host_lines_sent += 1

    @staticmethod
    def _send(st: _Vm, sock: socket.socket, data: bytes) -> bytes:
        """What is left of ``data`` after one non-blocking send (all of it when the socket is full or failing)."""
        try:
            n = sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return data
        except OSError as e:  # the guest's side closed; the reader sees the EOF and counts the disconnect
            log.debug("vm %s: host line not sent: %s", st.view.vm, e.strerror)
            return data
        return data[n:]

    # --- state changes (event loop) ---

    def _state(self, vm: str, from_pattern: bool) -> _Vm | None:
        st = self._vms.get(vm)
        if st is not None:
            return st
        if len(self._vms) >= self.settings.max_vms:
            idle = [n for n, s in self._vms.items() if s.connections == 0 and not s.from_pattern]
            if not idle:
                if not self._warned_full:
                    log.warning("--guest.max-vms=%d reached; ignoring vm %s and any further VM", len(self._vms), vm)
                    self._warned_full = True
                return None
            del self._vms[idle[0]]
        settings = self.settings
        st = self._vms[vm] = _Vm(vm, settings.rate_limit, settings.rate_burst, self.clock.monotonic(), from_pattern)
        return st

    @staticmethod
    def _count(counter: dict[str, int], key: str) -> None:
        counter[key] = counter.get(key, 0) + 1

    def _event(self, st: _Vm, event: str) -> None:
        with self._lock:
            self._count(st.events, event)
        self._record_event(st, event)

    def _record_event(self, st: _Vm, event: str) -> None:
        # connect_failed repeats every --guest.rescan-interval while a VM is down: counted, not recorded
        if self.record is not None and event != "connect_failed":
            self.record(st.view.vm, self._entry("lifecycle", event, st.view.vm), LIFECYCLE_BYTES)

    def _entry(self, key: str, value: Any, vm: str, wall: float | None = None, mono: float | None = None) -> Entry:
        """What the recorder gets: ``vm``, the host's clocks in ns, and ``key`` (row, hello, lifecycle, cloudevent)."""
        wall = self.clock.wall() if wall is None else wall
        mono = self.clock.monotonic() if mono is None else mono
        return {"vm": vm, "host_wall_ns": int(wall * 1e9), "host_mono_ns": int(mono * 1e9), key: value}

    def _line(self, st: _Vm, line: bytes) -> None:
        if not line.strip():
            return
        with self._lock:
            if not st.bucket.take(self.clock.monotonic()):
                self._count(st.malformed, "rate_limited")
                return
        try:
            msg = parse_line(line)  # outside the lock: the sampler's view() never waits on a parse
        except Malformed as e:
            with self._lock:
                self._count(st.malformed, e.reason)
            return
        except Exception:  # parse_line raises only Malformed (test_protocol_fuzz.py); else one line is lost
            if not self._warned_parse:
                log.exception("vm %s: a guest line could not be parsed; counted as invalid_row", st.view.vm)
                self._warned_parse = True
            with self._lock:
                self._count(st.malformed, "invalid_row")
            return
        with self._lock:
            if isinstance(msg, Hello):
                st.view = replace(st.view, hostname=msg.hostname, agent_version=msg.agent_version, boot_id=msg.boot_id)
                record = self._entry("hello", msg.raw, st.view.vm)
            elif isinstance(msg, GuestEvent):  # recorded only: what a guest says of itself makes no series
                record = self._entry("cloudevent", msg.raw, st.view.vm)
            else:
                record = self._row(st, msg)
        if self.record is not None:
            self.record(st.view.vm, record, len(line))

    def _row(self, st: _Vm, row: Row) -> Entry:
        wall, mono = self.clock.wall(), self.clock.monotonic()
        if row.seq <= st.last_seq:  # the agent restarted: its drop and rejection counts start again
            st.last_dropped = st.last_rejected = 0
        dropped = max(0, row.dropped - st.last_dropped)
        rejected = max(0, row.host_lines_rejected - st.last_rejected)
        st.last_seq, st.last_dropped, st.last_rejected = row.seq, row.dropped, row.host_lines_rejected
        st.view = replace(
            st.view,
            boot_id=row.boot_id or st.view.boot_id,
            cpu_seconds=row.cpu_seconds,
            frequency_hertz=row.frequency_hertz,
            memory_bytes=row.memory_bytes,
            cgroups=row.cgroups,
            clock_offset_seconds=row.wall_seconds - wall,
            last_row_timestamp_seconds=wall,
            rows_total=_saturating_add(st.view.rows_total, 1),
            dropped_rows_total=_saturating_add(st.view.dropped_rows_total, dropped),
            host_lines_rejected_total=_saturating_add(st.view.host_lines_rejected_total, rejected),
        )
        st.last_row_monotonic = mono
        return self._entry("row", row.raw, st.view.vm, wall, mono)

    # --- connections ---

    def _connected(self, st: _Vm, delta: int) -> None:
        event = "connect" if delta > 0 else "disconnect"
        with self._lock:
            st.connections += delta
            self._count(st.events, event)
        self._record_event(st, event)

    def _data(self, st: _Vm, lines: LineSplitter, chunk: bytes) -> None:
        for line in lines.feed(chunk):
            if line is TOO_LONG:
                with self._lock:
                    self._count(st.malformed, "too_long")
            else:
                self._line(st, line)

    async def _serve(self, st: _Vm, sock: socket.socket) -> None:
        """Read one connection until EOF, counting its lifecycle events."""
        loop = asyncio.get_running_loop()
        lines = LineSplitter(self.settings.max_line_bytes)
        first = silent = False
        with self._lock:
            st.conn, st.unsent = sock, b""
        self._connected(st, +1)
        try:
            while True:
                try:
                    chunk = await asyncio.wait_for(loop.sock_recv(sock, READ_BYTES), self.settings.silent_seconds)
                except TimeoutError:
                    if not silent:
                        self._event(st, "silent_window")
                        silent = True
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                silent = False
                if not first:
                    self._event(st, "first_byte")
                    first = True
                self._data(st, lines, chunk)
                await asyncio.sleep(0)  # a flooding guest yields to the others after every read
        finally:
            with self._lock:  # never while the sampler's thread is sending on it
                if st.conn is sock:
                    st.conn, st.unsent = None, b""
                sock.close()
            self._connected(st, -1)

    def feed(self, vm: str, data: bytes) -> None:
        """Process ``data`` as the first bytes of a connection from ``vm`` that stays open."""
        with self._lock:
            st = self._state(vm, from_pattern=False)
        if st is None:
            return
        self._connected(st, +1)
        if data:
            self._event(st, "first_byte")
            self._data(st, LineSplitter(self.settings.max_line_bytes), data)

    async def _connect_loop(self, vm: str, path: Path) -> None:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                st = self._state(vm, from_pattern=True)
            if st is None:
                return
            sock = None
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # EMFILE counts as a failed connect
                sock.setblocking(False)
                await loop.sock_connect(sock, str(path))
            except OSError as e:
                if sock is not None:
                    sock.close()
                log.debug("vm %s: cannot connect to %s: %s", vm, path, e.strerror)
                self._event(st, "connect_failed")
            else:
                await self._serve(st, sock)
            await asyncio.sleep(self.settings.rescan_seconds)

    def rescan(self) -> None:
        """Start a connector for each VM the patterns name; forget VMs that went away."""
        wanted: dict[str, Path] = {}
        for pattern in self.settings.patterns:
            wanted.update(expand_pattern(pattern))
        for vm, task in list(self._connectors.items()):
            if vm not in wanted:
                task.cancel()
                del self._connectors[vm]
                with self._lock:
                    self._vms.pop(vm, None)
        for vm, path in wanted.items():
            running = self._connectors.get(vm)
            if running is None or running.done():  # done: it gave up at --guest.max-vms; try again
                self._connectors[vm] = self._spawn(self._connect_loop(vm, path))

    async def _rescan_loop(self) -> None:
        while True:
            self.rescan()
            await asyncio.sleep(self.settings.rescan_seconds)

    async def _accept_loop(self, address: Address, server: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(server)
            except OSError as e:  # EMFILE/ENFILE above all: the connection waits in the backlog
                if e.strerror != self._accept_failing:
                    log.warning("--guest.listen: cannot accept on %s: %s; retrying", address, e.strerror)
                    self._accept_failing = e.strerror
                await asyncio.sleep(self.settings.rescan_seconds)
                continue
            self._accept_failing = None
            conn.setblocking(False)
            if address.kind == "vsock":
                vm = vm_label(f"cid-{peer[0]}")
            else:
                assert address.path is not None
                vm = vm_of_unix_listener(address.path)
            with self._lock:
                st = self._state(vm, from_pattern=False)
            if st is None:
                conn.close()
                continue
            # One connection per VM: the newest replaces the one before (an agent that
            # reconnected before its old connection was seen to close), so a guest that
            # opens many connections holds one read buffer, not one per connection.
            # shutdown() ends the old one's reads as an EOF would, started or not.
            if st.conn is not None:
                with contextlib.suppress(OSError):
                    st.conn.shutdown(socket.SHUT_RDWR)
            st.conn = conn
            self._spawn(self._serve(st, conn))

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def start(self) -> None:
        """Open the listeners (OSError names what failed) and start the pattern scanner."""
        for address in self.settings.listens:
            server = listen_socket(address)
            self._servers.append((address, server))
            self._spawn(self._accept_loop(address, server))
        if self.settings.patterns:
            self._spawn(self._rescan_loop())

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for address, server in self._servers:
            server.close()
            if address.kind == "unix" and address.path is not None:  # only sockets this ingest bound
                with contextlib.suppress(OSError):
                    address.path.unlink()
        self._servers.clear()

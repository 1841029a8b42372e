"""Per-syscall counts from the kernel: eBPF programs on the ``sys_enter`` raw tracepoint.

Kernel interfaces: the ``raw_syscalls:sys_enter`` tracepoint opened as a raw
tracepoint (BPF_RAW_TRACEPOINT_OPEN, Linux 4.17; no tracefs needed). Its
context is ``struct bpf_raw_tracepoint_args``: ``args[0]`` is the pt_regs
pointer and ``args[1]`` the syscall number (include/trace/events/syscalls.h
``TP_PROTO(struct pt_regs *regs, long id)``). The programs are assembled by
:mod:`exporter.sources.bpf` (why: see there).

Counting: a BPF_MAP_TYPE_PERCPU_ARRAY indexed by syscall number, so the hot
path touches only this CPU's slot (no atomics, no shared cache line); reading
sums the per-CPU values. Numbers at or above ``MAX_SYSCALLS`` (x32's bit-30
numbers, bogus ids such as -1 from ptrace) are not counted. On x86_64, 32-bit
(ia32) processes enter with their own numbering; they are counted under the
64-bit names of those numbers.

Optionally (``by``) a BPF_MAP_TYPE_LRU_PERCPU_HASH also counts per (comm or
cgroup v2 id, syscall number). Userspace only reads it (BPF_MAP_LOOKUP_BATCH,
5.6) and turns the running values into increments; it never deletes, because
whatever the program adds to an element between the batch copy and its
deletion would be lost. The kernel bounds the hash instead: when it is full,
inserting evicts the least recently used keys. What an evicted key had gathered
since the last read is missing from its label; the totals still have it.

Filters run in the kernel, before the count, so filtered-out events cost a
helper call or two:

- process tree: a hash map of tgids holding the target, its descendants found
  in /proc at start, and every process forked by a member afterwards (a
  program on the ``sched_process_fork`` raw tracepoint inserts the child's
  tgid, read through task_struct offsets from the kernel's BTF); a program on
  ``sched_process_free`` removes a process when its task is released, so a
  recycled pid is not counted. Pids are the kernel's (initial namespace):
  in a container, run in the host's pid namespace.
- cgroup v2 subtree: ``bpf_get_current_ancestor_cgroup_id(level)`` (5.6)
  equals the target's id (its directory's inode number) exactly for tasks in
  the target or below it. cgroup v1 hierarchies have no such id.
- the exporter's own process is skipped unless asked, by its tgid as the
  kernel numbers it: a one-instruction program run once with
  BPF_PROG_TEST_RUN (5.10) in the exporter's context returns it, since
  ``os.getpid()`` is another number in a container's pid namespace.

Privileges: CAP_BPF + CAP_PERFMON (5.8+) or root; kernel lockdown
(confidentiality) refuses tracing programs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError
from exporter.sources.bpf import (
    BPF_MAP_TYPE_HASH,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_NOEXIST,
    BPF_PROG_TYPE_RAW_TRACEPOINT,
    FN_GET_CURRENT_ANCESTOR_CGROUP_ID,
    FN_GET_CURRENT_CGROUP_ID,
    FN_GET_CURRENT_COMM,
    FN_GET_CURRENT_PID_TGID,
    FN_MAP_DELETE_ELEM,
    FN_MAP_LOOKUP_ELEM,
    FN_MAP_UPDATE_ELEM,
    FN_PROBE_READ_KERNEL,
    Asm,
    Bpf,
    BpfUnavailable,
    possible_cpus,
    read_btf_struct_offsets,
)
from exporter.sources.syscall_names import NAMES

MAX_SYSCALLS = 1024
MAX_TRACKED_PROCESSES = 65536
# r0..r5 are scratch across helper calls; r6..r9 are preserved; r10 is the frame pointer.
R0, R1, R2, R3, R4, R6, R7, R10 = 0, 1, 2, 3, 4, 6, 7, 10


def syscall_name(nr: int, machine: str) -> str:
    """The syscall's name in this architecture's table, or ``unknown_<nr>`` (newer than the table)."""
    table = NAMES.get(machine)
    return (table.get(nr) if table is not None else None) or f"unknown_{nr}"


@dataclass(frozen=True)
class Filter:
    """What to count: a process tree, a cgroup v2 subtree, both (both must match) or everything."""

    pid: int | None = None
    cgroup: Path | None = None
    exclude_self: bool = False  # skip the calling process (the exporter), unless asked to include it
    by: str | None = None  # "comm" | "cgroup": also count per command name or per cgroup v2


@dataclass(frozen=True)
class CgroupTarget:
    id: int
    level: int


@dataclass(frozen=True)
class BreakdownMap:
    """A per-CPU hash counting (comm or cgroup id, syscall number) next to the totals."""

    fd: int
    by: str  # "comm" | "cgroup"

    @property
    def label_size(self) -> int:
        return BY_LABEL_SIZE[self.by]


BY_LABEL_SIZE = {"comm": 16, "cgroup": 8}  # TASK_COMM_LEN; u64 cgroup id
MAX_BREAKDOWN_ENTRIES = 4096


def count_program(
    counts_fd: int,
    exclude_tgid: int | None,
    pids_fd: int | None,
    cgroup: CgroupTarget | None,
    breakdown: BreakdownMap | None = None,
) -> bytes:
    """``sys_enter``: skip unless the filters match, then add 1 to this CPU's slot for the syscall number.

    With a breakdown, also add 1 to this CPU's value for (comm or cgroup id, number).
    """
    a = Asm().mov(R6, R1)
    if exclude_tgid is not None or pids_fd is not None:
        a.call(FN_GET_CURRENT_PID_TGID).rsh_imm(R0, 32)
        if exclude_tgid is not None:
            a.jeq_imm(R0, exclude_tgid, "out")
        if pids_fd is not None:
            a.store(R10, -8, R0, size=4).ld_map(R1, pids_fd).mov(R2, R10).add_imm(R2, -8)
            a.call(FN_MAP_LOOKUP_ELEM).jeq_imm(R0, 0, "out")
    if cgroup is not None:
        a.mov_imm(R1, cgroup.level).call(FN_GET_CURRENT_ANCESTOR_CGROUP_ID)
        a.ld_imm64(R1, cgroup.id).jne_reg(R0, R1, "out")
    a.load(R7, R6, 8)  # args[1]: the syscall number
    a.jge_imm(R7, MAX_SYSCALLS, "out")
    a.store(R10, -4, R7, size=4).ld_map(R1, counts_fd).mov(R2, R10).add_imm(R2, -4)
    a.call(FN_MAP_LOOKUP_ELEM).jeq_imm(R0, 0, "out")
    a.load(R1, R0, 0).add_imm(R1, 1).store(R0, 0, R1)  # per-CPU slot: no atomic needed
    if breakdown is not None:
        size = breakdown.label_size
        key = -8 - size - 8  # label, then u32 number and u32 padding
        if breakdown.by == "comm":
            a.mov(R1, R10).add_imm(R1, key).mov_imm(R2, size).call(FN_GET_CURRENT_COMM)
        else:
            a.call(FN_GET_CURRENT_CGROUP_ID).store(R10, key, R0)
        a.store(R10, key + size, R7, size=4).store_imm(R10, key + size + 4, 0, size=4)
        a.ld_map(R1, breakdown.fd).mov(R2, R10).add_imm(R2, key).call(FN_MAP_LOOKUP_ELEM)
        a.jne_imm(R0, 0, "add")
        # Insert a zero and look up again: when another task inserted the key in
        # between, its element is the one incremented, so neither increment is lost.
        a.store_imm(R10, key - 8, 0)
        a.ld_map(R1, breakdown.fd).mov(R2, R10).add_imm(R2, key).mov(R3, R10).add_imm(R3, key - 8)
        a.mov_imm(R4, BPF_NOEXIST).call(FN_MAP_UPDATE_ELEM)
        a.ld_map(R1, breakdown.fd).mov(R2, R10).add_imm(R2, key).call(FN_MAP_LOOKUP_ELEM)
        a.jeq_imm(R0, 0, "out")  # evicted at once: nothing to add to
        a.label("add").load(R1, R0, 0).add_imm(R1, 1).store(R0, 0, R1)
    a.label("out").mov_imm(R0, 0).exit()
    return bytes(a)


def _read_task_field(a: Asm, task_arg: int, offset: int, stack: int) -> Asm:
    """u32 at ``task + offset`` (task = args[task_arg] of the raw tracepoint) into the stack slot."""
    a.load(R3, R6, 8 * task_arg).add_imm(R3, offset)
    a.mov(R1, R10).add_imm(R1, stack).mov_imm(R2, 4).call(FN_PROBE_READ_KERNEL)
    return a.jne_imm(R0, 0, "out")


def fork_program(pids_fd: int, tgid_offset: int) -> bytes:
    """``sched_process_fork(parent, child)``: a member's child's tgid becomes a member."""
    a = Asm().mov(R6, R1)
    a.call(FN_GET_CURRENT_PID_TGID).rsh_imm(R0, 32).store(R10, -4, R0, size=4)
    a.ld_map(R1, pids_fd).mov(R2, R10).add_imm(R2, -4).call(FN_MAP_LOOKUP_ELEM).jeq_imm(R0, 0, "out")
    _read_task_field(a, 1, tgid_offset, -8)
    a.store_imm(R10, -12, 1, size=4)
    a.ld_map(R1, pids_fd).mov(R2, R10).add_imm(R2, -8).mov(R3, R10).add_imm(R3, -12).mov_imm(R4, 0)
    a.call(FN_MAP_UPDATE_ELEM)
    a.label("out").mov_imm(R0, 0).exit()
    return bytes(a)


def free_program(pids_fd: int, pid_offset: int, tgid_offset: int) -> bytes:
    """``sched_process_free(task)``: a released thread-group leader stops being a member."""
    a = Asm().mov(R6, R1)
    _read_task_field(a, 0, pid_offset, -4)
    _read_task_field(a, 0, tgid_offset, -8)
    a.load(R1, R10, -4, size=4).load(R2, R10, -8, size=4).jne_reg(R1, R2, "out")
    a.ld_map(R1, pids_fd).mov(R2, R10).add_imm(R2, -8).call(FN_MAP_DELETE_ELEM)
    a.label("out").mov_imm(R0, 0).exit()
    return bytes(a)


_PID = re.compile(r"[0-9]{1,10}\Z")


def _pid(text: str, path: str, what: str) -> int:
    if not _PID.match(text):
        raise SourceError(path, f"{what} {text[:20]!r} is not a pid")
    return int(text)


def parse_ppid(text: str, path: str = "/proc/<pid>/stat") -> int:
    """The parent pid from /proc/<pid>/stat (field 4, after the parenthesised comm)."""
    end = text.rfind(")")
    rest = text[end + 1 :].split() if end >= 0 else []
    if len(rest) < 2:
        raise SourceError(path, "no state and ppid after the comm")
    return _pid(rest[1], path, "ppid")


def read_descendants(procfs: Path, pid: int) -> set[int]:
    """``pid``'s descendant processes (tgids) as /proc shows them now; vanished entries are skipped."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir(procfs):
        if not entry.name.isdigit():
            continue
        try:
            ppid = parse_ppid((procfs / entry.name / "stat").read_text())
        except (OSError, ValueError):  # SourceError and UnicodeDecodeError are ValueErrors
            continue  # exited while scanning, or a kernel thread oddity
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def parse_tgid(status: str, path: str = "/proc/<pid>/status") -> int:
    """The thread group (process) id from /proc/<pid>/status."""
    for line in status.splitlines():
        if line.startswith("Tgid:"):
            fields = line.split()
            return _pid(fields[1] if len(fields) > 1 else "", path, "Tgid")
    raise SourceError(path, "no Tgid line")


def read_process(procfs: Path, pid: int) -> None:
    """Checks that ``pid`` is a process (a thread group leader): the filter matches processes, not threads."""
    path = procfs / str(pid) / "status"
    try:
        tgid = parse_tgid(path.read_text(), str(path))
    except FileNotFoundError:
        raise SourceError(str(procfs / str(pid)), f"no process {pid}") from None
    except UnicodeDecodeError:
        raise SourceError(str(path), "not UTF-8") from None
    if tgid != pid:
        raise SourceError(str(procfs / str(pid)), f"{pid} is a thread of process {tgid}: pass {tgid}")


def parse_cgroup2_level(mountinfo: str, path: Path) -> int:
    """The depth of ``path`` in the cgroup2 hierarchy (root = 0), from /proc/self/mountinfo."""
    best: tuple[Path, Path] | None = None
    for root_text, mount_text in _cgroup2_lines(mountinfo):
        root, mount = Path(root_text), Path(mount_text)
        inside = path == mount or mount in path.parents
        if inside and (best is None or len(mount.parts) > len(best[1].parts)):
            best = (root, mount)
    if best is None:
        raise SourceError(
            str(path),
            "not in a cgroup v2 hierarchy (v1 cgroups have no id to filter by); "
            "pass a directory under the cgroup2 mount (here: "
            + (", ".join(_cgroup2_mounts(mountinfo)) or "none mounted")
            + ")",
        )
    root, mount = best
    return len(root.parts) - 1 + len(path.relative_to(mount).parts)


def _cgroup2_lines(mountinfo: str) -> list[tuple[str, str]]:
    """(root, mount point) of each cgroup2 line of a mountinfo (proc(5): fields 4 and 5, then " - " and the type)."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and right.startswith("cgroup2 ") and len(fields) >= 5:
            out.append((fields[3], fields[4]))
    return out


def _cgroup2_mounts(mountinfo: str) -> list[str]:
    return [mount for _, mount in _cgroup2_lines(mountinfo)]


def read_cgroup2_paths(procfs: Path) -> dict[int, str]:
    """{cgroup id: path below the cgroup2 root ("/" for the root)} for every directory of the first cgroup2 mount."""
    mounts = _cgroup2_mounts((procfs / "self" / "mountinfo").read_text())
    if not mounts:
        return {}
    top = Path(mounts[0])
    out: dict[int, str] = {}
    for dirpath, _dirs, _files in os.walk(top):
        with contextlib.suppress(OSError):  # removed while walking
            out[os.stat(dirpath).st_ino] = "/" + Path(dirpath).relative_to(top).as_posix().removeprefix(".")
    return out


def read_cgroup_target(procfs: Path, path: Path) -> CgroupTarget:
    resolved = path.resolve()
    st = os.stat(resolved)  # FileNotFoundError names the path
    level = parse_cgroup2_level((procfs / "self" / "mountinfo").read_text(), resolved)
    return CgroupTarget(st.st_ino, level)


def unavailable_reason(e: OSError, sysfs: Path) -> str:
    """Why bpf(2) refused, and the fix."""
    lockdown = ""
    with contextlib.suppress(OSError):
        lockdown = (sysfs / "kernel" / "security" / "lockdown").read_text()
    if "[confidentiality]" in lockdown:
        return "kernel lockdown (confidentiality) forbids eBPF tracing; boot with lockdown=integrity or none"
    if e.errno in (errno.EPERM, errno.EACCES):
        # File capabilities on a Python entry point are ignored (it is a script), so
        # the capabilities have to come from the parent: ambient ones for a non-root
        # user, or added to a root container whose other capabilities are dropped.
        return (
            f"bpf(2) refused ({os.strerror(e.errno)}): run as root or grant CAP_BPF and CAP_PERFMON "
            "(Linux 5.8+; systemd: AmbientCapabilities=CAP_BPF CAP_PERFMON; shell: setpriv "
            "--inh-caps=+bpf,+perfmon --ambient-caps=+bpf,+perfmon; "
            "container as uid 0: --cap-add BPF --cap-add PERFMON)"
        )
    if e.errno == errno.ENOSYS:
        return "bpf(2) is not available: the kernel needs CONFIG_BPF_SYSCALL"
    return f"eBPF: {e.strerror or e}"


class SyscallCounter:
    """Loaded and attached programs and their maps; ``read()`` sums the counts, ``close()`` releases all."""

    def __init__(self, procfs: Path, sysfs: Path, filt: Filter) -> None:
        self._bpf = Bpf()
        self._fds: list[int] = []
        self._procfs, self._sysfs = procfs, sysfs
        try:
            self._ncpus = possible_cpus(sysfs)
            self._open(filt)
        except BaseException:
            self.close()
            raise

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def _privileged(self, what: str, fn: Callable[..., int], *args: object) -> int:
        """An fd from ``fn``, kept for close(); refusals become BpfUnavailable with the fix."""
        try:
            return self._keep(fn(*args))
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EACCES, errno.ENOSYS):
                raise BpfUnavailable(e.errno, unavailable_reason(e, self._sysfs)) from None
            raise OSError(e.errno, e.strerror, what) from None

    def _load(self, name: str, code: bytes) -> int:
        return self._privileged(f"loading {name}", self._bpf.prog_load, BPF_PROG_TYPE_RAW_TRACEPOINT, code, name)

    def _attach(self, tracepoint: str, prog: int) -> None:
        self._privileged(f"raw tracepoint {tracepoint}", self._bpf.raw_tracepoint_open, tracepoint, prog)

    def _open(self, filt: Filter) -> None:
        bpf = self._bpf
        self._counts = self._privileged(
            "counts map", bpf.map_create, BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, MAX_SYSCALLS, "sysmon_sc_count"
        )
        cgroup = read_cgroup_target(self._procfs, filt.cgroup) if filt.cgroup is not None else None
        pids: int | None = None
        if filt.pid is not None:
            read_process(self._procfs, filt.pid)
            try:
                offsets = read_btf_struct_offsets(self._sysfs, "task_struct", ("pid", "tgid"))
            except FileNotFoundError as e:
                raise SourceError(
                    str(e.filename),
                    "missing: following forks for --syscalls.pid needs kernel BTF (CONFIG_DEBUG_INFO_BTF=y)",
                ) from None
            pids = self._privileged(
                "pid map", bpf.map_create, BPF_MAP_TYPE_HASH, 4, 4, MAX_TRACKED_PROCESSES, "sysmon_sc_pids"
            )
            bpf.update(pids, struct.pack("=I", filt.pid), struct.pack("=I", 1))
            # Fork tracking first, then /proc: a process forked in between is seen by one or both.
            self._attach("sched_process_fork", self._load("sysmon_sc_fork", fork_program(pids, offsets["tgid"])))
            self._attach(
                "sched_process_free", self._load("sysmon_sc_free", free_program(pids, offsets["pid"], offsets["tgid"]))
            )
            for child in read_descendants(self._procfs, filt.pid):
                bpf.update(pids, struct.pack("=I", child), struct.pack("=I", 1))
        self._pids = pids
        self._breakdown: BreakdownMap | None = None
        if filt.by is not None:
            if filt.by not in BY_LABEL_SIZE:
                raise ValueError(f"cannot break syscalls down by {filt.by!r}")
            fd = self._privileged(
                "breakdown map",
                bpf.map_create,
                BPF_MAP_TYPE_LRU_PERCPU_HASH,
                BY_LABEL_SIZE[filt.by] + 8,
                8,
                MAX_BREAKDOWN_ENTRIES,
                "sysmon_sc_by",
            )
            self._breakdown = BreakdownMap(fd, filt.by)
        self._cgroup_paths: dict[int, str] = {}
        self._by_seen: dict[bytes, int] = {}  # breakdown key -> its running value at the previous read
        exclude = self._own_tgid() if filt.exclude_self else None
        code = count_program(self._counts, exclude, pids, cgroup, self._breakdown)
        self._attach("sys_enter", self._load("sysmon_sc_enter", code))

    def _own_tgid(self) -> int:
        """This process's tgid in the kernel's (initial) pid namespace."""
        fd = self._load("sysmon_sc_self", bytes(Asm().call(FN_GET_CURRENT_PID_TGID).rsh_imm(R0, 32).exit()))
        try:
            return self._bpf.test_run(fd)
        except OSError as e:
            hint = "needs Linux 5.10+; or count the exporter too with include-self"
            raise OSError(e.errno, f"{e.strerror} ({hint})", "finding the exporter's own tgid") from None
        finally:
            self._fds.remove(fd)
            os.close(fd)

    def tracked_processes(self) -> set[int]:
        """The tgids the process-tree filter currently counts (empty without one)."""
        if self._pids is None:
            return set()
        return {struct.unpack("=I", k)[0] for k in self._bpf.keys(self._pids, 4)}

    def read(self) -> dict[int, int]:
        """{syscall number: count since attach, summed over CPUs} for every number seen at least once."""
        out: dict[int, int] = {}
        for key, value in self._bpf.lookup_all(self._counts, 4, 8 * self._ncpus, MAX_SYSCALLS):
            total = sum(struct.unpack(f"={self._ncpus}Q", value))
            if total:
                out[struct.unpack("=I", key)[0]] = total
        return out

    def read_by(self) -> dict[tuple[str, int], int]:
        """{(comm or cgroup path, syscall number): count since the last call}; empty without a breakdown."""
        b = self._breakdown
        if b is None:
            return {}
        values = {
            key: sum(struct.unpack(f"={self._ncpus}Q", value))
            for key, value in self._bpf.lookup_all(b.fd, b.label_size + 8, 8 * self._ncpus, MAX_BREAKDOWN_ENTRIES)
        }
        out: dict[tuple[str, int], int] = {}
        for key, n in values.items():
            before = self._by_seen.get(key, 0)
            added = n - before if n >= before else n  # smaller: evicted, then inserted again
            if added:
                label = self._label(b.by, key[: b.label_size])
                nr = struct.unpack_from("=I", key, b.label_size)[0]
                out[(label, nr)] = out.get((label, nr), 0) + added
        self._by_seen = values
        return out

    def _label(self, by: str, raw: bytes) -> str:
        if by == "comm":
            return raw.split(b"\0", 1)[0].decode(errors="replace")
        cgroup_id = struct.unpack("=Q", raw)[0]
        if cgroup_id not in self._cgroup_paths:
            self._cgroup_paths = read_cgroup2_paths(self._procfs)
        return self._cgroup_paths.get(cgroup_id, f"id:{cgroup_id}")

    def close(self) -> None:
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds.clear()


def names(counts: Mapping[int, int], machine: str) -> dict[str, int]:
    """{syscall name: count} from {number: count}."""
    return {syscall_name(nr, machine): n for nr, n in sorted(counts.items())}

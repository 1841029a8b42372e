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
- containers: a hash of cgroup v2 ids, each mapped to the id of the container
  cgroup it is or is below, looked up with ``bpf_get_current_cgroup_id()``
  (4.18). Userspace fills it from a walk of the cgroup2 hierarchy before
  attaching and again before every read (:meth:`SyscallCounter.refresh_containers`),
  recognising containers as ``sysmon_cgroup_info`` does
  (:func:`exporter.sources.cgroup.container_identity`), and deletes the ids of
  removed cgroups. A container created between two reads is counted from the
  second.
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
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter.sources import SourceError, read_small
from exporter.sources.bpf import (
    BPF_NOEXIST,
    FP,
    R0,
    R1,
    R2,
    R3,
    R4,
    R6,
    R7,
    R8,
    Asm,
    Bpf,
    BpfUnavailable,
    Helper,
    MapType,
    ProgType,
    possible_cpus,
    read_btf_struct_offsets,
)
from exporter.sources.cgroup import container_identity
from exporter.sources.mountinfo import MountInfo, read_mountinfo
from exporter.sources.pid_stat import read_descendants
from exporter.sources.pid_status import read_pid_status
from exporter.sources.syscall_names import NAMES

MAX_SYSCALLS = 1024
MAX_TRACKED_PROCESSES = 65536
MAX_CONTAINER_CGROUPS = 65536


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
    containers: bool = False  # only tasks in cgroups that container_identity() names a container


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


def _map_call(a: Asm, helper: Helper, map_fd: int, key: int) -> Asm:
    """``r0 = helper(map, fp + key)``: lookup or delete of the key stored at ``key`` below the frame pointer."""
    a.ld_map(R1, map_fd)
    a.mov(R2, FP)
    a.add_imm(R2, key)
    return a.call(helper)


def _map_update(a: Asm, map_fd: int, key: int, value: int, flags: int) -> Asm:
    """``r0 = bpf_map_update_elem(map, fp + key, fp + value, flags)``."""
    a.ld_map(R1, map_fd)
    a.mov(R2, FP)
    a.add_imm(R2, key)
    a.mov(R3, FP)
    a.add_imm(R3, value)
    a.mov_imm(R4, flags)
    return a.call(Helper.MAP_UPDATE_ELEM)


def _increment(a: Asm) -> Asm:
    """``*(u64 *)r0 += 1``: r0 points at this CPU's value of a per-CPU map, so no atomic is needed."""
    a.load(R1, R0, 0)
    a.add_imm(R1, 1)
    return a.store(R0, 0, R1)


def _return_zero(a: Asm) -> Asm:
    a.comment("out: return 0")
    a.label("out")
    a.mov_imm(R0, 0)
    return a.exit()


def count_program(
    counts_fd: int,
    exclude_tgid: int | None,
    pids_fd: int | None,
    cgroup: CgroupTarget | None,
    breakdown: BreakdownMap | None = None,
    containers_fd: int | None = None,
) -> Asm:
    """``sys_enter``: skip unless the filters match, then add 1 to this CPU's slot for the syscall number.

    With a breakdown, also add 1 to this CPU's value for (comm or cgroup id, number).
    With ``containers_fd`` (a hash of cgroup v2 id -> the id of the container cgroup
    it is, or is below), only tasks whose cgroup is a key count, and a cgroup
    breakdown labels them with the container's cgroup.
    Stack: fp-4 the u32 number (counts key), fp-8 the u32 tgid (pids key), fp-16
    the u64 cgroup id (containers key); the breakdown key (label, u32 number, u32
    padding) below fp-8 once those are used, its zero value below that.
    """
    a = Asm()
    a.comment("r6 = ctx (struct bpf_raw_tracepoint_args *), kept across calls")
    a.mov(R6, R1)
    if exclude_tgid is not None or pids_fd is not None:
        a.comment("r0 = tgid")
        a.call(Helper.GET_CURRENT_PID_TGID)
        a.rsh_imm(R0, 32)
        if exclude_tgid is not None:
            a.comment("the exporter itself: not counted")
            a.jeq_imm(R0, exclude_tgid, "out")
        if pids_fd is not None:
            a.comment("not in the process tree: not counted")
            a.store(FP, -8, R0, size=4)
            _map_call(a, Helper.MAP_LOOKUP_ELEM, pids_fd, -8)
            a.jeq_imm(R0, 0, "out")
    if cgroup is not None:
        a.comment(f"not below the cgroup (its ancestor at level {cgroup.level} is another): not counted")
        a.mov_imm(R1, cgroup.level)
        a.call(Helper.GET_CURRENT_ANCESTOR_CGROUP_ID)
        a.ld_imm64(R1, cgroup.id)
        a.jne_reg(R0, R1, "out")
    if containers_fd is not None:
        a.comment("the task's cgroup is no container's: not counted; r8 = the container's cgroup id")
        a.call(Helper.GET_CURRENT_CGROUP_ID)
        a.store(FP, -16, R0)
        _map_call(a, Helper.MAP_LOOKUP_ELEM, containers_fd, -16)
        a.jeq_imm(R0, 0, "out")
        a.load(R8, R0, 0)
    a.comment("r7 = args[1], the syscall number; numbers past the table are not counted")
    a.load(R7, R6, 8)
    a.jge_imm(R7, MAX_SYSCALLS, "out")
    a.comment("counts[r7] += 1")
    a.store(FP, -4, R7, size=4)
    _map_call(a, Helper.MAP_LOOKUP_ELEM, counts_fd, -4)
    a.jeq_imm(R0, 0, "out")
    _increment(a)
    if breakdown is not None:
        size = breakdown.label_size
        key = -8 - size - 8  # label, then u32 number and u32 padding
        if breakdown.by == "comm":
            a.comment("key = {comm, number, 0}")
            a.mov(R1, FP)
            a.add_imm(R1, key)
            a.mov_imm(R2, size)
            a.call(Helper.GET_CURRENT_COMM)
        elif containers_fd is not None:
            a.comment("key = {the container's cgroup id, number, 0}")
            a.store(FP, key, R8)
        else:
            a.comment("key = {cgroup id, number, 0}")
            a.call(Helper.GET_CURRENT_CGROUP_ID)
            a.store(FP, key, R0)
        a.store(FP, key + size, R7, size=4)
        a.store_imm(FP, key + size + 4, 0, size=4)
        a.comment("by[key] += 1 when the key is there")
        _map_call(a, Helper.MAP_LOOKUP_ELEM, breakdown.fd, key)
        a.jne_imm(R0, 0, "add")
        # Insert a zero and look up again: when another task inserted the key in
        # between, its element is the one incremented, so neither increment is lost.
        a.comment("else insert 0 (unless another CPU just did), look up again and add 1")
        a.store_imm(FP, key - 8, 0)
        _map_update(a, breakdown.fd, key, key - 8, BPF_NOEXIST)
        _map_call(a, Helper.MAP_LOOKUP_ELEM, breakdown.fd, key)
        a.jeq_imm(R0, 0, "out")  # evicted at once: nothing to add to
        a.comment("add: by[key] += 1")
        a.label("add")
        _increment(a)
    return _return_zero(a)


def _read_task_field(a: Asm, task_arg: int, offset: int, stack: int) -> Asm:
    """u32 at ``task + offset`` (task = args[task_arg] of the raw tracepoint) into the stack slot."""
    a.comment(f"*(u32 *)(fp {stack:+d}) = args[{task_arg}]->(u32 at +{offset}), or out on a fault")
    a.load(R3, R6, 8 * task_arg)
    a.add_imm(R3, offset)
    a.mov(R1, FP)
    a.add_imm(R1, stack)
    a.mov_imm(R2, 4)
    a.call(Helper.PROBE_READ_KERNEL)
    return a.jne_imm(R0, 0, "out")


def fork_program(pids_fd: int, tgid_offset: int) -> Asm:
    """``sched_process_fork(parent, child)``: a member's child's tgid becomes a member."""
    a = Asm()
    a.comment("r6 = ctx")
    a.mov(R6, R1)
    a.comment("the forking task is not in the process tree: nothing to do")
    a.call(Helper.GET_CURRENT_PID_TGID)
    a.rsh_imm(R0, 32)
    a.store(FP, -4, R0, size=4)
    _map_call(a, Helper.MAP_LOOKUP_ELEM, pids_fd, -4)
    a.jeq_imm(R0, 0, "out")
    _read_task_field(a, 1, tgid_offset, -8)
    a.comment("pids[child tgid] = 1")
    a.store_imm(FP, -12, 1, size=4)
    _map_update(a, pids_fd, -8, -12, 0)
    return _return_zero(a)


def free_program(pids_fd: int, pid_offset: int, tgid_offset: int) -> Asm:
    """``sched_process_free(task)``: a released thread-group leader stops being a member."""
    a = Asm()
    a.comment("r6 = ctx")
    a.mov(R6, R1)
    _read_task_field(a, 0, pid_offset, -4)
    _read_task_field(a, 0, tgid_offset, -8)
    a.comment("a thread (pid != tgid): its process lives on")
    a.load(R1, FP, -4, size=4)
    a.load(R2, FP, -8, size=4)
    a.jne_reg(R1, R2, "out")
    a.comment("delete pids[tgid]")
    _map_call(a, Helper.MAP_DELETE_ELEM, pids_fd, -8)
    return _return_zero(a)


def own_tgid_program() -> Asm:
    """Returns the caller's tgid: run once with BPF_PROG_TEST_RUN, in the exporter's context."""
    a = Asm()
    a.comment("return tgid")
    a.call(Helper.GET_CURRENT_PID_TGID)
    a.rsh_imm(R0, 32)
    return a.exit()


def read_process(procfs: Path, pid: int) -> None:
    """Checks that ``pid`` is a process (a thread group leader): the filter matches processes, not threads."""
    try:
        tgid = read_pid_status(procfs, pid).tgid
    except FileNotFoundError:
        raise SourceError(str(procfs / str(pid)), f"no process {pid}") from None
    if tgid != pid:
        raise SourceError(str(procfs / str(pid)), f"{pid} is a thread of process {tgid}: pass {tgid}")


def _cgroup2_mount_points(mounts: Sequence[MountInfo]) -> list[str]:
    return [m.mount_point for m in mounts if m.fstype == "cgroup2"]


def cgroup2_level(mounts: Sequence[MountInfo], path: Path) -> int:
    """The depth of ``path`` in the cgroup2 hierarchy (root = 0), from /proc/self/mountinfo."""
    best: tuple[Path, Path] | None = None
    for m in mounts:
        if m.fstype != "cgroup2":
            continue
        root, mount = Path(m.root), Path(m.mount_point)
        inside = path == mount or mount in path.parents
        if inside and (best is None or len(mount.parts) > len(best[1].parts)):
            best = (root, mount)
    if best is None:
        raise SourceError(
            str(path),
            "not in a cgroup v2 hierarchy (v1 cgroups have no id to filter by); "
            "pass a directory under the cgroup2 mount (here: "
            + (", ".join(_cgroup2_mount_points(mounts)) or "none mounted")
            + ")",
        )
    root, mount = best
    return len(root.parts) - 1 + len(path.relative_to(mount).parts)


def read_cgroup2_paths(procfs: Path) -> dict[int, str]:
    """{cgroup id: path below the cgroup2 root ("/" for the root)} for every directory of the first cgroup2 mount."""
    mounts = _cgroup2_mount_points(read_mountinfo(procfs))
    if not mounts:
        return {}
    top = Path(mounts[0])
    out: dict[int, str] = {}
    for dirpath, _dirs, _files in os.walk(top):
        with contextlib.suppress(OSError):  # removed while walking
            out[os.stat(dirpath).st_ino] = "/" + Path(dirpath).relative_to(top).as_posix().removeprefix(".")
    return out


def container_cgroups(paths: Mapping[int, str]) -> dict[int, int]:
    """{cgroup id: the id of its container's cgroup} for every cgroup that is a container's or below one.

    ``paths`` is :func:`read_cgroup2_paths`. A cgroup is a container's when
    :func:`exporter.sources.cgroup.container_identity` (the recogniser behind
    ``sysmon_cgroup_info``) finds a container id in its path and its parent's
    path holds another one (or none); below it, a cgroup belongs to the same
    container.
    """
    ids = {path: cid for cid, path in paths.items()}
    out: dict[int, int] = {}
    for path in sorted(paths.values(), key=lambda p: p.count("/")):
        identity = container_identity(path)
        if identity is None or not identity[1]:
            continue
        parent = path.rsplit("/", 1)[0] or "/"
        parent_identity = container_identity(parent)
        cid = ids[path]
        if parent_identity is not None and parent_identity[1] == identity[1] and ids.get(parent) in out:
            out[cid] = out[ids[parent]]
        else:
            out[cid] = cid
    return out


def read_cgroup_target(procfs: Path, path: Path) -> CgroupTarget:
    resolved = path.resolve()
    st = os.stat(resolved)  # FileNotFoundError names the path
    return CgroupTarget(st.st_ino, cgroup2_level(read_mountinfo(procfs), resolved))


def unavailable_reason(e: OSError, sysfs: Path) -> str:
    """Why bpf(2) refused, and the fix."""
    lockdown = ""
    with contextlib.suppress(OSError, SourceError):
        lockdown = read_small(sysfs / "kernel" / "security" / "lockdown")
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

    def _load(self, name: str, code: Asm) -> int:
        return self._privileged(f"loading {name}", self._bpf.prog_load, ProgType.RAW_TRACEPOINT, bytes(code), name)

    def _attach(self, tracepoint: str, prog: int) -> None:
        self._privileged(f"raw tracepoint {tracepoint}", self._bpf.raw_tracepoint_open, tracepoint, prog)

    def _open(self, filt: Filter) -> None:
        bpf = self._bpf
        self._counts = self._privileged(
            "counts map", bpf.map_create, MapType.PERCPU_ARRAY, 4, 8, MAX_SYSCALLS, "sysmon_sc_count"
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
                "pid map", bpf.map_create, MapType.HASH, 4, 4, MAX_TRACKED_PROCESSES, "sysmon_sc_pids"
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
                MapType.LRU_PERCPU_HASH,
                BY_LABEL_SIZE[filt.by] + 8,
                8,
                MAX_BREAKDOWN_ENTRIES,
                "sysmon_sc_by",
            )
            self._breakdown = BreakdownMap(fd, filt.by)
        self._cgroup_paths: dict[int, str] = {}
        self._by_seen: dict[bytes, int] = {}  # breakdown key -> its running value at the previous read
        self._containers: int | None = None
        self._in_map: dict[int, int] = {}  # what the containers map holds: cgroup id -> container cgroup id
        if filt.containers:
            self._containers = self._privileged(
                "containers map", bpf.map_create, MapType.HASH, 8, 8, MAX_CONTAINER_CGROUPS, "sysmon_sc_ctrs"
            )
            self.refresh_containers()  # before attaching: the containers there now count from the start
        exclude = self._own_tgid() if filt.exclude_self else None
        code = count_program(self._counts, exclude, pids, cgroup, self._breakdown, self._containers)
        self._attach("sys_enter", self._load("sysmon_sc_enter", code))

    def _own_tgid(self) -> int:
        """This process's tgid in the kernel's (initial) pid namespace."""
        fd = self._load("sysmon_sc_self", own_tgid_program())
        try:
            return self._bpf.test_run(fd)
        except OSError as e:
            hint = "needs Linux 5.10+; or count the exporter too with include-self"
            raise OSError(e.errno, f"{e.strerror} ({hint})", "finding the exporter's own tgid") from None
        finally:
            self._fds.remove(fd)
            os.close(fd)

    def refresh_containers(self) -> None:
        """Walk the cgroup2 hierarchy and make the containers map hold exactly its container cgroups.

        New ones are added, removed ones deleted. Beyond MAX_CONTAINER_CGROUPS
        cgroups (the map's size) the rest are not counted until others go.
        """
        if self._containers is None:
            return
        self._cgroup_paths = read_cgroup2_paths(self._procfs)
        wanted = container_cgroups(self._cgroup_paths)
        for cid in [c for c in self._in_map if c not in wanted]:
            with contextlib.suppress(FileNotFoundError):
                self._bpf.delete(self._containers, struct.pack("=Q", cid))
            del self._in_map[cid]
        for cid, container in wanted.items():
            if self._in_map.get(cid) == container:
                continue
            if cid not in self._in_map and len(self._in_map) >= MAX_CONTAINER_CGROUPS:
                break
            self._bpf.update(self._containers, struct.pack("=Q", cid), struct.pack("=Q", container))
            self._in_map[cid] = container

    def tracked_containers(self) -> dict[int, int]:
        """What the containers map holds, read back from the kernel: {cgroup id: container cgroup id}."""
        if self._containers is None:
            return {}
        return {
            struct.unpack("=Q", k)[0]: struct.unpack("=Q", v)[0]
            for k, v in self._bpf.lookup_all(self._containers, 8, 8, MAX_CONTAINER_CGROUPS)
        }

    def tracked_processes(self) -> set[int]:
        """The tgids the process-tree filter currently counts (empty without one)."""
        if self._pids is None:
            return set()
        return {struct.unpack("=I", k)[0] for k in self._bpf.keys(self._pids, 4)}

    def read(self) -> dict[int, int]:
        """{syscall number: count since attach, summed over CPUs} for every number seen at least once.

        With the container filter, the containers map is brought up to date first (each sample's walk).
        """
        self.refresh_containers()
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

import ctypes
import errno
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.sources import SourceError
from exporter.sources.bpf import Bpf, MapType, ProgType, insn
from exporter.sources.mountinfo import parse_mountinfo
from exporter.sources.syscalls import (
    BreakdownMap,
    CgroupTarget,
    Filter,
    SyscallCounter,
    cgroup2_level,
    container_cgroups,
    count_program,
    fork_program,
    free_program,
    own_tgid_program,
    read_process,
    syscall_name,
    unavailable_reason,
)
from tests.helpers import require_root, wait_until

BUSY_CALLS = 300_000


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("Name:\tpython3\nTgid:\t4242\nNgid:\t0\nPid:\t4242\n", None),
        ("Name:\tpython3\nTgid:\t4000\nNgid:\t0\nPid:\t4242\n", "4242 is a thread of process 4000: pass 4000"),
        (None, "no process 4242"),
        ("Name:\tpython3\n", "no Tgid line"),
    ],
    ids=["process", "thread", "gone", "malformed"],
)
def test_pid_filter_takes_processes_not_threads(tmp_path, status, error):
    if status is not None:
        (tmp_path / "4242").mkdir()
        (tmp_path / "4242" / "status").write_text(status)
    if error is None:
        read_process(tmp_path, 4242)
        return
    with pytest.raises(SourceError, match=error):
        read_process(tmp_path, 4242)


HYBRID = textwrap.dedent(
    """\
    25 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
    31 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:10 - cgroup2 cgroup2 rw
    42 31 0:39 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
    """
)
PURE_V2_IN_CGROUPNS = "30 25 0:27 /kubepods/pod1 /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


@pytest.mark.parametrize(
    ("mountinfo", "path", "level"),
    [
        (HYBRID, "/sys/fs/cgroup/unified", 0),
        (HYBRID, "/sys/fs/cgroup/unified/a", 1),
        (HYBRID, "/sys/fs/cgroup/unified/a/b/c", 3),
        (PURE_V2_IN_CGROUPNS, "/sys/fs/cgroup/app", 3),
    ],
    ids=["root", "child", "grandchild", "mount-root-below-hierarchy-root"],
)
def test_cgroup2_level(mountinfo, path, level):
    assert cgroup2_level(parse_mountinfo(mountinfo), Path(path)) == level


def test_cgroup_v1_path_is_refused_naming_the_v2_mount():
    with pytest.raises(SourceError, match=r"not in a cgroup v2 hierarchy.*/sys/fs/cgroup/unified"):
        cgroup2_level(parse_mountinfo(HYBRID), Path("/sys/fs/cgroup/memory/app"))


@pytest.mark.parametrize(
    ("nr", "machine", "name"),
    [(0, "x86_64", "read"), (110, "x86_64", "getppid"), (173, "aarch64", "getppid"), (63, "aarch64", "read")],
)
def test_syscall_names(nr, machine, name):
    assert syscall_name(nr, machine) == name


def test_numbers_without_a_name_stay_distinct():
    assert syscall_name(1000, "x86_64") == "unknown_1000"
    assert syscall_name(0, "riscv64") == "unknown_0"


def _insns(code: bytes) -> list[bytes]:
    return [code[i : i + 8] for i in range(0, len(code), 8)]


def test_count_program_filters_only_what_is_asked():
    plain = _insns(bytes(count_program(3, None, None, None)))
    assert insn(0x85, imm=14) not in plain  # no bpf_get_current_pid_tgid without a pid test
    self_excluded = _insns(bytes(count_program(3, 4242, None, None)))
    out = len(self_excluded) - 2  # r0 = 0; exit
    assert self_excluded[3] == insn(0x15, 0, 0, out - 3 - 1, 4242)  # if tgid == 4242 goto out
    cgroup = _insns(bytes(count_program(3, None, None, CgroupTarget(id=99, level=2))))
    assert insn(0xB7, 1, imm=2) in cgroup and insn(0x85, imm=123) in cgroup


@pytest.mark.live
def test_every_program_variant_passes_the_verifier():
    require_root()
    bpf = Bpf()
    fds = [bpf.map_create(MapType.PERCPU_ARRAY, 4, 8, 1024, "t_counts")]
    fds.append(bpf.map_create(MapType.HASH, 4, 4, 16, "t_pids"))
    fds.append(bpf.map_create(MapType.LRU_PERCPU_HASH, 24, 8, 16, "t_by_comm"))
    fds.append(bpf.map_create(MapType.LRU_PERCPU_HASH, 16, 8, 16, "t_by_cgroup"))
    counts, pids, by_comm, by_cgroup = fds
    try:
        for code in (
            count_program(counts, None, None, None),
            count_program(counts, os.getpid(), pids, CgroupTarget(1, 0)),
            count_program(counts, None, None, None, BreakdownMap(by_comm, "comm")),
            count_program(counts, os.getpid(), None, None, BreakdownMap(by_cgroup, "cgroup")),
            fork_program(pids, 100),
            free_program(pids, 100, 104),
            count_program(counts, os.getpid(), pids, CgroupTarget(1, 0), BreakdownMap(by_comm, "comm")),
            own_tgid_program(),
        ):
            fds.append(bpf.prog_load(ProgType.RAW_TRACEPOINT, bytes(code), "t_prog"))
    finally:
        for fd in fds:
            os.close(fd)


BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 11, 13, 15


def loaded_programs(bpf: Bpf) -> dict[int, str]:
    """{id: name} of every BPF program loaded on this machine."""
    out: dict[int, str] = {}
    prog_id = 0
    while True:
        attr = ctypes.create_string_buffer(12)
        struct.pack_into("=I", attr, 0, prog_id)
        try:
            bpf.call(BPF_PROG_GET_NEXT_ID, attr)
        except OSError as e:
            assert e.errno == errno.ENOENT
            return out
        prog_id = struct.unpack_from("=I", attr, 4)[0]
        try:
            fd = bpf.call(BPF_PROG_GET_FD_BY_ID, ctypes.create_string_buffer(struct.pack("=I", prog_id), 12))
        except OSError:
            continue  # unloaded meanwhile
        try:
            info = ctypes.create_string_buffer(80)
            query = ctypes.create_string_buffer(16)
            struct.pack_into("=IIQ", query, 0, fd, len(info), ctypes.addressof(info))
            bpf.call(BPF_OBJ_GET_INFO_BY_FD, query)
            out[prog_id] = info.raw[64:80].split(b"\0", 1)[0].decode()
        finally:
            os.close(fd)


@pytest.mark.live
def test_close_unloads_every_program(tmp_path):
    require_root()
    bpf = Bpf()
    before = loaded_programs(bpf)
    counter = SyscallCounter(Path("/proc"), Path("/sys"), Filter(pid=os.getpid(), by="comm"))
    ours = {i: n for i, n in loaded_programs(bpf).items() if i not in before and n.startswith("sysmon_sc_")}
    counter.close()
    assert sorted(ours.values()) == ["sysmon_sc_enter", "sysmon_sc_fork", "sysmon_sc_free"]
    wait_until(lambda: not ours.keys() & loaded_programs(bpf).keys(), what="the programs to be unloaded")


@pytest.mark.parametrize(
    ("err", "lockdown", "needle"),
    [
        (errno.EPERM, "[none] integrity confidentiality\n", "run as root or grant CAP_BPF and CAP_PERFMON"),
        (errno.EPERM, "none integrity [confidentiality]\n", "kernel lockdown (confidentiality)"),
        (errno.ENOSYS, None, "CONFIG_BPF_SYSCALL"),
    ],
    ids=["not-permitted", "lockdown", "no-bpf-syscall"],
)
def test_unavailable_reason_says_how_to_fix(tmp_path, err, lockdown, needle):
    if lockdown is not None:
        (tmp_path / "kernel" / "security").mkdir(parents=True)
        (tmp_path / "kernel" / "security" / "lockdown").write_text(lockdown)
    assert needle in unavailable_reason(OSError(err, os.strerror(err)), tmp_path)


@pytest.mark.live
def test_tree_follows_forks_and_forgets_released_processes():
    require_root()
    code = textwrap.dedent(
        """\
        import os, sys
        sys.stdin.readline()
        pid = os.fork()
        if pid == 0:
            sys.stdin.readline()
            os._exit(0)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    counter = SyscallCounter(Path("/proc"), Path("/sys"), Filter(pid=worker.pid))
    try:
        assert counter.tracked_processes() == {worker.pid}
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(b"fork\n")
        worker.stdin.flush()
        child = int(worker.stdout.readline())
        assert counter.tracked_processes() == {worker.pid, child}
        worker.stdin.write(b"exit\n")
        worker.stdin.close()
        assert worker.wait(timeout=30) == 0
        wait_until(lambda: counter.tracked_processes() == set(), what="both processes to be released")
    finally:
        counter.close()
        worker.kill()
        worker.wait()


@pytest.mark.live
def test_breakdown_loses_nothing_while_read_in_a_tight_loop():
    """The per-label increments add up exactly while the program writes and userspace reads concurrently."""
    require_root()
    code = textwrap.dedent(
        f"""\
        import ctypes, os, sys
        ctypes.CDLL(None).prctl(15, b"sysmon-by-test", 0, 0, 0)  # PR_SET_NAME
        sys.stdin.readline()
        for _ in range({BUSY_CALLS}):
            os.getppid()
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    counter = SyscallCounter(Path("/proc"), Path("/sys"), Filter(pid=worker.pid, by="comm"))
    getppid = {"x86_64": 110, "aarch64": 173}[os.uname().machine]
    total = reads = 0
    try:
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        worker.stdin.close()
        finished = False
        while not finished:
            finished = worker.poll() is not None
            total += counter.read_by().get(("sysmon-by-test", getppid), 0)
            reads += 1
    finally:
        counter.close()
        worker.kill()
        worker.wait()
    assert reads > 10  # the reads really overlapped the calls
    assert total == BUSY_CALLS


@pytest.mark.live
@pytest.mark.parametrize(
    ("filt", "error"),
    [
        (Filter(pid=2**22 + 1), SourceError),  # after the counts map
        (Filter(cgroup=Path("/tmp")), SourceError),  # not a cgroup v2 directory
        (Filter(pid=os.getpid(), by="pid"), ValueError),  # after the pid map and the fork/free programs
    ],
    ids=["no-such-process", "not-cgroup2", "bad-breakdown"],
)
def test_a_failed_start_releases_every_fd_it_opened(filt, error):
    require_root()
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(error):
        SyscallCounter(Path("/proc"), Path("/sys"), filt)
    assert set(os.listdir("/proc/self/fd")) == before


DOCKER = "docker-" + "a" * 64 + ".scope"
POD = "kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice"
CRI = "cri-containerd-" + "b" * 64 + ".scope"


def test_container_cgroups_are_what_cgroup_info_calls_containers_and_what_is_below_them():
    paths = {
        1: "/",
        2: "/system.slice",
        3: f"/system.slice/{DOCKER}",
        4: f"/system.slice/{DOCKER}/init",  # a cgroup inside the container: counted as the container
        5: "/kubepods.slice",
        6: f"/kubepods.slice/{POD}",  # a pod without a container id: not a container
        7: f"/kubepods.slice/{POD}/{CRI}",
        8: "/docker/" + "c" * 64,  # cgroupfs driver
        9: "/user.slice/sshd.scope",
        10: "/" + "d" * 63,  # one hex digit short
    }
    assert container_cgroups(paths) == {3: 3, 4: 3, 7: 7, 8: 8}


def test_a_container_inside_a_container_is_its_own():
    outer, inner = "docker-" + "a" * 64 + ".scope", "docker-" + "e" * 64 + ".scope"
    paths = {1: "/", 2: f"/{outer}", 3: f"/{outer}/{inner}", 4: f"/{outer}/{inner}/x"}
    assert container_cgroups(paths) == {2: 2, 3: 3, 4: 3}

"""Syscall counts from this machine's kernel: the real exporter and the real ``syscalls`` command.

A worker process waits on stdin until the counters are attached, then calls
getppid(2) 100,000 times and sched_getscheduler(2) an exact number of times,
and forks a child that calls sched_getscheduler(2) again a known number of
times. A decoy outside the filter makes the same calls and sched_getparam(2),
which nothing in the filtered set makes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.sources.syscalls import Filter, SyscallCounter, container_cgroups, read_cgroup2_paths
from tests.helpers import ROOT, free_port, http_get, parse_exposition, require_root, run_exporter, wait_until

pytestmark = pytest.mark.live

CHEAP_CALLS = 100_000
RARE_CALLS = 37
CHILD_RARE_CALLS = 11
DECOY_CALLS = 500
CGROUP2 = Path("/sys/fs/cgroup/unified")

WORKER = f"""
import ctypes, os, sys
prctl = ctypes.CDLL(None).prctl
prctl(15, b"sysmon-worker", 0, 0, 0)  # PR_SET_NAME: the comm label
sys.stdin.readline()
for _ in range({CHEAP_CALLS}):
    os.getppid()
for _ in range({RARE_CALLS}):
    os.sched_getscheduler(0)
pid = os.fork()
if pid == 0:
    prctl(15, b"sysmon-child", 0, 0, 0)
    for _ in range({CHILD_RARE_CALLS}):
        os.sched_getscheduler(0)
    os._exit(0)
os.waitpid(pid, 0)
"""

DECOY = f"""
import os
for _ in range({DECOY_CALLS}):
    os.getppid()
    os.sched_getscheduler(0)
    os.sched_getparam(0)
"""


def require_bpf() -> None:
    require_root()
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("the process-tree filter needs kernel BTF (CONFIG_DEBUG_INFO_BTF)")


def syscalls_of(metrics: str | dict) -> dict[str, float]:  # type: ignore[type-arg]
    """{syscall: count} summed over any extra label."""
    series = parse_exposition(metrics).get("sysmon_syscalls_total", {}) if isinstance(metrics, str) else metrics
    out: dict[str, float] = {}
    for labels, value in series.items():
        name = dict(labels)["syscall"]
        out[name] = out.get(name, 0.0) + value
    return out


def source_success(exp) -> float:  # type: ignore[no-untyped-def]
    """sysmon_source_success{source="syscalls"} once the syscalls step has run."""
    key = (("source", "syscalls"),)
    wait_until(lambda: key in parse_exposition(exp.metrics())["sysmon_source_success"], what="the syscalls step")
    return parse_exposition(exp.metrics())["sysmon_source_success"][key]


def start_worker(preexec=None) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, preexec_fn=preexec)


def release_and_run_decoy(worker: subprocess.Popen[bytes]) -> None:
    """Lets the worker go, runs the decoy alongside, and waits for both."""
    assert worker.stdin is not None
    worker.stdin.write(b"go\n")
    worker.stdin.close()
    decoy = subprocess.run([sys.executable, "-c", DECOY], timeout=60)
    assert decoy.returncode == 0
    assert worker.wait(timeout=60) == 0


def next_sample(metrics: Callable[[], str]) -> str:
    """The exposition of a sample taken after this call."""

    def stamp() -> float:
        return parse_exposition(metrics())["sysmon_last_sample_timestamp_seconds"][()]

    first = stamp()
    wait_until(lambda: stamp() > first, what="one more sample")
    return metrics()


def settled(exp, expected_rare: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The counts once the worker's calls are in, read from one more sample after that."""
    wait_until(
        lambda: syscalls_of(exp.metrics()).get("sched_getscheduler", 0) >= expected_rare,
        what="the worker's syscalls to be counted",
    )
    return syscalls_of(next_sample(exp.metrics))


def assert_only_the_worker(counts: dict[str, float]) -> None:
    assert counts["getppid"] >= CHEAP_CALLS
    assert counts["sched_getscheduler"] == RARE_CALLS + CHILD_RARE_CALLS  # the decoy's 500 are not there
    assert "sched_getparam" not in counts  # only the decoy makes it


@contextlib.contextmanager
def cgroup2(name: str) -> Iterator[Path]:
    if not (CGROUP2 / "cgroup.procs").exists():
        pytest.skip(f"no cgroup2 hierarchy at {CGROUP2}")
    path = CGROUP2 / f"{name}-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        remove_cgroup(path)


def remove_cgroup(path: Path) -> None:
    """Moves what is left in ``path`` to the root cgroup, then removes it."""
    with contextlib.suppress(OSError):
        for pid in (path / "cgroup.procs").read_text().split():
            (CGROUP2 / "cgroup.procs").write_text(pid)
    wait_until(lambda: not (path / "cgroup.procs").read_text().strip(), what=f"{path} to empty")
    path.rmdir()


def join_cgroup(path: Path):  # type: ignore[no-untyped-def]
    def preexec() -> None:
        (path / "cgroup.procs").write_text("0")

    return preexec


def count_worker(tmp_path: Path, filter_flag: str, preexec=None, extra=(), wrapper=()) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The exporter's counts for the worker (and its child) under ``filter_flag``, with the decoy running."""
    worker = start_worker(preexec)
    try:
        args = ["--collector.syscalls", filter_flag.format(pid=worker.pid), "--sampler.interval=100ms", *extra]
        with run_exporter(args, tmp_path, wrapper=wrapper) as exp:
            assert source_success(exp) == 1.0, exp.stderr()
            release_and_run_decoy(worker)
            settled(exp, RARE_CALLS + CHILD_RARE_CALLS)
            return dict(parse_exposition(exp.metrics()).get("sysmon_syscalls_total", {}))
    finally:
        worker.kill()
        worker.wait()


def test_pid_filter_counts_the_tree_exactly_and_nothing_else(tmp_path):
    require_bpf()
    series = count_worker(tmp_path, "--syscalls.pid={pid}")
    assert {tuple(dict(k)) for k in series} == {("syscall",)}
    assert_only_the_worker(syscalls_of(series))


def test_cgroup_filter_counts_the_subtree_exactly_and_nothing_else(tmp_path):
    require_bpf()
    with cgroup2("sysmon-syscalls") as cg:
        series = count_worker(tmp_path, f"--syscalls.cgroup={cg}", join_cgroup(cg))
    assert_only_the_worker(syscalls_of(series))


def test_capabilities_are_enough_without_root(tmp_path):
    """As nobody with only CAP_BPF and CAP_PERFMON (ambient, as systemd's AmbientCapabilities gives them)."""
    require_bpf()
    caps = ["--inh-caps=-all,+bpf,+perfmon", "--ambient-caps=+bpf,+perfmon", "--bounding-set=-all,+bpf,+perfmon"]
    wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *caps]
    series = count_worker(tmp_path, "--syscalls.pid={pid}", wrapper=wrapper)
    assert_only_the_worker(syscalls_of(series))


def test_by_comm_labels_the_busiest_commands(tmp_path):
    require_bpf()
    series = count_worker(tmp_path, "--syscalls.pid={pid}", extra=["--syscalls.by=comm", "--syscalls.top=5"])
    by = {(dict(k)["comm"], dict(k)["syscall"]): v for k, v in series.items()}
    assert by[("sysmon-worker", "sched_getscheduler")] == RARE_CALLS
    assert by[("sysmon-child", "sched_getscheduler")] == CHILD_RARE_CALLS
    assert by[("sysmon-worker", "getppid")] >= CHEAP_CALLS
    assert_only_the_worker(syscalls_of(series))


def test_by_cgroup_labels_with_the_cgroup_path(tmp_path):
    require_bpf()
    with cgroup2("sysmon-by") as cg:
        series = count_worker(tmp_path, f"--syscalls.cgroup={cg}", join_cgroup(cg), extra=["--syscalls.by=cgroup"])
    by = {(dict(k)["cgroup"], dict(k)["syscall"]): v for k, v in series.items()}
    assert by[(f"/{cg.name}", "sched_getscheduler")] == RARE_CALLS + CHILD_RARE_CALLS
    assert {label for label, _ in by} <= {f"/{cg.name}", "other"}
    assert_only_the_worker(syscalls_of(series))


@contextlib.contextmanager
def container_scope(create: bool = True) -> Iterator[Path]:
    """A cgroup2 path shaped like a Docker container's scope, /system.slice/docker-<64 hex>.scope; made if asked."""
    if not (CGROUP2 / "cgroup.procs").exists():
        pytest.skip(f"no cgroup2 hierarchy at {CGROUP2}")
    parent = CGROUP2 / "system.slice"
    made_parent = not parent.exists()
    parent.mkdir(exist_ok=True)
    path = parent / f"docker-{secrets.token_hex(32)}.scope"
    if create:
        path.mkdir()
    try:
        yield path
    finally:
        if path.exists():
            remove_cgroup(path)
        if made_parent:
            with contextlib.suppress(OSError):  # in use by another scope: left as it was found
                parent.rmdir()


def test_containers_only_counts_each_container_exactly_and_no_host_process(tmp_path):
    """One container before attach, one started after, and the same calls from a host process beside them."""
    require_bpf()
    with container_scope() as before, container_scope(create=False) as after:
        in_before, on_host = start_worker(join_cgroup(before)), start_worker()
        workers = [in_before, on_host]
        try:
            args = ["--collector.syscalls", "--syscalls.containers", "--syscalls.by=cgroup", "--sampler.interval=100ms"]
            with run_exporter(args, tmp_path) as exp:
                assert source_success(exp) == 1.0, exp.stderr()
                after.mkdir()
                for _ in range(2):  # the first may have walked before the mkdir; the second walked after it
                    next_sample(exp.metrics)
                in_after = start_worker(join_cgroup(after))
                workers.append(in_after)
                for worker in workers:
                    release_and_run_decoy(worker)
                settled(exp, 2 * (RARE_CALLS + CHILD_RARE_CALLS))
                series = dict(parse_exposition(exp.metrics()).get("sysmon_syscalls_total", {}))
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
        others = set(container_cgroups(read_cgroup2_paths(Path("/proc")))) - {before.stat().st_ino, after.stat().st_ino}
    by = {(dict(k)["cgroup"], dict(k)["syscall"]): v for k, v in series.items()}
    for scope in (before, after):
        label = "/" + scope.relative_to(CGROUP2).as_posix()
        assert by[(label, "sched_getscheduler")] == RARE_CALLS + CHILD_RARE_CALLS, (label, by)
        assert by[(label, "getppid")] >= CHEAP_CALLS
        assert (label, "sched_getparam") not in by  # only the decoys make it, in the host's cgroup
    if not others:  # no real container on this machine: nothing else is in the counts
        assert syscalls_of(series)["sched_getscheduler"] == 2 * (RARE_CALLS + CHILD_RARE_CALLS)


def test_the_containers_map_follows_cgroups_as_they_come_and_go():
    """Each walk adds new container cgroups (a cgroup below one maps to the container's) and drops removed ones."""
    require_bpf()
    counter = SyscallCounter(Path("/proc"), Path("/sys"), Filter(exclude_self=True, containers=True))
    try:
        with container_scope() as scope:
            scope_id = scope.stat().st_ino
            assert scope_id not in counter.tracked_containers()  # made after attach, not walked yet
            inner = scope / "init"
            inner.mkdir()
            try:
                inner_id = inner.stat().st_ino
                counter.refresh_containers()
                tracked = counter.tracked_containers()
                assert (tracked.get(scope_id), tracked.get(inner_id)) == (scope_id, scope_id)
            finally:
                inner.rmdir()
            counter.refresh_containers()
            tracked = counter.tracked_containers()
            assert inner_id not in tracked and tracked.get(scope_id) == scope_id
        counter.refresh_containers()
        tracked = counter.tracked_containers()
        assert scope_id not in tracked
        assert tracked == container_cgroups(read_cgroup2_paths(Path("/proc")))
    finally:
        counter.close()


@pytest.mark.parametrize("include_self", [False, True], ids=["self-excluded", "self-included"])
def test_own_calls_are_counted_only_when_asked(tmp_path, include_self):
    """The exporter alone in a cgroup: it reads its maps with bpf(2) every sample."""
    require_bpf()
    with cgroup2("sysmon-self") as cg:
        args = ["--collector.syscalls", f"--syscalls.cgroup={cg}", "--sampler.interval=100ms"]
        if include_self:
            args.append("--syscalls.include-self")
        with run_exporter(args, tmp_path, preexec=join_cgroup(cg)) as exp:
            assert source_success(exp) == 1.0, exp.stderr()
            for _ in range(3):
                counts = syscalls_of(next_sample(exp.metrics))
    if include_self:
        assert counts.get("bpf", 0) > 0
    else:
        assert counts == {}


@pytest.mark.parametrize("include_self", [False, True], ids=["self-excluded", "self-included"])
def test_own_calls_are_excluded_from_inside_a_pid_namespace(include_self):
    """As in a container: os.getpid() is 1 there, but the kernel's tgid is what the program compares."""
    require_bpf()
    with cgroup2("sysmon-pidns") as cg:
        argv = ["syscalls", "--cgroup", str(cg), "-i", "100ms", "-d", "400ms", "--json"]
        if include_self:
            argv.append("--include-self")
        result = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "exporter", *argv],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            preexec_fn=join_cgroup(cg),
        )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) >= 3
    counted = {name for r in records for name in r["syscalls"]}
    if include_self:
        assert "bpf" in counted
    else:
        assert counted == set()


def test_unavailable_without_privileges_reports_why_and_keeps_serving(tmp_path):
    require_root()  # to drop to nobody without capabilities
    port = free_port()
    log = tmp_path / "nobody.log"
    flags = ("--sampler.interval=100ms", "--collector.syscalls", "--no-collector.perf")
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*drop, sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}", *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd="/",
        )
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, what="ready as nobody")
        first = parse_exposition(http_get(f"http://127.0.0.1:{port}/metrics")[1].decode())
        stamp = first["sysmon_last_sample_timestamp_seconds"][()]
        wait_until(
            lambda: (
                parse_exposition(http_get(f"http://127.0.0.1:{port}/metrics")[1].decode())[
                    "sysmon_last_sample_timestamp_seconds"
                ][()]
                > stamp
            ),
            what="a second sample",
        )
        body = http_get(f"http://127.0.0.1:{port}/metrics")[1].decode()
    finally:
        proc.terminate()
        proc.wait(5)
    m = parse_exposition(body)
    assert m["sysmon_source_success"][(("source", "syscalls"),)] == 0.0
    assert m["sysmon_source_success"][(("source", "cpu"),)] == 1.0
    assert "sysmon_syscalls_total" not in m
    text = log.read_text()
    assert text.count("source syscalls failed") == 1, text
    assert "CAP_BPF" in text and "CAP_PERFMON" in text and "run as root" in text
    assert "AmbientCapabilities=CAP_BPF CAP_PERFMON" in text  # the way test_capabilities_are_enough_without_root uses


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_syscalls_command_prints_the_tree_per_interval_as_json(tmp_path, stop):
    require_bpf()
    worker = start_worker()
    err = tmp_path / "command.err"
    try:
        with open(err, "wb") as err_file:
            cmd = subprocess.Popen(
                [sys.executable, "-m", "exporter", "syscalls", "-p", str(worker.pid), "-i", "200ms", "--json"],
                stdout=subprocess.PIPE,
                stderr=err_file,
                cwd=ROOT,
            )
        try:
            wait_until(lambda: "counting syscalls of pid" in err.read_text(), what="the command to attach")
            release_and_run_decoy(worker)
            time.sleep(0.3)  # lets the worker's exit land in an interval; the final read takes the rest
            cmd.send_signal(stop)
            out, _ = cmd.communicate(timeout=30)
        finally:
            if cmd.poll() is None:
                cmd.kill()
                cmd.wait()
    finally:
        worker.kill()
        worker.wait()
    assert cmd.returncode == 0, err.read_text()
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert len(records) >= 2
    total: dict[str, int] = {}
    for record in records:
        assert record["interval_seconds"] > 0
        for name, n in record["syscalls"].items():
            total[name] = total.get(name, 0) + n
    assert_only_the_worker({k: float(v) for k, v in total.items()})


def test_syscalls_command_stops_quietly_when_the_reader_goes_away():
    require_bpf()
    cmd = subprocess.Popen(
        [sys.executable, "-m", "exporter", "syscalls", "-i", "50ms", "-d", "1m", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert cmd.stdout is not None and cmd.stderr is not None
        json.loads(cmd.stdout.readline())
        cmd.stdout.close()  # as `| head -1` does
        assert cmd.wait(timeout=30) == 0
        err = cmd.stderr.read().decode()
    finally:
        if cmd.poll() is None:
            cmd.kill()
            cmd.wait()
    assert "Traceback" not in err and "Error" not in err, err


def test_syscalls_command_bad_flag_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "syscalls", "-p", "abc"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "sysmon-exporter syscalls: argument -p/--pid: 'abc' is not a process id; pass a positive integer; "
        "see sysmon-exporter syscalls --help"
    ]

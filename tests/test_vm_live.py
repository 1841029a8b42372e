"""The vm source on this machine's kernel: processes whose threads are named as QEMU names its vCPUs.

``tests/fake_vm.py`` is started as QEMU would be (argv[0] ``qemu-system-x86_64`` through
``exec -a``, ``-name guest=NAME,debug-threads=on``) and keeps one vCPU thread busy; the real
exporter serves its series over HTTP.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.sources.perf import PerfUnavailable, ThreadCycles
from exporter.sources.vm import VmWatch, parse_schedstat
from tests.helpers import ROOT, parse_exposition, run_exporter, stop_process, wait_until
from tests.qmp_speaker import QmpSpeaker
from tests.test_live import has_cpu_pmu

pytestmark = pytest.mark.live

PROC = Path("/proc")


@contextlib.contextmanager
def fake_vm(name_option: str, vcpus: int = 2, busy: int = -1) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """A fake QEMU; yields the process and its vCPU thread ids."""
    script = ROOT / "tests" / "fake_vm.py"
    command = f'exec -a qemu-system-x86_64 "$0" {script} -name "$1" --vcpus {vcpus} --busy {busy}'
    # Python finds its library from argv[0], which exec -a replaces: PYTHONHOME says where it is.
    env = {**os.environ, "PYTHONHOME": sys.base_prefix}
    proc = subprocess.Popen(["bash", "-c", command, sys.executable, name_option], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "fake VM exited before naming its threads"
        yield proc, [int(t) for t in line.split()]
    finally:
        stop_process(proc)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def series(text: str, name: str, vm: str) -> dict[str, float]:
    """{vcpu: value} of one VM's family."""
    return {dict(k)["vcpu"]: v for k, v in parse_exposition(text).get(name, {}).items() if dict(k)["vm"] == vm}


def test_vcpu_seconds_rise_through_the_real_exporter(tmp_path):
    vm = unique("live")
    with fake_vm(f"guest={vm},debug-threads=on", vcpus=2, busy=0) as (proc, tids):
        args = ["--sampler.interval=200ms", "--vm.rescan-interval=200ms", "--collector.disable-defaults"]
        args += ["--collector.cpu", "--collector.cpufreq", "--collector.cpuinfo", "--collector.vm"]
        with run_exporter(args, tmp_path) as exp:
            first = wait_until(
                lambda: series(exp.metrics(), "sysmon_vm_vcpu_seconds_total", vm), what=f"vm {vm}'s vCPU series"
            )
            later = wait_until(
                lambda: (s := series(exp.metrics(), "sysmon_vm_vcpu_seconds_total", vm))["0"] > first["0"] + 0.2 and s,
                what="the busy vCPU's seconds to rise",
            )
            text = exp.metrics()
        kernel = [parse_schedstat((PROC / str(proc.pid) / "task" / str(tid) / "schedstat").read_text()) for tid in tids]
    m = parse_exposition(text)
    assert set(first) == {"0", "1"}
    assert later["0"] - first["0"] > later["1"] - first["1"]  # the spinning thread ran, the sleeping one barely
    assert m["sysmon_vm_info"][(("hypervisor", "qemu"), ("pid", str(proc.pid)), ("vm", vm))] == 1
    assert m["sysmon_vm_vcpus"][(("vm", vm),)] == 2
    assert m["sysmon_source_success"][(("source", "vm"),)] == 1
    # each value is at most what the kernel said a moment later (counters of that very thread)
    for n, (run, wait) in enumerate(kernel):
        assert 0 <= series(text, "sysmon_vm_vcpu_seconds_total", vm)[str(n)] <= run
        assert 0 <= series(text, "sysmon_vm_vcpu_wait_seconds_total", vm)[str(n)] <= wait
    # the frequency of each vCPU is that of the host CPU it last ran on, in the same sample
    host_cpu = series(text, "sysmon_vm_vcpu_host_cpu", vm)
    freq = series(text, "sysmon_vm_vcpu_frequency_hertz", vm)
    cpu_freq = {dict(k)["cpu"]: v for k, v in m["sysmon_cpu_frequency_hertz"].items()}
    assert set(freq) == {"0", "1"}
    for n in ("0", "1"):
        assert str(int(host_cpu[n])) in cpu_freq
        assert freq[n] == cpu_freq[str(int(host_cpu[n]))]


def test_a_qemu_without_thread_names_gets_its_vcpus_from_qmp(tmp_path):
    vm = unique("qmp")
    (tmp_path / vm).mkdir()
    with fake_vm(vm, vcpus=2) as (proc, tids):  # -name NAME, no debug-threads: no thread is named
        names = {(PROC / str(proc.pid) / "task" / str(t) / "comm").read_text() for t in tids}
        assert not any(n.startswith("CPU ") for n in names)
        alone = {v.name: v for v in VmWatch(PROC).discover()}
        assert alone[vm].vcpus == {} and "debug-threads=on" in alone[vm].why_no_vcpus
        qmp = QmpSpeaker(tmp_path / vm / "qmp.sock", dict(enumerate(tids)))
        try:
            args = ["--sampler.interval=200ms", "--vm.rescan-interval=200ms", "--collector.disable-defaults"]
            args += ["--collector.cpu", "--collector.cpuinfo", "--collector.vm"]
            args += [f"--vm.qmp-socket={tmp_path}/{{vm}}/qmp.sock"]
            with run_exporter(args, tmp_path) as exp:
                found = wait_until(
                    lambda: series(exp.metrics(), "sysmon_vm_vcpu_seconds_total", vm), what="vCPUs from QMP"
                )
        finally:
            qmp.close()
    assert set(found) == {"0", "1"}
    assert qmp.commands[:2] == ["qmp_capabilities", "query-cpus-fast"]


def test_a_qemu_without_thread_names_or_qmp_exports_the_vm_level_series(tmp_path):
    vm = unique("bare")
    with fake_vm(vm, vcpus=1) as (proc, _):
        args = ["--sampler.interval=200ms", "--collector.disable-defaults", "--collector.cpu", "--collector.vm"]
        with run_exporter(args, tmp_path) as exp:
            wait_until(lambda: f'vm="{vm}"' in exp.metrics(), what="the VM's info")
            m = parse_exposition(exp.metrics())
            log = exp.stderr()
    assert m["sysmon_vm_vcpus"][(("vm", vm),)] == 0
    assert not any(dict(k).get("vm") == vm for k in m.get("sysmon_vm_vcpu_seconds_total", {}))
    assert f"vm {vm} (qemu pid {proc.pid}): only VM-level series" in log
    assert log.count(f"vm {vm} (qemu pid") == 1  # once, not every rescan


def test_a_vm_that_exits_is_gone_from_the_next_samples(tmp_path):
    vm = unique("gone")
    watch = VmWatch(PROC, rescan_seconds=3600)
    with fake_vm(f"guest={vm},debug-threads=on", vcpus=1) as (proc, _):
        assert vm in watch.read(0.0).vms
    proc.wait()
    readings = watch.read(1.0)  # known, not rescanned: its files are gone mid-read
    assert vm not in readings.vms and readings.errors == ()


def descriptors_into(path: Path) -> list[str]:
    """What this process's open descriptors below ``path`` name (others, of other tests' threads, are not counted)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target == str(path) or target.startswith(f"{path}/"):
                out.append(target)
    return sorted(out)


@pytest.mark.parametrize("budget", [64, 3], ids=["all-held", "budget-below-the-vcpus"])
def test_held_vcpu_files_read_fresh_values_and_close_when_the_vm_exits(budget):
    vm = unique("held")
    with fake_vm(f"guest={vm},debug-threads=on", vcpus=3, busy=0) as (proc, tids):
        task = PROC / str(proc.pid) / "task"
        # VMs of lower pids on this host (other tests', a real guest's) are held first: the budget is on top of theirs
        lower = sum(2 * len(v.vcpus) for v in VmWatch(PROC).discover() if v.pid < proc.pid)
        held_files = lower + budget
        watch = VmWatch(PROC, rescan_seconds=3600, background=True, held_files=held_files)
        watch.rescan()
        first = watch.read(0.0).vms[vm]
        held = descriptors_into(task)
        kept = sorted(tids)[: min(3, budget // 2)]  # the lowest tids first, two files each
        assert held == sorted([str(task)] + [f"{task}/{t}/{f}" for t in kept for f in ("schedstat", "stat")])
        later = wait_until(
            lambda: (r := watch.read(1.0).vms[vm]).vcpus[0].run_seconds > first.vcpus[0].run_seconds + 0.2 and r,
            what="the busy vCPU's seconds to rise through its held files",
        )
        kernel = [parse_schedstat((task / str(t) / "schedstat").read_text()) for t in tids]
        assert descriptors_into(task) == held  # held across samples, not opened again
    assert set(later.vcpus) == {0, 1, 2} and [v.tid for _, v in sorted(later.vcpus.items())] == tids
    for n, (run, _) in enumerate(kernel):
        assert first.vcpus[n].run_seconds <= later.vcpus[n].run_seconds <= run
    proc.wait()
    readings = watch.read(2.0)  # its held files answer ESRCH: left out silently, and closed
    assert vm not in readings.vms and readings.errors == ()
    assert descriptors_into(task) == []
    watch.close()


def test_per_thread_cycles_count_where_there_is_a_pmu_else_the_refusal_is_clean():
    """Opened with pid=TID, cpu=-1 on a real thread; without a core PMU (most VMs, this one) it is refused cleanly."""
    counters = ThreadCycles(PROC)
    spin = threading.Event()
    tid: list[int] = []

    def busy() -> None:
        tid.append(threading.get_native_id())
        while not spin.is_set():
            pass

    t = threading.Thread(target=busy)
    t.start()
    try:
        wait_until(lambda: tid, what="the busy thread")
        if not has_cpu_pmu():
            with pytest.raises(PerfUnavailable) as e:
                counters.open_thread(tid[0])
            assert e.value.errno in (errno.ENOENT, errno.EOPNOTSUPP, errno.ENODEV)
            assert (e.value.strerror or "").startswith("no hardware cycle counter for threads")
            assert counters.threads == frozenset()
            return
        if os.geteuid() != 0:
            pytest.skip("per-thread cycles of another process's thread need root here (perf_event_paranoid)")
        counters.open_thread(tid[0])
        first = wait_until(lambda: counters.read().get(tid[0]), what="cycles to count")
        assert wait_until(lambda: counters.read()[tid[0]] > first, what="cycles to rise")
        counters.close_thread(tid[0])
        assert counters.read() == {}
    finally:
        spin.set()
        t.join()
        counters.close()


def test_the_host_line_goes_down_the_guest_channel_of_the_vm_with_the_same_name(tmp_path):
    """QEMU's side of the channel played by a listening socket at --guest.socket's path for the VM's -name."""
    vm = unique("down")
    path = tmp_path / "vms" / vm / "agent.sock"
    path.parent.mkdir(parents=True)
    chardev = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    chardev.bind(str(path))
    chardev.listen(1)
    chardev.settimeout(30)
    with chardev, fake_vm(f"guest={vm},debug-threads=on", vcpus=2) as (_, tids):
        args = ["--sampler.interval=200ms", "--vm.rescan-interval=200ms", "--guest.rescan-interval=200ms"]
        args += ["--collector.disable-defaults", "--collector.cpu", "--collector.cpuinfo", "--collector.vm"]
        args += [f"--guest.socket={tmp_path}/vms/{{vm}}/agent.sock"]
        with run_exporter(args, tmp_path) as exp:
            conn, _ = chardev.accept()
            with conn:
                conn.settimeout(30)
                buf = b""
                while buf.count(b"\n") < 2:
                    chunk = conn.recv(65536)
                    assert chunk, "the exporter closed the channel"
                    buf += chunk
                wait_until(
                    lambda: parse_exposition(exp.metrics())["sysmon_guest_host_lines_sent_total"][(("vm", vm),)] >= 2,
                    what="sent host lines counted",
                )
                m = parse_exposition(exp.metrics())
                for _ in range(4):  # a scraper at a regular cadence, five ticks apart: no tick rests for it
                    time.sleep(1.0)
                    exp.metrics()
                conn.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    while chunk := conn.recv(65536):  # the lines sent meanwhile, waiting in the socket
                        buf += chunk
    lines = [json.loads(line) for line in buf.split(b"\n")[:2]]
    later = [json.loads(line)["host_wall_ns"] for line in buf.split(b"\n")[2:-1]]
    assert len(later) >= 15
    assert all(b > a for a, b in itertools.pairwise(later)), "a host line repeated a sample: a tick did not run"
    for line in lines:
        assert (line["v"], line["type"], line["interval_seconds"]) == (1, "host", 0.2)
        assert line["host_wall_ns"] == pytest.approx(time.time() * 1e9, abs=60e9)
        assert set(line["vcpus"]) == {"0", "1"}
        for vcpu in line["vcpus"].values():
            cpu = str(vcpu["host_cpu"])
            assert vcpu["frequency_hz"] == m["sysmon_cpu_frequency_hertz"][(("cpu", cpu),)]
            assert m["sysmon_cpu_frequency_source_info"][(("cpu", cpu), ("source", vcpu["frequency_source"]))] == 1
            assert vcpu["steal_seconds"] >= 0
    assert lines[1]["host_wall_ns"] > lines[0]["host_wall_ns"]
    assert m["sysmon_guest_host_lines_dropped_total"][(("vm", vm),)] == 0
    assert len(tids) == 2

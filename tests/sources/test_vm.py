"""The vm source: parsers on inline text, discovery and reads on the kvm-host fixture and trees built in tmp_path."""

from __future__ import annotations

import errno
import logging
import shutil

import pytest

from exporter.sources import SourceError
from exporter.sources.perf import PerfUnavailable
from exporter.sources.vm import (
    Discovery,
    VmWatch,
    hypervisor_of,
    parse_cmdline,
    parse_last_cpu,
    parse_schedstat,
    qemu_name,
    vcpu_of_thread,
    vm_name,
)
from tests.helpers import FIXTURES
from tests.vmhost import STAT, Process, Thread, firecracker, qemu, write_host

KVM_HOST = FIXTURES / "kvm-host" / "proc"


@pytest.mark.parametrize(
    ("comm", "argv0", "expected"),
    [
        ("qemu-system-x86", "/usr/bin/qemu-system-x86_64", "qemu"),
        ("python3", "qemu-system-x86_64", "qemu"),  # exec -a: argv[0] only
        ("qemu-kvm", "/usr/libexec/qemu-kvm", "qemu"),
        ("qemu-system-aar", "", "qemu"),
        ("firecracker", "/usr/bin/firecracker", "firecracker"),
        ("cloud-hyperviso", "cloud-hypervisor", "cloud-hypervisor"),
        ("bash", "/usr/bin/cloud-hypervisor", "cloud-hypervisor"),
        ("qemu-img", "qemu-img", None),
        ("qemu-nbd", "/usr/bin/qemu-nbd", None),
        ("firecracker-jai", "jailer", None),
        ("sshd", "", None),
    ],
    ids=[
        "qemu",
        "exec-a",
        "qemu-kvm",
        "aarch64",
        "firecracker",
        "ch-truncated",
        "ch-argv0",
        "img",
        "nbd",
        "fc-like",
        "other",
    ],
)
def test_hypervisor_of(comm, argv0, expected):
    assert hypervisor_of(comm, argv0) == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["qemu", "-name", "guest=web-1,debug-threads=on"], "web-1"),
        (["qemu", "-name", "web-1,debug-threads=on"], "web-1"),
        (["qemu", "-name", "web-1"], "web-1"),
        (["qemu", "--name", "web-1"], "web-1"),
        (["qemu", "-name=web-1"], "web-1"),
        (["qemu", "-name", "process=qemu-web,guest=web-2"], "web-2"),
        (["qemu", "-name", "a,,b,debug-threads=on"], "a,b"),
        (["qemu", "-name", "one", "-name", "two"], "two"),
        (["qemu", "-m", "512"], None),
        (["qemu", "-name"], None),
        (["qemu", "-name", "debug-threads=on"], None),
    ],
    ids=[
        "guest=",
        "implied",
        "bare",
        "double-dash",
        "inline",
        "process-first",
        "escaped-comma",
        "last-wins",
        "none",
        "no-value",
        "no-guest",
    ],
)
def test_qemu_name(argv, expected):
    assert qemu_name(argv) == expected


@pytest.mark.parametrize(
    ("hypervisor", "argv", "expected"),
    [
        ("qemu", ["qemu", "-name", "guest=web 1/x"], "web_1_x"),  # as the guest channel's {vm} label
        ("qemu", ["qemu"], "pid-42"),
        ("firecracker", ["firecracker", "--id", "fc-1", "--api-sock", "/run/x"], "fc-1"),
        ("firecracker", ["firecracker", "--id=fc-2"], "fc-2"),
        ("firecracker", ["firecracker", "--api-sock", "/run/x.sock"], "pid-42"),
        ("cloud-hypervisor", ["cloud-hypervisor", "--api-socket", "path=/run/ch/ch-1.sock"], "ch-1"),
        ("cloud-hypervisor", ["cloud-hypervisor", "--api-socket", "/run/ch/ch-2.sock"], "ch-2"),
        ("cloud-hypervisor", ["cloud-hypervisor", "--api-socket", "fd=3"], "pid-42"),
        ("cloud-hypervisor", ["cloud-hypervisor", "--name", "ch-3", "--api-socket", "path=/x.sock"], "ch-3"),
        ("qemu", ["qemu", "-name", "x" * 100], "x" * 64),
    ],
    ids=["sanitised", "pid", "fc-id", "fc-id-inline", "fc-no-id", "ch-path", "ch-bare", "ch-fd", "ch-name", "long"],
)
def test_vm_name(hypervisor, argv, expected):
    assert vm_name(hypervisor, argv, 42) == expected


@pytest.mark.parametrize(
    ("hypervisor", "comm", "expected"),
    [
        ("qemu", "CPU 0/KVM", 0),
        ("qemu", "CPU 17/TCG", 17),
        ("qemu", "CPU 4095/KVM", 4095),
        ("qemu", "CPU 4096/KVM", None),
        ("qemu", "CPU 0/HVF", None),
        ("qemu", "ALL CPUs/TCG", None),
        ("qemu", "CPU -1/KVM", None),
        ("qemu", "CPU 0/KVMX", None),
        ("qemu", "fc_vcpu 0", None),
        ("firecracker", "fc_vcpu 3", 3),
        ("firecracker", "fc_api", None),
        ("cloud-hypervisor", "vcpu12", 12),
        ("cloud-hypervisor", "vcpu", None),
        ("cloud-hypervisor", "CPU 0/KVM", None),
    ],
    ids=[
        "kvm",
        "tcg",
        "max",
        "too-big",
        "hvf",
        "single-tcg",
        "negative",
        "suffix",
        "other-hv",
        "fc",
        "fc-api",
        "ch",
        "ch-bare",
        "ch-qemu-name",
    ],
)
def test_vcpu_of_thread(hypervisor, comm, expected):
    assert vcpu_of_thread(hypervisor, comm) == expected


def test_parse_cmdline():
    assert parse_cmdline(b"qemu-system-x86_64\0-name\0guest=a\0") == ("qemu-system-x86_64", "-name", "guest=a")
    assert parse_cmdline(b"") == ()
    assert parse_cmdline(b"no-trailing-nul") == ("no-trailing-nul",)
    assert parse_cmdline(b"bad\xff\0") == ("bad\ufffd",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1500000000 20000000 42\n", (1.5, 0.02)),
        ("0 0 0\n", (0.0, 0.0)),
        ("1500000000 20000000\n", (1.5, 0.02)),  # without the timeslices
        ("1500000000 20000000 42 7\n", (1.5, 0.02)),  # a later kernel's extra column
    ],
    ids=["6.x", "zero", "two-columns", "extra-column"],
)
def test_parse_schedstat(text, expected):
    assert parse_schedstat(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1500000000\n", "a b c\n", "-1 2 3\n", "1.5 2 3\n"],
    ids=["empty", "truncated", "words", "negative", "float"],
)
def test_parse_schedstat_refuses(text):
    with pytest.raises(SourceError, match="schedstat"):
        parse_schedstat(text)


def test_parse_last_cpu_is_field_39():
    assert parse_last_cpu(STAT.format(pid=7, comm="CPU 0/KVM", ppid=1, cpu=13)) == 13
    # a command name with spaces and parentheses: fields are counted from the last ')'
    assert parse_last_cpu(STAT.format(pid=7, comm="a) (b ) c", ppid=1, cpu=5)) == 5


@pytest.mark.parametrize(
    "text",
    [
        "7 (x) S 1 1",
        STAT.format(pid=7, comm="x", ppid=1, cpu="-1"),
        STAT.format(pid=7, comm="x", ppid=1, cpu="1e3"),
        "",
    ],
    ids=["truncated", "negative", "not-a-number", "empty"],
)
def test_parse_last_cpu_refuses(text):
    with pytest.raises(SourceError):
        parse_last_cpu(text)


def test_the_kvm_host_fixture_is_what_its_generator_writes(tmp_path):
    """The committed tree is the generator's output (python -m tests.vmhost), so its README stays true."""
    from tests.vmhost import kvm_host

    proc = write_host(tmp_path, kvm_host())
    made = {p.relative_to(proc): p.read_bytes() for p in proc.rglob("*") if p.is_file()}
    committed = {
        p.relative_to(KVM_HOST): p.read_bytes() for p in KVM_HOST.rglob("*") if p.is_file() and p.parent != KVM_HOST
    }
    committed = {k: v for k, v in committed.items() if k.parts[0].isdigit()}
    assert made == committed


def test_discovery_on_the_kvm_host_fixture(caplog):
    with caplog.at_level(logging.WARNING, "exporter.sources.vm"):
        found = {v.name: v for v in VmWatch(KVM_HOST).discover()}
    assert {n: (v.hypervisor, v.pid, dict(v.vcpus)) for n, v in found.items()} == {
        "web-1": ("qemu", 2101, {0: 2104, 1: 2105}),
        "db-2": ("qemu", 2201, {}),
        "fc-3": ("firecracker", 2301, {0: 2303}),
        "ch-4": ("cloud-hypervisor", 2401, {0: 2404, 1: 2405}),
        "tcg-5": ("qemu", 2501, {0: 2504}),
        "plain_6": ("qemu", 2601, {0: 2602}),  # CPU 1/XYZ ignored
        "pid-2701": ("qemu", 2701, {0: 2702}),
    }
    assert [r.getMessage() for r in caplog.records] == [
        "vm db-2 (qemu pid 2201): only VM-level series: its vCPU threads have no names (start QEMU with "
        "-name NAME,debug-threads=on) and no --vm.qmp-socket is given"
    ]


def test_read_on_the_kvm_host_fixture():
    readings = VmWatch(KVM_HOST).read(0.0)
    assert readings.errors == ()
    web = readings.vms["web-1"]
    assert (web.hypervisor, web.pid) == ("qemu", 2101)
    assert {n: (v.tid, v.run_seconds, v.wait_seconds, v.host_cpu) for n, v in web.vcpus.items()} == {
        0: (2104, 1.000002101, 0.02, 1),
        1: (2105, 2.000002101, 0.04, 0),
    }
    assert readings.vms["db-2"].vcpus == {}


def test_a_vm_that_goes_between_discovery_and_read_is_left_out_silently(tmp_path, caplog):
    proc = write_host(tmp_path, [qemu(100, "a", 2), qemu(200, "b", 1)])
    watch = VmWatch(proc, rescan_seconds=60)
    assert set(watch.read(0.0).vms) == {"a", "b"}
    shutil.rmtree(proc / "100")  # the VM exits
    with caplog.at_level(logging.DEBUG, "exporter.sources.vm"):
        readings = watch.read(1.0)
    assert set(readings.vms) == {"b"} and readings.errors == ()
    assert caplog.records == []


def test_a_vcpu_thread_that_goes_mid_read_skips_its_vm_and_rescans_next(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 2)])
    watch = VmWatch(proc, rescan_seconds=60)
    watch.read(0.0)
    shutil.rmtree(proc / "100" / "task" / "104")  # CPU 1 unplugged: its thread ends
    assert watch.read(1.0).vms == {}
    again = watch.read(2.0)  # found again without the thread, before the rescan interval
    assert set(again.vms["a"].vcpus) == {0}


def test_a_malformed_file_is_an_error_and_the_other_vms_are_read(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 2), qemu(200, "b", 1)])
    (proc / "100" / "task" / "103" / "schedstat").write_text("garbage\n")
    readings = VmWatch(proc).read(0.0)
    assert len(readings.errors) == 1 and "100/task/103/schedstat" in readings.errors[0]
    assert set(readings.vms["a"].vcpus) == {1}
    assert set(readings.vms["b"].vcpus) == {0}


def test_an_unreadable_procfs_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        VmWatch(tmp_path / "nothing").read(0.0)


def test_new_vms_are_found_only_at_the_rescan_interval(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 1)])
    watch = VmWatch(proc, rescan_seconds=5.0)
    assert set(watch.read(10.0).vms) == {"a"}
    write_host(tmp_path, [firecracker(300, "fc", 1)])
    assert set(watch.read(14.9).vms) == {"a"}
    assert set(watch.read(15.0).vms) == {"a", "fc"}


def test_a_process_that_execs_a_hypervisor_is_found(tmp_path):
    proc = write_host(tmp_path, [Process(100, "bash", ["/bin/bash"])])
    watch = VmWatch(proc, rescan_seconds=1.0)
    assert watch.read(0.0).vms == {}
    shutil.rmtree(proc / "100")
    write_host(tmp_path, [qemu(100, "late", 1)])  # same pid, new comm and command line
    assert set(watch.read(1.0).vms) == {"late"}


def test_at_most_max_count_vms_lowest_pids_first(tmp_path, caplog):
    proc = write_host(tmp_path, [qemu(100 * i, f"vm{i}", 1) for i in range(1, 6)])
    with caplog.at_level(logging.WARNING, "exporter.sources.vm"):
        watch = VmWatch(proc, rescan_seconds=0.0, max_count=3)
        assert set(watch.read(0.0).vms) == {"vm1", "vm2", "vm3"}
        watch.read(1.0)
    assert [r.getMessage() for r in caplog.records] == [
        "2 VMs beyond --vm.max-count=3 are not exported; raise --vm.max-count"
    ]


def test_two_processes_claiming_one_name_the_lower_pid_keeps_it(tmp_path):
    proc = write_host(tmp_path, [qemu(200, "same", 1), qemu(100, "same", 2)])
    assert VmWatch(proc).read(0.0).vms["same"].pid == 100


class Counters:
    """A per-thread counter double: counts its opens and closes; ``refuse`` makes every open fail as perf does."""

    def __init__(self, refuse: OSError | None = None) -> None:
        self.refuse = refuse
        self.open: dict[int, float] = {}
        self.opened: list[int] = []
        self.closed: list[int] = []
        self.closed_all = False

    def open_thread(self, tid: int) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.opened.append(tid)
        self.open[tid] = tid * 1000.0

    def close_thread(self, tid: int) -> None:
        self.closed.append(tid)
        del self.open[tid]

    def read(self) -> dict[int, float]:
        return dict(self.open)

    def close(self) -> None:
        self.closed_all = True
        self.open.clear()


def test_cycle_counters_open_once_and_close_when_the_thread_goes(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 2)])
    counters = Counters()
    watch = VmWatch(proc, rescan_seconds=0.0, cycles=counters)
    first = watch.read(0.0).vms["a"].vcpus
    assert {n: v.cycles for n, v in first.items()} == {0: 103000.0, 1: 104000.0}
    watch.read(1.0)
    assert counters.opened == [103, 104]  # kept open across samples and rescans
    shutil.rmtree(proc / "100" / "task" / "104")
    watch.read(2.0)  # the read finds it gone
    watch.read(3.0)
    assert counters.closed == [104] and set(counters.open) == {103}
    watch.close()
    assert counters.closed_all


def test_refused_cycle_counters_leave_the_other_series(tmp_path, caplog):
    proc = write_host(tmp_path, [qemu(100, "a", 1)])
    refusal = PerfUnavailable(errno.ENOENT, "no hardware cycle counter for threads (No such file or directory)")
    counters = Counters(refusal)
    with caplog.at_level(logging.INFO, "exporter.sources.vm"):
        watch = VmWatch(proc, cycles=counters)
        readings = watch.read(0.0)
        watch.read(1.0)
    assert readings.errors == () and readings.vms["a"].vcpus[0].cycles is None
    assert readings.vms["a"].vcpus[0].run_seconds == pytest.approx(1.0000001)
    assert watch.cycles_error.startswith("no hardware cycle counter") and counters.closed_all
    assert [r.getMessage() for r in caplog.records] == [f"no per-vCPU cycle counters: {refusal.strerror}"]


def test_qmp_gives_the_vcpus_of_a_qemu_without_thread_names(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "db", 2, debug_threads=False)])
    asked = []

    def qmp(vm: str) -> dict[int, int]:
        asked.append(vm)
        return {0: 103, 1: 104, 2: 999}  # 999 is no thread of this process

    vm = VmWatch(proc, qmp=qmp).discover()[0]
    assert (dict(vm.vcpus), asked, vm.why_no_vcpus) == ({0: 103, 1: 104}, ["db"], "")


def test_a_failing_qmp_leaves_the_vm_level_series_and_says_why(tmp_path, caplog):
    proc = write_host(tmp_path, [qemu(100, "db", 2, debug_threads=False)])

    def qmp(vm: str) -> dict[int, int]:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", f"/run/vms/{vm}/qmp.sock")

    with caplog.at_level(logging.WARNING, "exporter.sources.vm"):
        watch = VmWatch(proc, rescan_seconds=0.0, qmp=qmp)
        assert watch.read(0.0).vms["db"].vcpus == {}
        watch.read(1.0)  # the same reason is not logged again
    assert len(caplog.records) == 1
    assert "QMP failed" in caplog.records[0].getMessage() and "/run/vms/db/qmp.sock" in caplog.records[0].getMessage()


def test_unknown_thread_names_of_a_firecracker_are_ignored(tmp_path):
    fc = Process(100, "firecracker", ["firecracker", "--id", "x"], (Thread(101, "fc_api"), Thread(102, "vcpu0")))
    vm = VmWatch(write_host(tmp_path, [fc])).discover()[0]
    assert (vm.vcpus, vm.why_no_vcpus) == ({}, "no thread is named as a vCPU")


def test_read_uses_the_bounded_reader(tmp_path):
    """A runaway file fails with the bounded reader's message, not by reading it all."""
    proc = write_host(tmp_path, [qemu(100, "a", 1)])
    (proc / "100" / "task" / "103" / "stat").write_text("7 (x) S " + "0 " * 600_000)
    readings = VmWatch(proc).read(0.0)
    assert readings.errors and "larger than" in readings.errors[0]


def test_a_task_file_longer_than_one_read_is_read_whole(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 1)])
    stat = proc / "100" / "task" / "103" / "stat"
    stat.write_text(STAT.format(pid=103, comm="(" * 5000, ppid=1, cpu=7))  # field 39 beyond the first read
    assert stat.stat().st_size > 5000
    readings = VmWatch(proc).read(0.0)
    assert readings.errors == () and readings.vms["a"].vcpus[0].host_cpu == 7


def test_probe_counts_vms_and_vcpus():
    from exporter.catalogue import SOURCES, Roots

    assert SOURCES["vm"].probe(Roots.under(KVM_HOST.parent)) == f"7 VMs with 8 vCPU threads below {KVM_HOST}"


def test_qmp_is_asked_again_only_when_the_vms_threads_change(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "db", 1, debug_threads=False)])
    asked = []

    def qmp(vm: str) -> dict[int, int]:
        asked.append(vm)
        return {0: 103}

    watch = VmWatch(proc, rescan_seconds=0.0, qmp=qmp)
    for t in range(3):
        assert set(watch.read(float(t)).vms["db"].vcpus) == {0}
    assert asked == ["db"]  # a QMP serves one client at a time: not every rescan
    (proc / "100" / "task" / "150").mkdir()  # a new I/O worker thread
    (proc / "100" / "task" / "150" / "comm").write_text("worker\n")
    watch.read(3.0)
    assert asked == ["db", "db"]


def test_a_pid_reused_by_another_vm_is_read_from_the_new_process(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "old", 1)])
    watch = VmWatch(proc, rescan_seconds=60)
    assert set(watch.read(0.0).vms) == {"old"}
    shutil.rmtree(proc / "100")
    write_host(tmp_path, [qemu(100, "new", 1)])  # before any rescan, another VM under the same pid ...
    stat = proc / "100" / "stat"
    stat.write_text(stat.read_text().replace(" 36662 ", " 99999 "))  # ... started later, with the same threads
    assert watch.read(1.0).vms == {}  # the old process's task directory is gone
    assert watch.read(2.0).vms["new"].vcpus[0].run_seconds == pytest.approx(1.0000001)


def test_an_unreadable_vcpu_file_names_its_whole_path(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 1)])
    watch = VmWatch(proc)
    watch.read(0.0)
    stat = proc / "100" / "task" / "103" / "stat"
    stat.unlink()
    stat.mkdir()  # read() of a directory: EISDIR, not a process that went
    with pytest.raises(IsADirectoryError) as e:
        watch.read(1.0)
    assert e.value.filename == f"{proc}/100/task/103/stat"


def _reuse(proc, process: Process) -> None:
    """``process`` takes over its pid's directory, as a new process does: a new directory, never the old one."""
    staging = proc.parent / "staging"
    write_host(staging, [process])
    shutil.rmtree(proc / str(process.pid))
    (staging / "proc" / str(process.pid)).rename(proc / str(process.pid))
    shutil.rmtree(staging)


def _started_later(proc, pid: int) -> None:
    stat = proc / str(pid) / "stat"
    stat.write_text(stat.read_text().replace(" 36662 ", " 99999 "))


def test_in_the_background_only_rescan_discovers_and_a_sample_reads_what_it_published(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 2)])
    watch = VmWatch(proc, rescan_seconds=5.0, background=True)
    assert watch.read(0.0).vms == {}  # before the first discovery: nothing to read, no error
    assert [v.name for v in watch.rescan().vms] == ["a"]
    assert set(watch.read(1.0).vms["a"].vcpus) == {0, 1}
    write_host(tmp_path, [firecracker(300, "fc", 1)])  # starts after the first discovery
    (proc / "100" / "comm").unlink()
    (proc / "100" / "comm").mkdir()  # a sample that read any comm would fail (EISDIR)
    for now in (2.0, 100.0):  # however much time passed: samples never discover
        assert set(watch.read(now).vms) == {"a"}
    (proc / "100" / "comm").rmdir()
    (proc / "100" / "comm").write_text("qemu-system-x86\n")
    watch.rescan()
    assert set(watch.read(101.0).vms) == {"a", "fc"}


def test_in_the_background_a_failed_discovery_fails_the_samples_until_one_succeeds(tmp_path):
    proc = write_host(tmp_path, [qemu(100, "a", 1), Process(200, "sshd", ["/usr/sbin/sshd"])])
    watch = VmWatch(proc, background=True)
    watch.rescan()
    (proc / "200" / "comm").unlink()
    (proc / "200" / "comm").mkdir()  # read() of a directory: EISDIR, not a process that went
    assert isinstance(watch.rescan().error, IsADirectoryError)
    depths = []
    for now in (1.0, 2.0, 3.0):
        with pytest.raises(IsADirectoryError) as e:
            watch.read(now)
        assert e.value.filename == f"{proc}/200"
        depths.append(len(e.traceback))
    assert depths == [depths[0]] * 3  # the same error raised afresh: its traceback does not grow
    (proc / "200" / "comm").rmdir()
    (proc / "200" / "comm").write_text("sshd\n")
    watch.rescan()
    assert set(watch.read(4.0).vms) == {"a"}


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_a_process_that_starts_after_the_first_rescan_is_found(tmp_path, background):
    proc = write_host(tmp_path, [Process(50, "sshd", ["/usr/sbin/sshd"]), qemu(100, "a", 1)])
    watch = VmWatch(proc, rescan_seconds=5.0, background=background)
    watch.rescan()
    assert set(watch.read(0.0).vms) == {"a"}
    write_host(tmp_path, [qemu(10, "low", 1), qemu(400, "high", 2)])  # a lower pid (after a wrap) and a higher one
    watch.rescan()
    readings = watch.read(5.0)
    assert set(readings.vms) == {"low", "a", "high"} and set(readings.vms["high"].vcpus) == {0, 1}


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_a_vm_pid_reused_by_a_process_that_is_no_vm_is_dropped(tmp_path, background):
    proc = write_host(tmp_path, [qemu(100, "a", 1), qemu(200, "b", 1)])
    watch = VmWatch(proc, rescan_seconds=5.0, background=background)
    watch.rescan()
    assert set(watch.read(0.0).vms) == {"a", "b"}
    _reuse(proc, Process(100, "sshd", ["/usr/sbin/sshd", "-D"], (Thread(103, "CPU 0/KVM"),)))  # even with a vCPU's name
    _started_later(proc, 100)
    assert set(watch.read(1.0).vms) == {"b"}  # the old process's task directory is gone
    watch.rescan()
    assert set(watch.read(5.0).vms) == {"b"} and [v.name for v in watch.found] == ["b"]


@pytest.mark.parametrize("background", [False, True], ids=["inline", "background"])
def test_a_vm_pid_reused_by_another_qemu_is_the_new_vm(tmp_path, background):
    proc = write_host(tmp_path, [qemu(100, "old", 1)])
    watch = VmWatch(proc, rescan_seconds=5.0, background=background)
    watch.rescan()
    assert set(watch.read(0.0).vms) == {"old"}
    new = qemu(100, "new", 3)
    _reuse(proc, Process(new.pid, new.comm, new.argv, new.threads))
    _started_later(proc, 100)
    assert watch.read(1.0).vms == {}
    watch.rescan()
    readings = watch.read(5.0)
    assert set(readings.vms) == {"new"} and set(readings.vms["new"].vcpus) == {0, 1, 2}


def test_a_non_vm_pid_reused_by_a_qemu_between_rescans_is_found(tmp_path):
    proc = write_host(tmp_path, [Process(100, "qemu-img", ["qemu-img", "convert"])])
    watch = VmWatch(proc, rescan_seconds=5.0, background=True)
    watch.rescan()
    _reuse(proc, qemu(100, "vm", 1))  # never absent from a listing
    _started_later(proc, 100)
    watch.rescan()
    assert set(watch.read(5.0).vms) == {"vm"}


def test_a_rescan_reads_only_comm_of_a_process_known_to_run_no_hypervisor(tmp_path):
    proc = write_host(tmp_path, [Process(200, "sshd", ["/usr/sbin/sshd"])])
    watch = VmWatch(proc, background=True)
    watch.rescan()
    for name in ("cmdline", "stat"):
        (proc / "200" / name).unlink()
        (proc / "200" / name).mkdir()  # a rescan that read either would fail (EISDIR)
    assert watch.rescan() == Discovery(())


def test_a_reused_pid_with_the_same_comm_is_classified_afresh(tmp_path):
    # exec -a: a QEMU known by argv[0] alone, under a pid whose last process had the same comm and was no VM
    proc = write_host(tmp_path, [Process(100, "python3", ["python3", "-m", "http.server"])])
    watch = VmWatch(proc, background=True)
    assert watch.rescan().vms == ()
    vm = qemu(100, "vm", 1)
    _reuse(proc, Process(100, "python3", ["qemu-system-x86_64", *vm.argv[1:]], vm.threads))
    assert [v.name for v in watch.rescan().vms] == ["vm"]


def test_a_process_that_execs_qemu_in_its_own_directory_is_found(tmp_path):
    proc = write_host(tmp_path, [Process(100, "bash", ["/bin/bash", "/usr/libexec/start-vm"])])
    watch = VmWatch(proc, background=True)
    assert watch.rescan().vms == ()
    inode = (proc / "100").stat().st_ino
    shutil.rmtree(proc / "100" / "task")
    write_host(tmp_path, [qemu(100, "late", 1)])  # exec: same pid, same directory, new comm and command line
    assert (proc / "100").stat().st_ino == inode
    assert [v.name for v in watch.rescan().vms] == ["late"]


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel-thread", "no-command-line"])
def test_a_kernel_thread_is_not_read_again_while_its_proc_directory_stays(tmp_path, kernel):
    # PF_KTHREAD in field 9 as /proc/2/stat shows it for kthreadd; a process without it and without a
    # command line (a zombie, an empty argv) is looked at again at each discovery like any other
    proc = write_host(tmp_path, [Process(2, "kworker/0:1", [])])
    stat = proc / "2" / "stat"
    stat.write_text(stat.read_text().replace(" 4194304 ", " 2129984 " if kernel else " 4194560 ", 1))
    watch = VmWatch(proc, rescan_seconds=1.0)
    assert watch.read(0.0).vms == {}
    # what only a read of comm and cmdline would see; a kernel thread never execs, so it is not read
    (proc / "2" / "comm").write_text("qemu-system-x86\n")
    (proc / "2" / "cmdline").write_bytes(b"qemu-system-x86_64\0-name\0guest=late\0")
    assert set(watch.read(1.0).vms) == (set() if kernel else {"late"})
    (proc / "2").rename(tmp_path / "gone")  # the pid reused: a new /proc/2 directory (while the old one's
    write_host(tmp_path, [qemu(2, "late", 1)])  # inode is taken, so the new one cannot get its number)
    shutil.rmtree(tmp_path / "gone")
    assert set(watch.read(2.0).vms) == {"late"}

"""The vm source in the snapshot: each vCPU's frequency from the same snapshot, statuses, flags."""

from __future__ import annotations

import threading

import pytest

from exporter.config import ConfigError, load
from exporter.snapshot import CpuSources, Deadline, Frequency, SystemClock, take_snapshot
from exporter.sources import SourceError
from exporter.sources.vm import Discovery, VcpuReading, VmReading, VmReadings, VmWatch
from tests.helpers import FIXTURES
from tests.vmhost import Process, qemu, write_host

ROOT = FIXTURES / "vm-2cpu"  # two CPUs at the cpuinfo rate of 2599.998 MHz


class Watch:
    """A VM watch double returning fixed readings (or raising), recording the clock it was read at."""

    def __init__(self, readings: VmReadings | Exception) -> None:
        self.readings = readings
        self.at: list[float] = []

    def idle(self) -> Discovery | None:
        return None  # always read under the deadline, as a watch that found VMs is

    def read(self, now: float, discovery: Discovery | None = None) -> VmReadings:
        self.at.append(now)
        if isinstance(self.readings, Exception):
            raise self.readings
        return self.readings


def snapshot(watch: Watch | None, collectors: frozenset[str] = frozenset({"cpu", "cpuinfo", "vm"})):
    readers = CpuSources(ROOT / "proc", ROOT / "sys", 100, collectors, vms=watch)
    return take_snapshot(None, readers, SystemClock())


def reading(*vcpus: VcpuReading, errors: tuple[str, ...] = ()) -> VmReadings:
    return VmReadings({"web-1": VmReading("qemu", 42, dict(enumerate(vcpus)))}, errors)


def test_each_vcpu_gets_the_frequency_of_its_host_cpu_in_the_same_snapshot():
    watch = Watch(reading(VcpuReading(43, 1.5, 0.25, 1, 7.0), VcpuReading(44, 2.0, 0.0, 5)))
    snap = snapshot(watch)
    vcpus = snap.vms["web-1"].vcpus
    assert vcpus[0].frequency == snap.frequency[1] == Frequency(2599998000.0, "cpuinfo")
    assert (vcpus[0].tid, vcpus[0].run_seconds, vcpus[0].wait_seconds, vcpus[0].cycles) == (43, 1.5, 0.25, 7.0)
    assert vcpus[1].frequency is None  # host CPU 5 is not online here: no frequency, no guess
    assert snap.statuses["vm"].success and len(watch.at) == 1


def test_a_vcpu_on_a_cpu_whose_frequency_source_is_off_has_none():
    snap = snapshot(Watch(reading(VcpuReading(43, 1.0, 0.0, 0))), frozenset({"cpu", "vm"}))
    assert snap.frequency == {} and snap.vms["web-1"].vcpus[0].frequency is None


def test_errors_fail_the_source_and_keep_what_was_read():
    watch = Watch(reading(VcpuReading(43, 1.0, 0.0, 0), errors=("/proc/42/task/44/stat: bad", "/x: bad")))
    snap = snapshot(watch)
    assert snap.statuses["vm"].error == "/proc/42/task/44/stat: bad (and 1 more)"
    assert not snap.statuses["vm"].success and set(snap.vms["web-1"].vcpus) == {0}


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (FileNotFoundError(2, "No such file or directory", "/nope/proc"), "/nope/proc: missing"),
        (SourceError("/proc/7/cmdline", "larger than 1048576 bytes"), "/proc/7/cmdline: larger than 1048576 bytes"),
    ],
    ids=["no-procfs", "runaway"],
)
def test_a_failing_watch_fails_only_its_source(error, message):
    snap = snapshot(Watch(error))
    assert snap.statuses["vm"].error == message and snap.vms == {}
    assert snap.statuses["cpu"].success


def test_without_a_watch_the_source_says_so_and_off_it_is_not_read():
    assert snapshot(None).statuses["vm"].error == "the VM watch is not running"
    watch = Watch(reading())
    off = snapshot(watch, frozenset({"cpu"}))
    assert "vm" not in off.statuses and watch.at == []


def test_vm_flags():
    c = load([], {})
    assert (c.vm.rescan_seconds, c.vm.qmp_socket, c.vm.max_count, "vm" in c.collectors) == (5.0, "", 256, True)
    c = load(["--vm.rescan-interval=2s", "--vm.qmp-socket=/run/vms/{vm}/qmp.sock", "--vm.max-count=3"], {})
    assert (c.vm.rescan_seconds, c.vm.qmp_socket, c.vm.max_count) == (2.0, "/run/vms/{vm}/qmp.sock", 3)
    assert "vm" not in load(["--no-collector.vm"], {}).collectors
    assert load([], {"SYSMON_VM_MAX_COUNT": "9"}).vm.max_count == 9


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--vm.qmp-socket=/run/vms/qmp.sock", r"--vm\.qmp-socket: '/run/vms/qmp.sock' has no \{vm\}"),
        ("--vm.max-count=0", r"--vm\.max-count"),
        ("--vm.rescan-interval=10ms", r"--vm\.rescan-interval"),
    ],
    ids=["no-placeholder", "zero", "too-fast"],
)
def test_bad_vm_flags_stop_start_up_naming_the_option(arg, message):
    with pytest.raises(ConfigError, match=message):
        load([arg], {})


async def test_the_exporter_discovers_vms_on_the_samplers_chore_not_in_its_samples():
    import asyncio
    import threading

    from exporter.app import build_sampler, open_vms

    kvm = FIXTURES / "kvm-host"
    config = load(
        [f"--path.procfs={kvm / 'proc'}", "--collector.disable-defaults", "--collector.vm", "--sampler.interval=50ms"],
        {},
    )
    with open_vms(config) as watch:
        assert watch is not None and watch.background
        discovered_on: list[str] = []
        rescan = watch.rescan

        def recorded():  # type: ignore[no-untyped-def]
            discovered_on.append(threading.current_thread().name)
            return rescan()

        watch.rescan = recorded  # type: ignore[method-assign]
        readers = CpuSources(config.roots.procfs, config.roots.sysfs, 100, config.collectors, vms=watch)
        sampler = build_sampler(config, readers)
        await sampler.start()
        try:
            while (snap := sampler.latest()) is None or not snap.vms:
                await asyncio.sleep(0.01)
        finally:
            await sampler.stop()
    assert set(snap.vms) >= {"web-1", "fc-3", "ch-4"} and snap.statuses["vm"].success
    assert discovered_on and all(name.startswith("sampler-chore") for name in discovered_on)


@pytest.mark.parametrize(
    ("flags", "ingest", "skips"),
    [([], False, True), (["--grpc.listen-address=127.0.0.1:0"], False, False), ([], True, False)],
    ids=["scrapes-only", "grpc", "guest-ingest"],
)
def test_vm_discovery_no_scrape_would_read_is_skipped_only_while_scrapes_alone_read_the_samples(flags, ingest, skips):
    # The gRPC shim and the push read the latest snapshot when their callers ask; the ingest sends each tick's
    # host lines, VMs and all, down the guests' channels.
    from typing import cast

    from exporter.app import build_sampler, open_vms
    from exporter.guest.ingest import Ingest

    kvm = FIXTURES / "kvm-host"
    config = load([f"--path.procfs={kvm / 'proc'}", "--collector.vm", *flags], {})
    with open_vms(config) as watch:
        readers = CpuSources(config.roots.procfs, config.roots.sysfs, 100, config.collectors, vms=watch)
        sampler = build_sampler(config, readers, cast(Ingest, object()) if ingest else None)
        (chore,) = sampler._chores
        assert chore.name == "vm-discovery" and chore.skip_unseen is skips


class Where:
    """A real VM watch, recording the thread each read ran on."""

    def __init__(self, watch: VmWatch) -> None:
        self.watch = watch
        self.threads: list[threading.Thread] = []

    def idle(self) -> Discovery | None:
        return self.watch.idle()

    def read(self, now: float, discovery: Discovery | None = None) -> VmReadings:
        self.threads.append(threading.current_thread())
        return self.watch.read(now, discovery)


def test_with_no_vm_found_the_vm_source_is_read_on_the_samplers_thread_and_with_vms_under_the_deadline(tmp_path):
    proc = write_host(tmp_path, [Process(200, "sshd", ["/usr/sbin/sshd"])])
    watch = VmWatch(proc, background=True)
    where = Where(watch)
    readers = CpuSources(ROOT / "proc", ROOT / "sys", 100, frozenset({"cpu", "vm"}), vms=where)
    deadline = Deadline(5.0)
    watch.rescan()
    snap = take_snapshot(None, readers, SystemClock(), deadline)
    assert where.threads == [threading.current_thread()]
    assert snap.statuses["vm"].success and snap.statuses["vm"].duration_seconds >= 0 and snap.vms == {}
    write_host(tmp_path, [qemu(100, "a", 1)])
    watch.rescan()
    snap = take_snapshot(snap, readers, SystemClock(), deadline)
    assert where.threads[1] is not threading.current_thread()  # task files can block on a process in D state
    assert snap.statuses["vm"].success and set(snap.vms) == {"a"}


def test_idle_is_the_published_discovery_only_when_it_found_nothing_and_failed_not(tmp_path):
    proc = write_host(tmp_path, [Process(200, "sshd", ["/usr/sbin/sshd"])])
    watch = VmWatch(proc, background=True)
    assert watch.idle() is None  # no discovery yet
    nothing = watch.rescan()
    assert watch.idle() is nothing
    write_host(tmp_path, [qemu(100, "a", 1)])
    watch.rescan()
    assert watch.idle() is None
    assert watch.read(1.0, nothing).vms == {}  # the discovery the caller looked at, not the one published since
    assert set(watch.read(2.0).vms) == {"a"}
    (proc / "200" / "comm").unlink()
    (proc / "200" / "comm").mkdir()
    assert watch.rescan().error is not None and watch.idle() is None
    assert VmWatch(proc).idle() is None  # without background a read may discover: never idle

"""What the host knows of the guest's vCPUs: the host `vm` collector, and the host line sent down the port.

The host exporter reads the QEMU process's vCPU threads (``CPU <n>/TCG`` or ``/KVM``, named because
tests/vm/qemu.py passes ``-name NAME,debug-threads=on``) and sends one host line per sample down
the guest's agent port; the agent keeps it in /run/sysmon/host.json, where the in-guest exporter
reads the ``host`` frequency source.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.vm.conftest import HostExporter, metrics, series, wait_until
from tests.vm.qemu import GUEST_CPUS, Guest
from tests.vm.test_guest import get_status

pytestmark = pytest.mark.live

FEATURE_TIMEOUT = 60.0  # seconds: a host exporter that has the vm collector shows the VM within a few samples
BURN_SECONDS = 120  # the guest's busy loop; the test stops waiting long before unless the host is starved


def vcpu_threads(pid: int) -> dict[str, int]:
    """{vCPU number: thread id} from the QEMU process's thread names (``CPU 1/TCG``)."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        comm = (task / "comm").read_text().strip()
        if comm.startswith("CPU ") and "/" in comm:
            out[comm[4:].split("/")[0]] = int(task.name)
    return out


def run_seconds(pid: int, tid: int) -> float:
    """The thread's time on a host CPU (/proc/PID/task/TID/schedstat, first field, nanoseconds)."""
    return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9


def vm_series(host: HostExporter, name: str, vm: str) -> dict[str, float]:
    """{vcpu: value} of one of the vm collector's per-vCPU families, waiting for it to appear."""
    found = wait_until(
        lambda: series(host.metrics(), name, vm=vm),
        timeout=FEATURE_TIMEOUT,
        what=f"{name}{{vm={vm!r}}} on the host exporter (the host `vm` collector)",
    )
    return {dict(k)["vcpu"]: v for k, v in found.items()}


def test_vm_collector_shows_the_vcpu_threads_rising_while_a_guest_cpu_is_busy(
    guest_up: Guest, host_exporter: HostExporter
) -> None:
    vm, pid = guest_up.name, guest_up.proc.pid
    threads = vcpu_threads(pid)
    assert set(threads) == {str(n) for n in range(GUEST_CPUS)}, "QEMU names its vCPU threads (debug-threads=on)"
    info = wait_until(
        lambda: series(host_exporter.metrics(), "sysmon_vm_info", vm=vm),
        timeout=FEATURE_TIMEOUT,
        what=f"sysmon_vm_info{{vm={vm!r}}} on the host exporter (the host `vm` collector)",
    )
    assert [dict(k) for k in info] == [{"vm": vm, "hypervisor": "qemu", "pid": str(pid)}]
    assert series(host_exporter.metrics(), "sysmon_vm_vcpus", vm=vm) == {(("vm", vm),): float(GUEST_CPUS)}

    busy = "1"
    low = run_seconds(pid, threads[busy])
    start = vm_series(host_exporter, "sysmon_vm_vcpu_seconds_total", vm)
    high = run_seconds(pid, threads[busy])
    assert set(start) == set(threads)
    # The exporter read the same schedstat as we do, between our two reads.
    assert low - 1.0 <= start[busy] <= high + 1.0
    assert guest_up.command(f"burn {BURN_SECONDS} {busy}") == f"burning {busy}"
    wait_until(
        lambda: vm_series(host_exporter, "sysmon_vm_vcpu_seconds_total", vm)[busy] >= start[busy] + 5.0,
        timeout=BURN_SECONDS,
        what=f"vCPU {busy}'s sysmon_vm_vcpu_seconds_total to rise by 5 s while the guest keeps it busy",
    )
    now = vm_series(host_exporter, "sysmon_vm_vcpu_seconds_total", vm)
    assert now[busy] <= run_seconds(pid, threads[busy]) + 1.0
    host_cpus = vm_series(host_exporter, "sysmon_vm_vcpu_host_cpu", vm)
    assert set(host_cpus) == set(threads)
    assert all(0 <= cpu < (os.cpu_count() or 1) for cpu in host_cpus.values()), host_cpus


def host_frequencies(host: HostExporter) -> set[float]:
    """The host's own per-CPU frequencies (its frequency chain: cpufreq, cpuinfo, perf)."""
    values = set(host.metrics()["sysmon_cpu_frequency_hertz"].values())
    assert values, "the host exporter reports a frequency for its CPUs"
    return values


def test_host_frequency_line_reaches_the_guests_exporter(guest_up: Guest, host_exporter: HostExporter) -> None:
    sent = wait_until(
        lambda: series(host_exporter.metrics(), "sysmon_guest_host_lines_sent_total", vm=guest_up.name),
        timeout=FEATURE_TIMEOUT,
        what="sysmon_guest_host_lines_sent_total on the host exporter (the host line writer)",
    )
    assert next(iter(sent.values())) > 0
    host_values = host_frequencies(host_exporter)

    def host_sourced() -> dict[tuple[tuple[str, str], ...], float]:
        return series(metrics(guest_up.metrics_url), "sysmon_cpu_frequency_source_info", source="host")

    found = wait_until(
        host_sourced,
        timeout=FEATURE_TIMEOUT,
        what='sysmon_cpu_frequency_source_info{source="host"} in the guest (the agent\'s host state)',
    )
    cpus = {str(n) for n in range(GUEST_CPUS)}
    assert {dict(k)["cpu"] for k in found} == cpus
    inside = metrics(guest_up.metrics_url)["sysmon_cpu_frequency_hertz"]
    for cpu in cpus:
        assert inside[(("cpu", cpu),)] in host_values, (cpu, inside, host_values)


def test_in_guest_grpc_shim_reports_the_host_frequency(guest_up: Guest, host_exporter: HostExporter) -> None:
    host_values = host_frequencies(host_exporter)

    def host_sourced() -> list[dict[str, object]]:
        response = get_status(guest_up)
        if not response.available:
            return []
        cpus = json.loads(response.message)["status"]["cpus"]
        return cpus if all(c.get("frequency_source") == "host" for c in cpus) else []

    cpus = wait_until(
        host_sourced,
        timeout=FEATURE_TIMEOUT,
        what="GetStatus with every CPU's frequency_source \"host\" (the guest's host frequency source)",
    )
    assert {str(c["core_id"]) for c in cpus} == {str(n) for n in range(GUEST_CPUS)}
    for cpu in cpus:
        assert cpu["frequency_hz"] in host_values, (cpu, host_values)

"""VM families from a Snapshot: the VMs this host runs and each vCPU thread's time, host CPU and frequency."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.snapshot import Snapshot


def collect_vm(snap: Snapshot) -> Iterator[Metric]:
    """sysmon_vm_vcpu_seconds_total{vm="web-1",vcpu="0"} 12.5 (and info, vCPUs, wait, host CPU, frequency, cycles)."""
    if not snap.vms:
        return
    info = GaugeMetricFamily(
        "sysmon_vm_info", "1 for each VM process this host runs (vm: its name).", labels=["vm", "hypervisor", "pid"]
    )
    count = GaugeMetricFamily(
        "sysmon_vm_vcpus", "vCPU threads found in the VM's process (0 where they cannot be told apart).", labels=["vm"]
    )
    run = CounterMetricFamily(
        "sysmon_vm_vcpu_seconds_total",
        "Seconds the vCPU's host thread ran on a host CPU (schedstat).",
        labels=["vm", "vcpu"],
    )
    wait = CounterMetricFamily(
        "sysmon_vm_vcpu_wait_seconds_total",
        "Seconds the vCPU's host thread was runnable but waiting for a host CPU: the guest's steal (schedstat).",
        labels=["vm", "vcpu"],
    )
    host_cpu = GaugeMetricFamily(
        "sysmon_vm_vcpu_host_cpu", "The host CPU the vCPU's thread last ran on (stat field 39).", labels=["vm", "vcpu"]
    )
    frequency = GaugeMetricFamily(
        "sysmon_vm_vcpu_frequency_hertz",
        "Frequency of the host CPU the vCPU last ran on, as sysmon_cpu_frequency_hertz has it.",
        labels=["vm", "vcpu"],
    )
    cycles = CounterMetricFamily(
        "sysmon_vm_vcpu_cycles_total",
        "Cycles the vCPU's host thread ran, from a per-thread perf counter (where the host has a PMU).",
        labels=["vm", "vcpu"],
    )
    for name, vm in snap.vms.items():
        info.add_metric([name, vm.hypervisor, str(vm.pid)], 1)
        count.add_metric([name], len(vm.vcpus))
        for n, v in vm.vcpus.items():
            labels = [name, str(n)]
            run.add_metric(labels, v.run_seconds)
            wait.add_metric(labels, v.wait_seconds)
            host_cpu.add_metric(labels, v.host_cpu)
            if v.frequency is not None:
                frequency.add_metric(labels, v.frequency.hertz)
            if v.cycles is not None:
                cycles.add_metric(labels, v.cycles)
    yield from (m for m in (info, count, run, wait, host_cpu, frequency, cycles) if m.samples)

"""VM families from a Snapshot: the VMs this host runs and each vCPU thread's time, host CPU and frequency.

Written straight to text (collector/exposition.py) with each vCPU's labels
escaped once for its five series: a host with 50 VMs of 8 vCPUs has 2,000
of them, renewed at every sample.
"""

from __future__ import annotations

from exporter.collector.exposition import Family, Piece, escape_label_value, format_families, format_value
from exporter.snapshot import Snapshot


def _families() -> dict[str, Family]:
    families = [
        Family("sysmon_vm_info", "gauge", "1 for each VM process this host runs (vm: its name)."),
        Family(
            "sysmon_vm_vcpus", "gauge", "vCPU threads found in the VM's process (0 where they cannot be told apart)."
        ),
        Family(
            "sysmon_vm_vcpu_seconds_total", "counter", "Seconds the vCPU's host thread ran on a host CPU (schedstat)."
        ),
        Family(
            "sysmon_vm_vcpu_wait_seconds_total",
            "counter",
            "Seconds the vCPU's host thread was runnable but waiting for a host CPU: the guest's steal (schedstat).",
        ),
        Family("sysmon_vm_vcpu_host_cpu", "gauge", "The host CPU the vCPU's thread last ran on (stat field 39)."),
        Family(
            "sysmon_vm_vcpu_frequency_hertz",
            "gauge",
            "Frequency of the host CPU the vCPU last ran on, as sysmon_cpu_frequency_hertz has it.",
        ),
        Family(
            "sysmon_vm_vcpu_cycles_total",
            "counter",
            "Cycles the vCPU's host thread ran, from a per-thread perf counter (where the host has a PMU).",
        ),
    ]
    return {f.name: f for f in families}


def render_vm(snap: Snapshot) -> list[Piece]:
    """sysmon_vm_vcpu_seconds_total{vm="web-1",vcpu="0"} 12.5 (and info, vCPUs, wait, host CPU, frequency, cycles)."""
    if not snap.vms:
        return []
    f = _families()
    info, count = f["sysmon_vm_info"].lines, f["sysmon_vm_vcpus"].lines
    run, wait = f["sysmon_vm_vcpu_seconds_total"].lines, f["sysmon_vm_vcpu_wait_seconds_total"].lines
    host_cpu, freq = f["sysmon_vm_vcpu_host_cpu"].lines, f["sysmon_vm_vcpu_frequency_hertz"].lines
    cycles = f["sysmon_vm_vcpu_cycles_total"].lines
    for name, vm in snap.vms.items():
        vm_label = f'vm="{escape_label_value(name)}"'
        info.append(f'sysmon_vm_info{{{vm_label},hypervisor="{vm.hypervisor}",pid="{vm.pid}"}} 1\n')
        count.append(f"sysmon_vm_vcpus{{{vm_label}}} {len(vm.vcpus)}\n")
        for n, v in vm.vcpus.items():
            labels = f'{{{vm_label},vcpu="{n}"}} '
            run.append(f"sysmon_vm_vcpu_seconds_total{labels}{format_value(v.run_seconds)}\n")
            wait.append(f"sysmon_vm_vcpu_wait_seconds_total{labels}{format_value(v.wait_seconds)}\n")
            host_cpu.append(f"sysmon_vm_vcpu_host_cpu{labels}{v.host_cpu}\n")
            if v.frequency is not None:
                freq.append(f"sysmon_vm_vcpu_frequency_hertz{labels}{format_value(v.frequency.hertz)}\n")
            if v.cycles is not None:
                cycles.append(f"sysmon_vm_vcpu_cycles_total{labels}{format_value(v.cycles)}\n")
    return format_families(f.values())

"""Synthetic host trees for benchmarks, in the kernel's formats (see tests/fixtures/hosts/*)."""

from __future__ import annotations

from pathlib import Path


def make_cpufreq_host(root: Path, cpus: int) -> None:
    """/proc/stat, /proc/cpuinfo, /proc/meminfo and cpufreq sysfs for ``cpus`` CPUs."""
    proc = root / "proc"
    proc.mkdir(parents=True)
    lines = [f"cpu  {' '.join(str(v * cpus) for v in range(1000, 1010))}"]
    lines += [f"cpu{c} " + " ".join(str(1000 + c + i) for i in range(10)) for c in range(cpus)]
    lines += ["intr 1 0", "ctxt 1", "btime 1700000000", "processes 1", "procs_running 1", "procs_blocked 0"]
    (proc / "stat").write_text("\n".join(lines) + "\n")
    block = (
        "processor\t: {c}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
        "model name\t: Intel(R) Xeon(R) Platinum 8480+\ncpu MHz\t\t: {mhz:.3f}\ncache size\t: 107520 KB\n"
        "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi\n"
        "bogomips\t: 4000.00\npower management:\n\n"
    )
    (proc / "cpuinfo").write_text("".join(block.format(c=c, mhz=800 + c) for c in range(cpus)))
    (proc / "meminfo").write_text(
        "MemTotal: 1056000000 kB\nMemFree: 900000000 kB\nMemAvailable: 1000000000 kB\nBuffers: 1000 kB\n"
        "Cached: 50000000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\nSReclaimable: 100000 kB\n"
    )
    base = root / "sys" / "devices" / "system" / "cpu"
    for c in range(cpus):
        policy = base / f"cpu{c}" / "cpufreq"
        policy.mkdir(parents=True)
        for name, value in (
            ("scaling_cur_freq", 800000 + c * 1000),
            ("cpuinfo_min_freq", 800000),
            ("cpuinfo_max_freq", 3800000),
            ("scaling_min_freq", 800000),
            ("scaling_max_freq", 3800000),
            ("scaling_governor", "powersave"),
            ("cpuinfo_cur_freq", 800000 + c * 1000),
            ("scaling_driver", "intel_pstate"),
        ):
            (policy / name).write_text(f"{value}\n")
    (base / "online").write_text(f"0-{cpus - 1}\n")
    (base / "present").write_text(f"0-{cpus - 1}\n")

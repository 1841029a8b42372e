"""Synthetic procfs trees of a VM host: hypervisor processes with vCPU threads among ordinary processes.

The file formats are the kernel's: ``<pid>/stat`` lines are this machine's own
``/proc/self/stat`` line (copied on 2026-12-02, kernel 6.18, 52 fields) with
the pid, command name, parent and field 39 (processor) replaced;
``schedstat`` is ``run_ns wait_ns timeslices``; ``comm`` ends with a newline;
``cmdline`` is NUL-separated with a trailing NUL. Used by the fixture tree
``tests/fixtures/hosts/kvm-host`` (``python -m tests.vmhost DIR`` writes it), the
``vm`` source's tests and ``tests/bench/bench_vm.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# /proc/self/stat of `cat` on the build machine; {pid}, {comm}, {ppid} and {cpu} (field 39) are filled in.
STAT = (
    "{pid} ({comm}) S {ppid} {ppid} 3484 0 -1 4194304 99 0 0 0 0 0 0 0 20 0 1 0 36662 3133440 409 "
    "18446744073709551615 94731683315712 94731683335593 140735971900080 0 0 0 0 0 0 0 0 0 17 {cpu} 0 0 0 0 0 "
    "94731683351600 94731683353216 94732537761792 140735971908126 140735971908146 140735971908146 "
    "140735971909611 0\n"
)


@dataclass(frozen=True)
class Thread:
    tid: int
    comm: str
    run_ns: int = 0
    wait_ns: int = 0
    cpu: int = 0


@dataclass(frozen=True)
class Process:
    pid: int
    comm: str
    argv: Sequence[str]
    threads: Sequence[Thread] = field(default_factory=tuple)  # besides the main thread (tid == pid)


def write_process(proc: Path, p: Process) -> None:
    base = proc / str(p.pid)
    (base / "task").mkdir(parents=True)
    (base / "comm").write_text(p.comm + "\n")
    (base / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in p.argv))
    (base / "stat").write_text(STAT.format(pid=p.pid, comm=p.comm, ppid=1, cpu=0))
    for t in (Thread(p.pid, p.comm), *p.threads):
        task = base / "task" / str(t.tid)
        task.mkdir()
        (task / "comm").write_text(t.comm + "\n")
        (task / "stat").write_text(STAT.format(pid=t.tid, comm=t.comm, ppid=1, cpu=t.cpu))
        (task / "schedstat").write_text(f"{t.run_ns} {t.wait_ns} {t.run_ns // 3_000_000 + 1}\n")


def qemu(pid: int, name: str, vcpus: int, accel: str = "KVM", debug_threads: bool = True, cpus: int = 2) -> Process:
    """A QEMU as libvirt starts it: main thread, call_rcu, an I/O thread, vCPU threads, a worker."""
    opt = f"guest={name},debug-threads=on" if debug_threads else name
    argv = ["/usr/bin/qemu-system-x86_64", "-name", opt, "-machine", "pc-q35-8.2", "-smp", str(vcpus), "-m", "2048"]
    other = "qemu-system-x86"
    threads = [Thread(pid + 1, "call_rcu" if debug_threads else other), Thread(pid + 2, "IO mon_iothread")]
    for n in range(vcpus):
        comm = f"CPU {n}/{accel}" if debug_threads else other
        threads.append(Thread(pid + 3 + n, comm, 1_000_000_000 * (n + 1) + pid, 20_000_000 * (n + 1), (n + pid) % cpus))
    threads.append(Thread(pid + 3 + vcpus, "worker"))
    return Process(pid, "qemu-system-x86", argv, threads)


def firecracker(pid: int, vm_id: str, vcpus: int, cpus: int = 2) -> Process:
    threads = [Thread(pid + 1, "fc_api")]
    threads += [Thread(pid + 2 + n, f"fc_vcpu {n}", 5_000_000_000 + n, 7_000_000, n % cpus) for n in range(vcpus)]
    return Process(pid, "firecracker", ["firecracker", "--id", vm_id, "--api-sock", f"/run/fc/{vm_id}.sock"], threads)


def cloud_hypervisor(pid: int, socket: str, vcpus: int, cpus: int = 2) -> Process:
    threads = [Thread(pid + 1, "vmm"), Thread(pid + 2, "http-server")]
    threads += [Thread(pid + 3 + n, f"vcpu{n}", 3_000_000_000 + n, 1_000_000, (n + 1) % cpus) for n in range(vcpus)]
    argv = ["cloud-hypervisor", "--api-socket", f"path={socket}", "--cpus", f"boot={vcpus}"]
    return Process(pid, "cloud-hyperviso", argv, threads)


def ordinary(pid: int) -> Process:
    if pid % 10 == 2:
        return Process(pid, f"kworker/{pid % 2}:1", ())  # kernel thread: no command line
    return Process(pid, "sshd" if pid % 3 else "python3", ["/usr/sbin/sshd", "-D"] if pid % 3 else ["python3", "x.py"])


def kvm_host() -> list[Process]:
    """The committed fixture: one VM of each kind and way of naming, a QEMU without thread names, bystanders."""
    return [
        Process(1, "systemd", ["/sbin/init"]),
        Process(2, "kthreadd", ()),
        # a process that is no hypervisor, with a thread named like a vCPU: ignored
        Process(300, "python3", ["python3", "vcpu-lookalike.py"], (Thread(301, "CPU 0/KVM"),)),
        qemu(2101, "web-1", 2),
        qemu(2201, "db-2", 2, debug_threads=False),
        firecracker(2301, "fc-3", 1),
        cloud_hypervisor(2401, "/run/ch/ch-4.sock", 2),
        qemu(2501, "tcg-5", 1, accel="TCG"),
        # -name without guest= and an unknown accelerator's thread name next to a known one
        Process(
            2601,
            "qemu-system-x86",
            ["qemu-system-x86_64", "-name", "plain,,6,debug-threads=on"],
            (Thread(2602, "CPU 0/KVM", 42_000_000, 1_000, 1), Thread(2603, "CPU 1/XYZ", 5, 5, 0)),
        ),
        Process(2701, "qemu-kvm", ["/usr/libexec/qemu-kvm", "-m", "512"], (Thread(2702, "CPU 0/KVM", 10, 2, 0),)),
    ]


def write_host(root: Path, processes: Sequence[Process]) -> Path:
    """Writes ``root/proc/<pid>/...`` for each process; returns the procfs root."""
    proc = root / "proc"
    proc.mkdir(parents=True, exist_ok=True)
    for p in processes:
        write_process(proc, p)
    return proc


def bench_host(root: Path, vms: int = 50, vcpus: int = 8, processes: int = 2000) -> Path:
    """``vms`` QEMU processes of ``vcpus`` vCPUs among ``processes`` processes in all."""
    procs = [ordinary(pid) for pid in range(1, processes - vms + 1)]
    procs += [qemu(100_000 + 100 * i, f"vm-{i}", vcpus, cpus=64) for i in range(vms)]
    return write_host(root, procs)


if __name__ == "__main__":
    write_host(Path(sys.argv[1]), kvm_host())

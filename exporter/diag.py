"""``sysmon-exporter diag``: what works on this machine, each failing line with its fix.

Every check reads below explicit roots (``--path.procfs``, ``--path.sysfs``,
``--path.dev``), so it runs the same on a fixture tree. The exit status is 1
when the configured ``--agent.channel`` or a collector requested with
``--collector.<name>`` cannot work; other failing lines are advice.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exporter.config import DIAG, Address
from exporter.guest.channel import DEFAULT_PORT_NAME
from exporter.snapshot import describe
from exporter.sources import SourceError
from exporter.sources.bpf import BpfUnavailable
from exporter.sources.syscalls import Filter, SyscallCounter

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38  # Linux 5.8, commit 980737282232
# perf's core PMU registers as "cpu" (x86), "cpu_core"/"cpu_atom" (hybrid x86) or armv8_* (arm64).
CORE_PMUS = ("cpu", "cpu_core", "cpu_atom")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False  # a failure makes the exit status non-zero


@dataclass(frozen=True)
class Roots:
    procfs: Path
    sysfs: Path
    dev: Path


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _mounts(roots: Roots) -> list[tuple[str, str]]:
    """(mount point, fs type) from /proc/self/mounts."""
    text = _read(roots.procfs / "self" / "mounts") or ""
    return [(f[1], f[2]) for f in (line.split() for line in text.splitlines()) if len(f) >= 3]


def virtio_ports(roots: Roots) -> dict[str, str]:
    """{vportNpM: name} from /sys/class/virtio-ports."""
    out = {}
    for entry in sorted((roots.sysfs / "class" / "virtio-ports").glob("*/name")):
        out[entry.parent.name] = (_read(entry) or "").strip()
    return out


def check_virtio_ports(roots: Roots) -> Check:
    ports = virtio_ports(roots)
    if not ports:
        return Check(
            "virtio-ports",
            False,
            f"{roots.sysfs}/class/virtio-ports: no virtio-serial ports",
            "give the VM a port: -device virtio-serial -chardev socket,id=sysmon,path=/run/vms/NAME/agent.sock,"
            f"server=on,wait=off -device virtserialport,chardev=sysmon,name={DEFAULT_PORT_NAME}",
        )
    return Check("virtio-ports", True, ", ".join(f"{k}={v or '(unnamed)'}" for k, v in ports.items()))


def _writable(path: Path, what: str) -> tuple[bool, str, str]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False, f"{path}: missing", f"create {what} or pass the right path"
    except OSError as e:
        return False, f"{path}: {e.strerror}", "check the permissions of its directory"
    if not os.access(path, os.W_OK):
        return False, f"{path}: not writable by uid {os.geteuid()}", f"run as root or add a udev rule granting {what}"
    kind = "socket" if stat.S_ISSOCK(mode) else "character device" if stat.S_ISCHR(mode) else "file"
    return True, f"{path}: writable {kind}", ""


def check_channel(roots: Roots, channel: Address | None) -> Check:
    address = channel or Address("virtio")
    name = "agent channel " + (
        str(address) if channel is not None else "(default: virtio port " + DEFAULT_PORT_NAME + ")"
    )
    required = channel is not None
    if address.kind == "virtio":
        path = address.path
        if path is None:
            ports = {v: k for k, v in virtio_ports(roots).items()}
            if DEFAULT_PORT_NAME not in ports:
                return Check(
                    name,
                    False,
                    f"no virtio-serial port named {DEFAULT_PORT_NAME}",
                    f"add a virtserialport with name={DEFAULT_PORT_NAME}, or pass --agent.channel",
                    required,
                )
            path = roots.dev / ports[DEFAULT_PORT_NAME]
        ok, detail, fix = _writable(path, "the agent write access to the port")
        return Check(name, ok, detail, fix, required)
    if address.kind == "unix":
        assert address.path is not None
        ok, detail, fix = _writable(address.path, "the host's socket")
        return Check(name, ok, detail, fix, required)
    vsock = check_vsock(roots)
    if not vsock.ok:
        return Check(name, False, vsock.detail, vsock.fix, required)
    try:
        socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM).close()
    except OSError as e:
        return Check(name, False, f"AF_VSOCK socket: {e.strerror}", "load vmw_vsock_virtio_transport", required)
    return Check(name, True, f"AF_VSOCK available; connects to CID {address.cid} port {address.port}", "", required)


def check_vsock(roots: Roots) -> Check:
    path = roots.dev / "vsock"
    if not path.exists():
        return Check(
            "/dev/vsock",
            False,
            f"{path}: missing",
            "give the VM a vhost-vsock-pci device (guest-cid=N) and load virtio_vsock, or use virtio-serial",
        )
    return Check("/dev/vsock", True, f"{path}: present")


def check_cpufreq(roots: Roots, requested: bool) -> Check:
    base = roots.sysfs / "devices" / "system" / "cpu"
    found = sorted(base.glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))
    if not found:
        return Check(
            "cpufreq",
            False,
            f"{base}/cpu*/cpufreq: missing (no cpufreq driver, as in most VMs); frequency comes from /proc/cpuinfo",
            "on bare metal load a cpufreq driver (intel_pstate, amd-pstate, acpi-cpufreq); in a VM nothing to do",
            requested,
        )
    return Check("cpufreq", True, f"{len(found)} CPUs with scaling_cur_freq", "", requested)


def _capabilities(roots: Roots) -> int:
    for line in (_read(roots.procfs / "self" / "status") or "").splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def core_pmu(sysfs: Path) -> str | None:
    """The kernel's core PMU (hardware cycle counters), if it registered one."""
    devices = sysfs / "bus" / "event_source" / "devices"
    for name in CORE_PMUS:
        if (devices / name).exists():
            return name
    arm = sorted(devices.glob("armv8*"))
    return arm[0].name if arm else None


def check_perf(roots: Roots, requested: bool) -> Check:
    paranoid_text = (_read(roots.procfs / "sys" / "kernel" / "perf_event_paranoid") or "").strip()
    caps = _capabilities(roots)
    has_cap = bool(caps & (1 << CAP_PERFMON) or caps & (1 << CAP_SYS_ADMIN))
    # CPU-wide events (pid=-1) need paranoid <= 0 without CAP_PERFMON/CAP_SYS_ADMIN
    # (Documentation/admin-guide/perf-security.rst).
    permitted = has_cap or (paranoid_text.lstrip("-").isdigit() and int(paranoid_text) <= 0)
    who = "CAP_PERFMON/CAP_SYS_ADMIN held" if has_cap else "no CAP_PERFMON"
    detail = f"perf_event_paranoid={paranoid_text or '?'}, {who}"
    pmu = core_pmu(roots.sysfs)
    if not permitted:
        return Check(
            "perf",
            False,
            detail + ": CPU-wide counters not permitted",
            "run as root, grant CAP_PERFMON as an ambient capability (systemd: AmbientCapabilities=CAP_PERFMON; "
            "a container: uid 0 with --cap-add PERFMON), or sysctl kernel.perf_event_paranoid=0",
            requested,
        )
    if pmu is None:
        return Check(
            "perf",
            False,
            detail + f"; but no core PMU in {roots.sysfs}/bus/event_source/devices: no hardware cycle counters",
            "the hypervisor does not expose a PMU; enable vPMU (QEMU -cpu host,pmu=on) or turn off "
            "--collector.perf; frequency then comes from cpufreq or /proc/cpuinfo",
            requested,
        )
    return Check("perf", True, detail + f"; core PMU {pmu}", "", requested)


def check_readable(name: str, path: Path, requested: bool) -> Check:
    if _read(path) is None:
        return Check(name, False, f"{path}: unreadable", "pass --path.procfs pointing at a mounted procfs", requested)
    return Check(name, True, f"{path}: readable", "", requested)


def check_cgroups(roots: Roots, requested: bool) -> Check:
    mounts = _mounts(roots)
    v2 = [m for m, t in mounts if t == "cgroup2"]
    v1 = [m for m, t in mounts if t == "cgroup"]
    if not v1 and not v2:
        return Check(
            "cgroups", False, "no cgroup filesystem mounted", "mount -t cgroup2 none /sys/fs/cgroup", requested
        )
    layout = "hybrid (v1 controllers + cgroup2)" if v1 and v2 else "unified (cgroup2)" if v2 else "legacy (v1)"
    return Check("cgroups", True, f"{layout}: " + ", ".join(v2 + v1)[:200], "", requested)


def check_syscalls(roots: Roots) -> Check:
    """Load and attach the syscall counters once, then release them: the only sure test."""
    try:
        SyscallCounter(roots.procfs, roots.sysfs, Filter()).close()
    except (BpfUnavailable, SourceError, OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, BpfUnavailable) and e.strerror else describe(e)
        return Check(
            "syscalls",
            False,
            f"cannot attach the eBPF counters: {reason}",
            "run as root, or grant CAP_BPF and CAP_PERFMON",
            True,
        )
    return Check("syscalls", True, "eBPF counters load and attach", "", True)


def check_tracefs(roots: Roots) -> Check:
    points = [m for m, t in _mounts(roots) if t == "tracefs"]
    if not points:
        return Check("tracefs", False, "not mounted", "mount -t tracefs nodev /sys/kernel/tracing")
    return Check("tracefs", True, "mounted at " + ", ".join(points))


def check_port(host: str, port: int) -> Check:
    name = f"port {host or '*'}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return Check(name, False, f"cannot bind: {e.strerror}", "stop what uses it or pass --web.listen-address")
    return Check(name, True, "free")


def run_checks(v: Mapping[str, Any]) -> list[Check]:
    roots = Roots(v["path_procfs"], v["path_sysfs"], v["path_dev"])
    host, port = v["web_listen_address"]

    def requested(name: str) -> bool:
        return v[f"collector_{name}"] is True

    return [
        check_virtio_ports(roots),
        check_channel(roots, v["agent_channel"]),
        check_vsock(roots),
        check_readable("cpu", roots.procfs / "stat", requested("cpu")),
        check_readable("cpuinfo", roots.procfs / "cpuinfo", requested("cpuinfo")),
        check_readable("meminfo", roots.procfs / "meminfo", requested("meminfo")),
        check_readable("filesystem", roots.procfs / "self" / "mounts", requested("filesystem")),
        check_cpufreq(roots, requested("cpufreq")),
        check_perf(roots, requested("perf")),
        check_cgroups(roots, requested("cgroup")),
        check_tracefs(roots),
        *([check_syscalls(roots)] if requested("syscalls") else []),
        check_port(host, port),
    ]


def render_text(checks: Sequence[Check]) -> str:
    lines = []
    for c in checks:
        mark = " ok " if c.ok else ("FAIL" if c.required else "warn")
        lines.append(f"[{mark}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    return "\n".join(lines)


def run_diag(argv: Sequence[str], env: Mapping[str, str]) -> int:
    v = DIAG.parse(argv, env)
    checks = run_checks(v)
    failed = any(c.required and not c.ok for c in checks)
    if v["json"]:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render_text(checks))
    return 1 if failed else 0

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

from exporter.catalogue import SOURCES, Roots, Source
from exporter.config import Address, DiagConfig, load_diag
from exporter.guest.channel import DEFAULT_PORT_NAME
from exporter.snapshot import describe
from exporter.sources import SourceError, read_small
from exporter.sources.mountinfo import read_mountinfo

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


def _read(path: Path) -> str | None:
    """A small kernel file's text, or None when it cannot be read (a check says why)."""
    try:
        return read_small(path)
    except (OSError, SourceError):
        return None


def _mounts(roots: Roots) -> list[tuple[str, str]]:
    """(mount point, fs type) from /proc/self/mountinfo."""
    try:
        return [(m.mount_point, m.fstype) for m in read_mountinfo(roots.procfs, "self")]
    except (OSError, SourceError):
        return []


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


def explain_perf(roots: Roots) -> tuple[str, str]:
    """Why perf cannot count here: the kernel's paranoia level, our capabilities and whether a core PMU exists."""
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
        return detail + ": CPU-wide counters not permitted", SOURCES["perf"].fix
    if pmu is None:
        return (
            detail + f"; but no core PMU in {roots.sysfs}/bus/event_source/devices: no hardware cycle counters",
            "the hypervisor does not expose a PMU; enable vPMU (QEMU -cpu host,pmu=on) or turn off "
            "--collector.perf; frequency then comes from cpufreq or /proc/cpuinfo",
        )
    return detail + f"; core PMU {pmu}", SOURCES["perf"].fix


def check_source(source: Source, roots: Roots, requested: bool) -> Check:
    """Runs the source's real reader once (catalogue ``probe``): ok with what it read, or why not."""
    try:
        summary = source.probe(roots)
    except Exception as e:  # any failure of a reader is a failed check, never a crash of diag
        detail, fix = describe(e), source.fix
        if source.name == "perf":
            why, fix = explain_perf(roots)
            detail = f"{detail}; {why}"
        return Check(source.name, False, detail, fix, requested)
    if source.name == "perf":
        summary = f"{summary}; {explain_perf(roots)[0]}"
    return Check(source.name, True, summary, "", requested)


def check_sources(roots: Roots, requested: frozenset[str], refused: frozenset[str]) -> list[Check]:
    """Every catalogued source this exporter would read by default, and those asked for; none turned off."""
    return [
        check_source(s, roots, s.name in requested)
        for s in SOURCES.values()
        if s.name not in refused and (s.name in requested or (s.default and s.flag))
    ]


def run_checks(config: DiagConfig) -> list[Check]:
    roots = config.roots
    host, port = config.flags.listen_address
    return [
        check_virtio_ports(roots),
        check_channel(roots, config.flags.channel),
        check_vsock(roots),
        *check_sources(roots, config.requested, config.refused),
        check_cgroup_layout(roots),
        check_tracefs(roots),
        check_port(host, port),
    ]


def check_cgroup_layout(roots: Roots) -> Check:
    mounts = _mounts(roots)
    v2 = [m for m, t in mounts if t == "cgroup2"]
    v1 = [m for m, t in mounts if t == "cgroup"]
    if not v1 and not v2:
        return Check("cgroups", False, "no cgroup filesystem mounted", "mount -t cgroup2 none /sys/fs/cgroup")
    layout = "hybrid (v1 controllers + cgroup2)" if v1 and v2 else "unified (cgroup2)" if v2 else "legacy (v1)"
    return Check("cgroups", True, f"{layout}: " + ", ".join(v2 + v1)[:200])


def render_text(checks: Sequence[Check]) -> str:
    lines = []
    for c in checks:
        mark = " ok " if c.ok else ("FAIL" if c.required else "warn")
        lines.append(f"[{mark}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    return "\n".join(lines)


def run_diag(argv: Sequence[str], env: Mapping[str, str]) -> int:
    config = load_diag(argv, env)
    checks = run_checks(config)
    failed = any(c.required and not c.ok for c in checks)
    if config.flags.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render_text(checks))
    return 1 if failed else 0

"""``sysmon-exporter diag`` on this machine and on fixture trees (explicit roots)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.diag import core_pmu, run_diag
from tests.helpers import FIXTURES, ROOT, free_port, require_root

GUEST = FIXTURES / "guest-virtio"


def roots(root: Path) -> list[str]:
    return [
        f"--path.procfs={root / 'proc'}",
        f"--path.sysfs={root / 'sys'}",
        f"--path.dev={root / 'dev'}",
        f"--path.cgroupfs={root / 'sys' / 'fs' / 'cgroup'}",
        f"--path.rootfs={root}",
    ]


def diag_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict]]:  # type: ignore[type-arg]
    code = run_diag([*argv, "--json", f"--web.listen-address=127.0.0.1:{free_port()}"], {})
    out = json.loads(capsys.readouterr().out)
    return code, {c["name"].split(" (")[0]: c for c in out["checks"]}


def test_fixture_guest(capsys):
    code, checks = diag_json([*roots(GUEST), "--agent.channel=virtio:"], capsys)
    assert code == 0
    assert checks["virtio-ports"]["ok"] and "vport0p2=org.sysmon.agent" in checks["virtio-ports"]["detail"]
    channel = checks["agent channel virtio:"]
    assert channel["ok"] and channel["required"] and str(GUEST / "dev" / "vport0p2") in channel["detail"]
    assert not checks["/dev/vsock"]["ok"] and checks["/dev/vsock"]["fix"]
    assert checks["cpufreq"]["ok"]
    perf = checks["perf"]
    assert not perf["ok"] and "perf_event_paranoid=2, no CAP_PERFMON" in perf["detail"]
    assert "CAP_PERFMON" in perf["fix"] and not perf["required"]
    assert checks["cgroups"]["detail"].startswith("unified (cgroup2)")
    assert checks["tracefs"]["ok"]


def test_requested_collector_or_channel_that_cannot_work_fails(capsys):
    code, checks = diag_json([*roots(GUEST), "--collector.perf"], capsys)
    assert code == 1 and checks["perf"]["required"]
    code, checks = diag_json([*roots(GUEST), "--agent.channel=vsock:2:9477"], capsys)
    assert code == 1 and "missing" in checks["agent channel vsock:2:9477"]["detail"]


def test_text_output_names_the_fix(tmp_path, capsys):
    (tmp_path / "proc").mkdir()
    code = run_diag([*roots(tmp_path), f"--agent.channel=unix:{tmp_path / 'none.sock'}"], {})
    text = capsys.readouterr().out
    assert code == 1
    assert f"[FAIL] agent channel unix:{tmp_path / 'none.sock'}: {tmp_path / 'none.sock'}: missing" in text
    assert "[warn] tracefs: not mounted\n       fix: mount -t tracefs nodev /sys/kernel/tracing" in text
    assert "[warn] cgroups: no cgroup filesystem mounted" in text


@pytest.mark.parametrize(
    ("flag", "check"),
    [("cgroup", "cgroup"), ("filesystem", "filesystem"), ("syscalls", "syscalls")],
    ids=["cgroup", "filesystem", "syscalls"],
)
def test_every_requested_collector_is_checked(tmp_path, capsys, flag, check):
    # An empty tree: no mounts, no cgroups, no sysfs for the eBPF counters.
    (tmp_path / "proc").mkdir()
    code, checks = diag_json([*roots(tmp_path), f"--collector.{flag}"], capsys)
    assert code == 1 and checks[check]["required"] and not checks[check]["ok"] and checks[check]["fix"]
    code, checks = diag_json(roots(tmp_path), capsys)
    assert code == 0 and not checks.get(check, {}).get("required", False)


@pytest.mark.live
def test_requested_syscalls_collector_attaches_on_this_machine(capsys):
    require_root()
    code, checks = diag_json(["--collector.syscalls", "--collector.cgroup", "--collector.filesystem"], capsys)
    assert code == 0, checks
    assert checks["syscalls"]["ok"] and checks["cgroup"]["ok"] and checks["filesystem"]["ok"]
    assert checks["cgroups"]["ok"]


def test_perf_check_opens_the_real_counters_and_explains_the_tree(tmp_path, capsys):
    # The tree claims CAP_PERFMON and a core PMU; perf_event_open still asks this kernel, so the verdict is
    # the kernel's (a core PMU and root here), and the detail explains what the tree says.
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "status").write_text(f"CapEff:\t{1 << 38:016x}\n")
    (tmp_path / "proc" / "stat").write_bytes((FIXTURES / "vm-2cpu" / "proc" / "stat").read_bytes())
    (tmp_path / "sys" / "bus" / "event_source" / "devices" / "cpu").mkdir(parents=True)
    code, checks = diag_json([*roots(tmp_path), "--collector.perf"], capsys)
    counts_here = core_pmu(Path("/sys")) is not None and os.geteuid() == 0
    assert checks["perf"]["ok"] == counts_here and code == (0 if counts_here else 1)
    assert "core PMU cpu" in checks["perf"]["detail"] and checks["perf"]["required"]
    if not counts_here:
        assert checks["perf"]["fix"]


def test_every_catalogued_source_has_a_check(tmp_path, capsys):
    from exporter.catalogue import SOURCES

    (tmp_path / "proc").mkdir()
    _, checks = diag_json([*roots(tmp_path), *(f"--collector.{n}" for n in SOURCES if SOURCES[n].flag)], capsys)
    assert {n for n in SOURCES if SOURCES[n].flag} <= checks.keys()
    _, checks = diag_json([*roots(tmp_path), "--no-collector.cpu"], capsys)
    assert "cpu" not in checks and "meminfo" in checks and "syscalls" not in checks


def test_busy_port_is_reported(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        run_diag([*roots(GUEST), f"--web.listen-address=127.0.0.1:{port}", "--json"], {})
    out = json.loads(capsys.readouterr().out)
    check = next(c for c in out["checks"] if c["name"] == f"port 127.0.0.1:{port}")
    assert not check["ok"] and "--web.listen-address" in check["fix"]


@pytest.mark.live
def test_this_machine_as_a_process():
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "diag", "--json", "--collector.meminfo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    out = json.loads(result.stdout)
    checks = {c["name"].split(" (")[0]: c for c in out["checks"]}
    assert result.returncode == 0, result.stdout
    assert checks["meminfo"]["ok"] and checks["cpu"]["ok"]
    has_cpufreq = any(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))
    assert checks["cpufreq"]["ok"] == has_cpufreq
    assert checks["/dev/vsock"]["ok"] == Path("/dev/vsock").exists()
    pmu = core_pmu(Path("/sys"))
    if pmu is None:  # this machine: a Firecracker guest without a virtual PMU
        assert "no core PMU" in checks["perf"]["detail"] and not checks["perf"]["ok"]
    else:
        assert f"core PMU {pmu}" in checks["perf"]["detail"] or "not permitted" in checks["perf"]["detail"]
    mounts = Path("/proc/self/mounts").read_text()
    assert checks["tracefs"]["ok"] == (" tracefs " in mounts)
    assert checks["cgroups"]["ok"] == (" cgroup" in mounts)
    if not has_cpufreq:
        requested = subprocess.run(
            [sys.executable, "-m", "exporter", "diag", "--collector.cpufreq"], capture_output=True, text=True, cwd=ROOT
        )
        assert requested.returncode == 1
        assert "[FAIL] cpufreq:" in requested.stdout

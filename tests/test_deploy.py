"""The systemd unit runs flags the exporter accepts, as root, restarting on failure."""

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

from exporter.app import FD_RESERVE
from exporter.config import AGENT, SERVE, Address
from exporter.config.web import WebConfig
from tests.helpers import ROOT, require_binary

SERVE_DEFAULT_MAX_CONNECTIONS = WebConfig().max_connections
UNIT = ROOT / "deploy" / "sysmon-exporter-sysmon-vm.service"


def test_sysmon_vm_unit():
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == "root"
    assert service["Restart"] == "on-failure"
    # room for every web client the default cap admits, plus the sources' reserve
    assert int(service["LimitNOFILE"]) >= SERVE_DEFAULT_MAX_CONNECTIONS + FD_RESERVE
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/sysmon-exporter")
    values = SERVE.parse(argv[1:], {})  # unknown flags raise ConfigError
    assert str(values["sysmon-vm.config"]) == "/etc/serviceradar/checkers/sysmon-vm.json"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "serviceradar-sysmon-vm.service" in unit["Unit"]["Conflicts"]


def systemd_verify(path: Path, tmp_path: Path) -> None:
    """systemd-analyze verify, with ExecStart pointed at this venv's sysmon-exporter (the unit's path needs pip)."""
    analyze = require_binary("systemd-analyze")
    installed = Path(sys.executable).parent / "sysmon-exporter"
    unit = tmp_path / path.name
    unit.write_text(path.read_text().replace("/usr/local/bin/sysmon-exporter", str(installed)))
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    # verify exits 0 on unknown keys and only warns: any output is a finding.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_accepts_the_unit(tmp_path):
    systemd_verify(UNIT, tmp_path)


AGENT_UNIT = ROOT / "deploy" / "sysmon-agent.service"


def test_agent_unit_runs_the_agent_with_flags_it_accepts(tmp_path):
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(AGENT_UNIT.read_text())
    argv = shlex.split(unit["Service"]["ExecStart"])
    assert argv[0].endswith("/sysmon-exporter") and argv[1] == "agent"
    values = AGENT.parse(argv[2:], {})  # unknown flags raise ConfigError
    assert values["agent.channel"] == Address("virtio")
    # The state file's directory is the unit's RuntimeDirectory, writable under ProtectSystem=strict.
    assert values["agent.host-state"].parent == Path("/run") / unit["Service"]["RuntimeDirectory"]
    assert unit["Service"]["Restart"] == "always"
    assert int(unit["Service"]["LimitNOFILE"]) > 0
    systemd_verify(AGENT_UNIT, tmp_path)


def test_socket_activated_unit_pair(tmp_path):
    service = configparser.ConfigParser(strict=True, interpolation=None)
    service.optionxform = str  # type: ignore[assignment,method-assign]
    service.read_string((ROOT / "deploy" / "sysmon-exporter.service").read_text())
    argv = shlex.split(service["Service"]["ExecStart"])
    assert SERVE.parse(argv[1:], {})["web.systemd-socket"] is True
    assert service["Unit"]["Requires"] == "sysmon-exporter.socket"
    socket_unit = configparser.ConfigParser(strict=True, interpolation=None)
    socket_unit.optionxform = str  # type: ignore[assignment,method-assign]
    socket_unit.read_string((ROOT / "deploy" / "sysmon-exporter.socket").read_text())
    assert socket_unit["Socket"]["ListenStream"] == "9477"
    analyze = require_binary("systemd-analyze")
    installed = Path(sys.executable).parent / "sysmon-exporter"
    paths = []
    for name in ("sysmon-exporter.socket", "sysmon-exporter.service"):
        path = tmp_path / name
        path.write_text((ROOT / "deploy" / name).read_text().replace("/usr/local/bin/sysmon-exporter", str(installed)))
        paths.append(str(path))
    result = subprocess.run([analyze, "verify", "--man=no", *paths], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")

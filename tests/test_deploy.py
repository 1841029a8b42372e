"""The systemd unit runs flags the exporter accepts, as root, restarting on failure."""

import configparser
import shlex
import subprocess
import sys
from pathlib import Path

from exporter.config import SERVE
from tests.helpers import ROOT, require_binary

UNIT = ROOT / "deploy" / "sysmon-exporter-sysmon-vm.service"


def test_sysmon_vm_unit():
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == "root"
    assert service["Restart"] == "on-failure"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/sysmon-exporter")
    values = SERVE.parse(argv[1:], {})  # unknown flags raise ConfigError
    assert str(values["sysmon_vm_config"]) == "/etc/serviceradar/checkers/sysmon-vm.json"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "serviceradar-sysmon-vm.service" in unit["Unit"]["Conflicts"]


def test_systemd_accepts_the_unit(tmp_path):
    """systemd-analyze verify, with ExecStart pointed at this venv's sysmon-exporter (the unit's path needs pip)."""
    analyze = require_binary("systemd-analyze")
    installed = Path(sys.executable).parent / "sysmon-exporter"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/sysmon-exporter", str(installed)))
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

"""Guest flags of the serving command, and the agent, diag and verify-record commands' flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cli import main
from exporter.config import AGENT, GUEST_MAX_CGROUPS, VMADDR_CID_ANY, Address, ConfigError, load


def test_guest_flags(tmp_path):
    config = load(
        [
            "--guest.socket=/run/vms/{vm}/agent.sock",
            "--guest.socket=/run/other/{vm}.sock",
            "--guest.listen=vsock:9477",
            "--guest.listen=unix:/run/fc.vsock_9477",
            "--guest.max-vms=3",
            "--guest.rate-limit=2.5",
            "--guest.silent-window=2s",
            f"--guest.record={tmp_path}",
        ],
        {},
    )
    g = config.guest
    assert g.patterns == ("/run/vms/{vm}/agent.sock", "/run/other/{vm}.sock")
    assert g.listens == (Address("vsock", cid=VMADDR_CID_ANY, port=9477), Address("unix", Path("/run/fc.vsock_9477")))
    assert (g.max_vms, g.rate_limit, g.silent_seconds, g.record_dir) == (3, 2.5, 2.0, tmp_path)
    assert g.enabled


def test_guest_socket_from_the_environment_is_a_list():
    config = load([], {"SYSMON_GUEST_SOCKET": "/a/{vm}.sock,/b/{vm}.sock"})
    assert config.guest.patterns == ("/a/{vm}.sock", "/b/{vm}.sock")


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--guest.listen=tcp:1"], "--guest.listen"),
        (["--guest.listen=vsock:0"], "--guest.listen"),
        (["--guest.max-vms=0"], "--guest.max-vms"),
        (["--guest.rate-limit=0"], "--guest.rate-limit"),
        (["--guest.max-line-bytes=10"], "--guest.max-line-bytes"),
        (["--guest.record=/tmp"], "--guest.record"),
        (["--guest.listen=vsock:1", "--guest.record=/nonexistent/dir"], "--guest.record"),
        (["--guest.listen=vsock:1", "--guest.record.sign-key=/k.pem"], "--guest.record.sign-key"),
        (["--guest.listen=vsock:1", "--guest.record.format=cloudevents"], "--guest.record.format"),
        (["--guest.listen=vsock:1", "--guest.record=/tmp", "--guest.record.format=xml"], "--guest.record.format"),
    ],
    ids=[
        "listen-kind",
        "listen-port",
        "max-vms",
        "rate",
        "line",
        "record-alone",
        "record-missing",
        "key-alone",
        "format-alone",
        "format-unknown",
    ],
)
def test_bad_guest_flags_name_the_option(argv, option):
    with pytest.raises(ConfigError) as e:
        load(argv, {})
    assert e.value.option == option


def test_agent_flags():
    v = AGENT.parse(["--agent.channel=vsock:9000", "--agent.interval=250ms", "--no-collector.cpufreq"], {})
    assert v["agent.channel"] == Address("vsock", cid=2, port=9000)
    assert (v["agent.interval"], v["collector.cpufreq"], v["agent.queue-size"]) == (0.25, False, 120)
    assert AGENT.parse([], {})["agent.channel"] == Address("virtio")


def test_agent_cgroup_flags():
    off = AGENT.parse([], {})
    assert off["collector.cgroup"] is False and off["cgroup.max-count"] == 100
    v = AGENT.parse(["--collector.cgroup", "--path.cgroupfs=/c", "--cgroup.max-depth=2", "--cgroup.include=^/k"], {})
    assert (v["collector.cgroup"], v["path.cgroupfs"], v["cgroup.max-depth"]) == (True, Path("/c"), 2)
    assert v["cgroup.include"].pattern == "^/k"
    with pytest.raises(ConfigError) as e:
        AGENT.parse([f"--cgroup.max-count={GUEST_MAX_CGROUPS + 1}"], {})
    assert e.value.option == "--cgroup.max-count"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["agent", "--agent.channel=serial:x"], "sysmon-exporter: --agent.channel: "),
        (["agent", "--collector.perf"], "sysmon-exporter: --collector.perf: unknown flag"),
        (["diag", "--bogus"], "sysmon-exporter: --bogus: unknown flag; see sysmon-exporter diag --help"),
        (["verify-record", "f.jsonl"], "sysmon-exporter: --public-key: needed"),
        (["verify-record"], "sysmon-exporter: FILE: missing argument"),
    ],
)
def test_subcommand_errors_are_one_line(argv, message, capsys):
    assert main(argv, {}) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1, err


def test_subcommand_help(capsys):
    assert main(["agent", "--help"], {}) == 0
    assert "--agent.channel=VALUE" in capsys.readouterr().out

import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.config import ConfigError, load, parse_duration
from tests.helpers import ROOT


def test_defaults():
    c = load([], {})
    assert (c.web.host, c.web.port, c.roots.procfs, c.roots.sysfs, c.sampler.interval_seconds) == (
        "",
        9477,
        Path("/proc"),
        Path("/sys"),
        1.0,
    )
    assert c.collectors == {
        "cpu",
        "cpufreq",
        "hoststate",
        "cpuinfo",
        "perf",
        "meminfo",
        "loadavg",
        "filesystem",
        "network",
        "vm",
        "cgroup",
    }
    assert c.serviceradar is None
    assert (c.roots.rootfs, c.grpc) == (Path("/"), None)
    assert (c.roots.cgroupfs, c.cgroup.interval_seconds, c.cgroup.max_depth, c.cgroup.max_count) == (
        Path("/sys/fs/cgroup"),
        5.0,
        6,
        1000,
    )
    assert c.cgroup.include is None and c.cgroup.exclude is None


def test_cgroup_flags():
    c = load(
        [
            "--path.cgroupfs=/host/sys/fs/cgroup",
            "--cgroup.interval=30s",
            "--cgroup.max-depth=3",
            "--cgroup.include=^/kubepods",
            "--cgroup.max-count=50",
            "--no-collector.cgroup",
        ],
        {"SYSMON_CGROUP_EXCLUDE": r"\.mount$"},
    )
    assert (c.roots.cgroupfs, c.cgroup.interval_seconds, c.cgroup.max_depth, c.cgroup.max_count) == (
        Path("/host/sys/fs/cgroup"),
        30.0,
        3,
        50,
    )
    assert c.cgroup.include is not None and c.cgroup.include.search("/kubepods.slice/x")
    assert c.cgroup.exclude is not None and c.cgroup.exclude.search("/sys-kernel-debug.mount")
    assert "cgroup" not in c.collectors


def test_flags_both_spellings_and_collector_toggles():
    c = load(
        [
            "--web.listen-address",
            "127.0.0.1:9999",
            "--path.procfs=/host/proc",
            "--no-collector.perf",
            "--sampler.interval=250ms",
            "--log.level=debug",
        ],
        {},
    )
    assert (c.web.host, c.web.port, c.roots.procfs, c.sampler.interval_seconds, c.log_level) == (
        "127.0.0.1",
        9999,
        Path("/host/proc"),
        0.25,
        "debug",
    )
    assert "perf" not in c.collectors


def test_environment_and_command_line_wins():
    env = {"SYSMON_PATH_SYSFS": "/host/sys", "SYSMON_SAMPLER_INTERVAL": "2s", "SYSMON_COLLECTOR_MEMINFO": "false"}
    c = load(["--sampler.interval=500ms"], env)
    assert (c.roots.sysfs, c.sampler.interval_seconds) == (Path("/host/sys"), 0.5)
    assert "meminfo" not in c.collectors


def test_ipv6_listen_address():
    c = load(["--web.listen-address=[::1]:9477"], {})
    assert (c.web.host, c.web.port) == ("::1", 9477)


@pytest.mark.parametrize(
    ("argv", "env", "option", "fix"),
    [
        (["--sampler.interval=10s"], {}, "--sampler.interval", "between 50ms and 5s"),
        (["--sampler.interval=10ms"], {}, "--sampler.interval", "between 50ms and 5s"),
        (["--sampler.interval=soon"], {}, "--sampler.interval", "not a duration"),
        (["--web.listen-address=localhost"], {}, "--web.listen-address", "HOST:PORT"),
        (["--collector.nope"], {}, "--collector.nope", "unknown flag"),
        (["--verbose"], {}, "--verbose", "unknown flag"),
        (["-v"], {}, "-v", "unknown flag"),
        (["--log.level=loud"], {}, "--log.level", "debug, info, warn, error"),
        (["--path.procfs"], {}, "--path.procfs", "needs a value"),
        ([], {"SYSMON_SAMPLER_INTERVAL": "9s"}, "$SYSMON_SAMPLER_INTERVAL", "between 50ms and 5s"),
        ([], {"SYSMON_COLLECTOR_CPU": "maybe"}, "$SYSMON_COLLECTOR_CPU", "true or false"),
        (["extra"], {}, "extra", "unexpected argument"),
        (["--cgroup.include=(kubepods"], {}, "--cgroup.include", "is not a regular expression"),
        ([], {"SYSMON_CGROUP_EXCLUDE": "*.scope"}, "$SYSMON_CGROUP_EXCLUDE", "is not a regular expression"),
        (["--cgroup.max-count=0"], {}, "--cgroup.max-count", "between 1 and 1000000"),
        (["--cgroup.max-depth=deep"], {}, "--cgroup.max-depth", "is not an integer"),
        (["--cgroup.interval=10ms"], {}, "--cgroup.interval", "between 100ms and 300s"),
    ],
    ids=[
        "interval-high",
        "interval-low",
        "interval-garbage",
        "address",
        "unknown-collector",
        "unknown-flag",
        "short-flag",
        "log-level",
        "missing-value",
        "env-interval",
        "env-bool",
        "positional",
        "include-regex",
        "env-exclude-regex",
        "max-count",
        "max-depth",
        "cgroup-interval",
    ],
)
def test_bad_input_names_the_option_and_the_fix(argv, env, option, fix):
    with pytest.raises(ConfigError) as info:
        load(argv, env)
    assert info.value.option == option
    assert fix in str(info.value)


def test_main_prints_one_line_and_exits_2(capsys):
    assert main(["--sampler.interval=1h"], {}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("sysmon-exporter: --sampler.interval: 1h is outside 50ms..5s")


def test_help_lists_every_flag_with_its_environment_variable(capsys):
    assert main(["--help"], {}) == 0
    out = capsys.readouterr().out
    for flag in ("--web.listen-address", "--path.procfs", "--[no-]collector.perf", "$SYSMON_SAMPLER_INTERVAL"):
        assert flag in out


@pytest.mark.parametrize(
    ("text", "seconds"), [("250ms", 0.25), ("1m30s", 90.0), ("1.5s", 1.5), ("2", 2.0), ("500us", 0.0005)]
)
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_flag_given_twice_is_refused_unless_repeatable():
    with pytest.raises(ConfigError, match=r"--sampler.interval: given twice"):
        load(["--sampler.interval=1s", "--sampler.interval=2s"], {})
    assert load(["--guest.socket=/a/{vm}", "--guest.socket=/b/{vm}"], {}).guest.patterns == ("/a/{vm}", "/b/{vm}")
    # A toggle may be flipped back: the last one wins, as with Go's flag package.
    assert "perf" in load(["--no-collector.perf", "--collector.perf"], {}).collectors


def test_help_lists_the_commands_and_prints_defaults_as_they_are_typed(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("agent", "diag", "syscalls", "verify-record"):
        assert re.search(rf"^  {command} +\S", out, re.MULTILINE), command
    assert re.search(r"--guest.rate-limit=VALUE .*\(default 10\)", out)
    assert re.search(r"--guest.record.max-bytes=VALUE .*\(default 64MiB\)", out)
    assert re.search(r"--sampler.interval=VALUE .*\(default 1s\)", out)
    assert load(["--guest.record.max-bytes=64MiB"], {}).guest.record_max_bytes == 64 << 20
    assert load(["--guest.record.max-bytes=4096"], {}).guest.record_max_bytes == 4096
    with pytest.raises(ConfigError, match=r"--guest\.record\.max-bytes"):
        load(["--guest.record.max-bytes=64MB"], {})


def test_help_into_a_closed_pipe_exits_quietly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first byte, as with `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err

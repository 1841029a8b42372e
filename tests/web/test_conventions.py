"""Flags users type from node_exporter: repeatable --web.listen-address (IPv6 too),
--collector.disable-defaults, --log.format, --version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from exporter.cli import main
from exporter.config import ConfigError, load
from exporter.logs import logfmt_value
from tests.helpers import free_port, http_get, run_exporter


def test_listen_address_is_repeatable_and_takes_ipv6() -> None:
    web = load(["--web.listen-address=127.0.0.1:1", "--web.listen-address=[::]:9477"], {}).web
    assert web.listen_addresses == (("127.0.0.1", 1), ("::", 9477))
    assert load([], {}).web.listen_addresses == (("", 9477),)
    env = load([], {"SYSMON_WEB_LISTEN_ADDRESS": ":1,:2"}).web
    assert env.listen_addresses == (("", 1), ("", 2))


def test_serves_on_every_listen_address_ipv6_included(tmp_path: Path) -> None:
    v6 = free_port()
    with run_exporter([f"--web.listen-address=[::1]:{v6}"], tmp_path) as exp:
        assert http_get(exp.url + "/-/healthy")[0] == 200
        assert http_get(f"http://[::1]:{v6}/-/healthy")[0] == 200
        assert f"http://[::1]:{v6}" in exp.stderr()


def test_a_taken_address_stops_start_up(tmp_path: Path) -> None:
    with run_exporter([], tmp_path) as first, run_exporter(
        [f"--web.listen-address=127.0.0.1:{first.port}"], tmp_path, ready=False
    ) as second:
        assert second.proc.wait(timeout=30) == 1
        assert f"cannot listen on 127.0.0.1:{first.port}" in second.stderr()


def test_disable_defaults_keeps_only_the_named_collectors() -> None:
    assert load(["--collector.disable-defaults", "--collector.meminfo"], {}).collectors == {"meminfo"}
    assert load(["--collector.disable-defaults"], {"SYSMON_COLLECTOR_CPU": "true"}).collectors == {"cpu"}
    assert {"cpu", "meminfo", "cgroup"} <= load([], {}).collectors
    with pytest.raises(ConfigError, match="needs the cpu collector"):
        load(["--collector.disable-defaults", "--collector.meminfo", "--grpc.listen-address=:0"], {})


def test_serving_with_defaults_disabled(tmp_path: Path) -> None:
    with run_exporter(["--collector.disable-defaults", "--collector.meminfo"], tmp_path) as exp:
        text = exp.metrics()
        assert "sysmon_memory_total_bytes" in text and "sysmon_cpu_seconds_total" not in text


@pytest.mark.parametrize(
    ("value", "written"),
    [("listening", "listening"), ("listening on :9477", '"listening on :9477"'), ("", '""'),
     ('say "hi"', r'"say \"hi\""'), ("a=b", '"a=b"'), ("line\nbreak", r'"line\nbreak"')],
    ids=["bare", "space", "empty", "quotes", "equals", "newline"],
)
def test_logfmt_values(value: str, written: str) -> None:
    assert logfmt_value(value) == written


LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"=]+)(?: |$)')


def parse_logfmt(line: str) -> dict[str, str]:
    pairs = LOGFMT_PAIR.findall(line)
    assert "".join(f"{k}={v} " for k, v in pairs).rstrip() == line, f"not logfmt: {line}"
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


def test_log_lines_are_valid_logfmt_and_json(tmp_path: Path) -> None:
    with run_exporter(["--no-collector.cgroup"], tmp_path) as exp:
        pass
    lines = [parse_logfmt(line) for line in exp.stderr().splitlines()]
    listening = next(f for f in lines if f["msg"].startswith("listening on"))
    assert listening["level"] == "info" and "sampling every" in listening["msg"]
    with run_exporter(["--no-collector.cgroup", "--log.format=json"], tmp_path) as exp:
        pass
    objects = [json.loads(line) for line in exp.stderr().splitlines()]
    assert {"ts", "level", "logger", "msg"} <= set(objects[0])
    assert any(o["msg"].startswith("listening on") for o in objects)
    with pytest.raises(ConfigError, match="logfmt, json"):
        load(["--log.format=xml"], {})


def test_version_prints_version_python_and_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"sysmon-exporter, version \d+\.\d+\.\d+\S*", lines[0])
    assert re.fullmatch(r"  python: 3\.\d+\.\d+ \(CPython\)", lines[1])
    assert lines[2].startswith("  platform: linux/")
    assert lines[3].startswith("  build: aiohttp ") and "OpenSSL" in lines[3]


def test_systemd_socket_activation_serves_the_passed_socket(tmp_path: Path) -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # As systemd does: the socket at descriptor 3, LISTEN_FDS=1 and LISTEN_PID naming the exporter itself.
    wrapper = ("bash", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<&' + str(fd), "sh")
    try:
        with run_exporter(["--web.systemd-socket"], tmp_path, ready=False, wrapper=wrapper, pass_fds=(fd,)) as exp:
            from tests.helpers import wait_until

            url = f"http://127.0.0.1:{port}"
            wait_until(
                lambda: exp.proc.poll() is not None or http_get(url + "/-/ready")[0] == 200,
                what="the exporter on the activated socket",
            )
            assert exp.proc.poll() is None, exp.stderr()
            assert "sysmon_cpu_seconds_total" in http_get(url + "/metrics")[1].decode()
            with pytest.raises(OSError):  # --web.listen-address (run_exporter passes one) is not listened on
                http_get(exp.url + "/-/healthy", timeout=2)
    finally:
        listener.close()


def test_systemd_socket_without_sockets_stops_start_up(tmp_path: Path) -> None:
    with run_exporter(["--web.systemd-socket"], tmp_path, ready=False) as exp:
        assert exp.proc.wait(timeout=30) == 1
        assert "no socket activation file descriptors found" in exp.stderr()

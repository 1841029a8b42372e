"""--serviceradar.* flags, the certificate files and the identity in the CN; chunks and SysmonConfig rules."""

from __future__ import annotations

import pytest

from exporter.config import ConfigError, load
from exporter.config.serviceradar import find_cert_files
from exporter.grpc_compat._generated import gateway_pb2
from exporter.grpc_compat.gateway import TooLarge, apply_sysmon, chunks, clamp_seconds
from exporter.grpc_compat.identity import parse_cn, resolve_identity
from exporter.grpc_compat.status import SysmonSettings
from tests.grpc_compat.fake_gateway import Pki, agent_certificate


def test_off_by_default_and_plaintext_needs_an_agent_id():
    assert load([], {}).serviceradar is None
    c = load(["--serviceradar.gateway=gw.example.org:50052", "--serviceradar.agent-id=vm-7"], {}).serviceradar
    assert c is not None
    assert (c.host, c.port, c.server_name, c.agent_id, c.partition, c.tls, c.buffer_samples) == (
        "gw.example.org", 50052, "gw.example.org", "vm-7", "default", None, 60
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "option", "text"),
    [
        (["--serviceradar.gateway=gw:50052"], "--serviceradar.agent-id", "required without --serviceradar.cert-dir"),
        (["--serviceradar.gateway=:50052"], "--serviceradar.gateway", "is not HOST:PORT"),
        (["--serviceradar.gateway=gw"], "--serviceradar.gateway", "is not HOST:PORT"),
        (["--serviceradar.gateway=gw:1", "--serviceradar.agent-id=a.b"], "--serviceradar.agent-id", "can never match"),
        (["--serviceradar.agent-id=vm-7"], "--serviceradar.agent-id", "only applies with --serviceradar.gateway"),
        (["--serviceradar.gateway=gw:1", "--serviceradar.cert-dir=/nonexistent"], "--serviceradar.cert-dir",
         "agent.pem, agent-key.pem, root.pem or component.pem, component-key.pem, ca-chain.pem"),
    ],
    ids=["no-agent-id", "no-host", "no-port", "dot", "without-gateway", "no-cert-dir"],
)  # fmt: skip
def test_a_bad_combination_names_the_flag(argv, option, text):
    with pytest.raises(ConfigError) as e:
        load(argv, {})
    assert e.value.option == option and text in str(e.value)


def test_an_incomplete_set_names_both_sets_and_what_is_there(tmp_path):
    pki = Pki(tmp_path)
    (pki.cert_dir / "agent-key.pem").unlink()
    (pki.cert_dir / "component.pem").write_text("x")
    with pytest.raises(ConfigError) as e:
        find_cert_files(pki.cert_dir)
    assert "agent.pem, agent-key.pem, root.pem or component.pem, component-key.pem, ca-chain.pem" in str(e.value)
    assert "has agent.pem, component.pem, root.pem" in str(e.value)


def test_identity_from_the_cn(tmp_path):
    pki = Pki(tmp_path, agent="k8s-node-3", partition="dc1")
    argv = ["--serviceradar.gateway=gw:50052", f"--serviceradar.cert-dir={pki.cert_dir}"]
    config = load(argv, {}).serviceradar
    assert config is not None and config.tls is not None and config.tls.cert_file.name == "agent.pem"
    identity = resolve_identity(config)
    assert (identity.agent_id, identity.partition) == ("k8s-node-3", "dc1")
    same = load([*argv, "--serviceradar.agent-id=k8s-node-3", "--serviceradar.partition=dc1"], {}).serviceradar
    assert same is not None and resolve_identity(same) == identity
    other = load([*argv, "--serviceradar.agent-id=k8s-node-4"], {}).serviceradar
    assert other is not None
    with pytest.raises(ConfigError) as e:
        resolve_identity(other)
    assert e.value.option == "--serviceradar.agent-id" and "'k8s-node-3' in the CN" in str(e.value)


@pytest.mark.parametrize(
    ("cn", "text"),
    [("agent-1.serviceradar", "is not <agent_id>.<partition>.serviceradar"),
     ("agent-1.edge.example", "is not <agent_id>.<partition>.serviceradar"),
     ("agent.1.edge.serviceradar", "can never match")],
)  # fmt: skip
def test_a_cn_the_gateway_cannot_match_is_refused(cn, text):
    with pytest.raises(ConfigError) as e:
        parse_cn(cn, "agent.pem")
    assert e.value.option == "--serviceradar.cert-dir" and text in str(e.value)


def test_a_dotted_cn_in_a_real_certificate(tmp_path):
    pki = Pki(tmp_path)
    cert, key = agent_certificate(pki.ca, "a.b.edge.serviceradar", "spiffe://serviceradar.local/agent/edge/a.b")
    pki.write(cert, key, pki.ca.cert_pem.bytes())
    config = load(["--serviceradar.gateway=gw:1", f"--serviceradar.cert-dir={pki.cert_dir}"], {}).serviceradar
    assert config is not None
    with pytest.raises(ConfigError, match="can never match"):
        resolve_identity(config)


def _service(name: str, size: int) -> gateway_pb2.GatewayServiceStatus:
    return gateway_pb2.GatewayServiceStatus(service_name=name, message=b"x" * size)


def test_chunks_count_from_zero_share_the_total_and_end_final():
    services = [_service(n, 100) for n in "abcde"]
    limit = services[0].ByteSize() * 2
    stream = chunks(services, limit, agent_id="a", timestamp=7)
    assert [(c.chunk_index, c.total_chunks, c.is_final, [s.service_name for s in c.services]) for c in stream] == [
        (0, 3, False, ["a", "b"]), (1, 3, False, ["c", "d"]), (2, 3, True, ["e"])
    ]  # fmt: skip
    assert {(c.agent_id, c.timestamp) for c in stream} == {("a", 7)}
    (single,) = chunks(services[:1], limit)
    assert (single.chunk_index, single.total_chunks, single.is_final) == (0, 1, True)
    with pytest.raises(TooLarge):
        chunks([_service("big", 1000)], limit)


@pytest.mark.parametrize(
    ("value", "bounds", "expected"),
    [(0, (1, 3600), 42.0), (7200, (1, 3600), 3600.0), (5, (30, 86400), 30.0), (100000, (30, 86400), 86400.0),
     (15, (1, 3600), 15.0)],
)  # fmt: skip
def test_intervals_are_clamped_and_zero_keeps_the_current(value, bounds, expected):
    assert clamp_seconds(value, bounds, 42.0) == expected


@pytest.mark.parametrize(
    ("text", "seconds"), [("", 10.0), ("1ms", 0.05), ("1h", 300.0), ("2m30s", 150.0), ("250ms", 0.25)]
)
def test_sample_interval(text, seconds):
    response = gateway_pb2.AgentConfigResponse(
        sysmon_config=gateway_pb2.SysmonConfig(enabled=True, sample_interval=text)
    )
    assert apply_sysmon(response, SysmonSettings()).settings.sample_interval_seconds == seconds


def test_an_unparsable_sample_interval_keeps_the_old_config():
    current = SysmonSettings(sample_interval_seconds=2.0, processes=True)
    response = gateway_pb2.AgentConfigResponse(
        sysmon_config=gateway_pb2.SysmonConfig(enabled=True, sample_interval="10", collect_cpu=False)
    )
    applied = apply_sysmon(response, current)
    assert applied.settings == current and "not a Go duration" in applied.problem


def test_no_sysmon_config_keeps_the_current_settings():
    current = SysmonSettings(sample_interval_seconds=3.0)
    assert apply_sysmon(gateway_pb2.AgentConfigResponse(config_version="v2"), current).settings == current

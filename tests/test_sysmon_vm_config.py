"""--grpc.listen-address and --sysmon-vm.config (ServiceRadar's sysmon-vm checker JSON)."""

import json

import pytest

from exporter.cli import main
from exporter.config import ConfigError, GrpcConfig, TlsFiles, load


def write(tmp_path, doc):
    path = tmp_path / "sysmon-vm.json"
    path.write_text(json.dumps(doc))
    return path


def pems(tmp_path, *names):
    for name in names:
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")


def test_grpc_is_off_by_default():
    assert load([], {}).grpc is None


def test_listen_address_flag_alone_is_plaintext():
    config = load(["--grpc.listen-address=127.0.0.1:50110"], {})
    assert config.grpc == GrpcConfig("127.0.0.1", 50110, None)
    assert load([], {"SYSMON_GRPC_LISTEN_ADDRESS": ":50111"}).grpc == GrpcConfig("", 50111, None)


def test_the_checkers_own_file(tmp_path):
    pems(tmp_path, "server.pem", "server-key.pem", "root.pem")
    path = write(
        tmp_path,
        {
            "listen_addr": "0.0.0.0:50110",
            "sample_interval": "250ms",
            "security": {
                "mode": "mtls",
                "cert_dir": str(tmp_path),
                "server_name": "vm.example.org",
                "role": "checker",
                "tls": {"cert_file": "server.pem", "key_file": "server-key.pem", "ca_file": "root.pem"},
            },
        },
    )
    config = load([f"--sysmon-vm.config={path}"], {})
    assert config.grpc == GrpcConfig(
        "0.0.0.0", 50110, TlsFiles(tmp_path / "server.pem", tmp_path / "server-key.pem", tmp_path / "root.pem")
    )
    assert config.sampler.interval_seconds == 0.25
    assert config.warnings == ()


def test_defaults_flag_override_and_client_ca(tmp_path):
    pems(tmp_path, "a.pem", "k.pem", "ca.pem", "clients.pem")
    tls = {"cert_file": str(tmp_path / "a.pem"), "key_file": str(tmp_path / "k.pem"),
           "ca_file": str(tmp_path / "ca.pem"), "client_ca_file": str(tmp_path / "clients.pem")}  # fmt: skip
    path = write(tmp_path, {"security": {"mode": "mtls", "cert_dir": "/nonexistent", "tls": tls}})
    config = load([f"--sysmon-vm.config={path}"], {})
    assert (config.grpc.host, config.grpc.port) == ("0.0.0.0", 50110)
    assert config.grpc.tls.client_ca_file == tmp_path / "clients.pem"  # absolute paths ignore cert_dir
    assert config.sampler.interval_seconds == 0.2  # no sample_interval: the Go checker's 200ms default
    config = load([f"--sysmon-vm.config={path}", "--grpc.listen-address=127.0.0.1:1234"], {})
    assert (config.grpc.host, config.grpc.port) == ("127.0.0.1", 1234)
    assert config.grpc.tls is not None  # the flag moves the listener; security still comes from the file


@pytest.mark.parametrize(
    ("text", "seconds", "warned"),
    [
        ("10ms", 0.05, True),
        ("0", 0.05, True),
        ("1m", 5.0, True),
        ("50ms", 0.05, False),
        ("5s", 5.0, False),
        ("1.5s", 1.5, False),
    ],
    ids=["below", "zero", "above", "low-edge", "high-edge", "inside"],
)
def test_sample_interval_is_clamped_with_a_warning(tmp_path, text, seconds, warned):
    config = load([f"--sysmon-vm.config={write(tmp_path, {'sample_interval': text})}"], {})
    assert config.sampler.interval_seconds == seconds
    assert len(config.warnings) == warned
    if warned:
        assert f"sample_interval {text} is outside 50ms..5s" in config.warnings[0]


def test_sampler_interval_flag_wins_over_the_file(tmp_path):
    path = write(tmp_path, {"sample_interval": "250ms"})
    assert load([f"--sysmon-vm.config={path}", "--sampler.interval=2s"], {}).sampler.interval_seconds == 2.0
    assert load([f"--sysmon-vm.config={path}"], {"SYSMON_SAMPLER_INTERVAL": "3s"}).sampler.interval_seconds == 3.0


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"sample_interval": "soon"}, "sample_interval: 'soon' is not a duration"),
        ({"sample_interval": 250}, "sample_interval must be a string"),
        ({"sample_interval": "250"}, "sample_interval: '250' is not a duration"),
        ({"sample_interval": "nan"}, "sample_interval: 'nan' is not a duration"),
        ({"listen_addr": "nowhere"}, "listen_addr: 'nowhere' is not HOST:PORT"),
        ({"security": {"mode": "spiffe"}}, "security mode spiffe is not supported"),
        ({"security": {"mode": "tls-ish"}}, "'tls-ish' is not one of none, mtls"),
        ({"security": {"mode": "mtls", "tls": {}}}, "security.tls.cert_file is required"),
        ([1, 2], "expected a JSON object"),
    ],
    ids=[
        "bad-duration",
        "number-duration",
        "no-unit",
        "nan",
        "bad-address",
        "spiffe",
        "unknown-mode",
        "no-cert",
        "not-object",
    ],
)
def test_bad_file_names_the_option_and_the_problem(tmp_path, doc, message):
    with pytest.raises(ConfigError) as info:
        load([f"--sysmon-vm.config={write(tmp_path, doc)}"], {})
    assert info.value.option == "--sysmon-vm.config"
    assert message in str(info.value)


@pytest.mark.parametrize("missing", ["server.pem", "server-key.pem", "root.pem"])
def test_missing_cert_file_is_one_line_naming_it(tmp_path, capsys, missing):
    pems(tmp_path, *({"server.pem", "server-key.pem", "root.pem"} - {missing}))
    tls = {"cert_file": "server.pem", "key_file": "server-key.pem", "ca_file": "root.pem"}
    path = write(tmp_path, {"security": {"mode": "mtls", "cert_dir": str(tmp_path), "tls": tls}})
    assert main([f"--sysmon-vm.config={path}"], {}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{tmp_path / missing} is missing" in err


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read .*nope\.json"):
        load([f"--sysmon-vm.config={tmp_path / 'nope.json'}"], {})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match=r"bad\.json is not JSON"):
        load([f"--sysmon-vm.config={tmp_path / 'bad.json'}"], {})


@pytest.mark.parametrize("name", ["cpu", "meminfo"])
def test_grpc_needs_the_cpu_and_meminfo_collectors(tmp_path, name):
    with pytest.raises(ConfigError) as info:
        load(["--grpc.listen-address=:50110", f"--no-collector.{name}"], {})
    assert info.value.option == f"--no-collector.{name}"
    with pytest.raises(ConfigError, match=f"--no-collector.{name}: ServiceRadar's payload needs the {name} collector"):
        load([f"--sysmon-vm.config={write(tmp_path, {})}"], {f"SYSMON_COLLECTOR_{name.upper()}": "false"})
    assert load([f"--no-collector.{name}"], {}).grpc is None  # without gRPC the collector may be off


@pytest.mark.parametrize(
    ("text", "seconds", "warned"),
    [
        ("+1s", 1.0, False),
        ("-1s", 0.05, True),  # Go parses it; the checker clamps it like any value below 50ms
        ("-0", 0.05, True),
        ("200000\u00b5s", 0.2, False),  # micro sign
        ("200000\u03bcs", 0.2, False),  # Greek mu
        ("1s500ms", 1.5, False),
    ],
    ids=["plus", "minus-clamped", "minus-zero", "micro-sign", "greek-mu", "compound"],
)
def test_go_duration_edge_cases_the_go_checker_accepts(tmp_path, text, seconds, warned):
    config = load([f"--sysmon-vm.config={write(tmp_path, {'sample_interval': text})}"], {})
    assert config.sampler.interval_seconds == seconds
    assert len(config.warnings) == warned


@pytest.mark.parametrize("text", ["+", "-", "1", "--1s", "1s-"], ids=["plus", "minus", "bare", "two-signs", "trailing"])
def test_go_durations_the_go_checker_refuses(tmp_path, text):
    with pytest.raises(ConfigError, match=r"sample_interval: .* is not a duration|empty duration"):
        load([f"--sysmon-vm.config={write(tmp_path, {'sample_interval': text})}"], {})


@pytest.mark.parametrize(
    "doc",
    [{}, {"sample_interval": ""}, {"listen_addr": "", "security": {"mode": ""}}],
    ids=["empty-file", "empty-interval", "empty-listen-and-mode"],
)
def test_empty_or_missing_fields_are_the_go_checkers_defaults(tmp_path, doc):
    """listen_addr 0.0.0.0:50110, security none, sample_interval 200ms (defaultSampleInterval), not 1s."""
    config = load([f"--sysmon-vm.config={write(tmp_path, doc)}"], {})
    assert config.grpc == GrpcConfig("0.0.0.0", 50110, None)
    assert config.sampler.interval_seconds == 0.2
    assert config.warnings == ()

"""``--grpc.listen-address`` and ``--sysmon-vm.config``: the ServiceRadar AgentService shim.

The sysmon-vm checker's own JSON file is read here as the Go checker reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from exporter.config.flags import ConfigError, Opt, Section
from exporter.config.values import duration_in, format_duration, parse_duration, parse_listen_address

# ServiceRadar's sysmon-vm checker: its defaults and the interval bounds it clamps to.
SYSMON_VM_LISTEN = ("0.0.0.0", 50110)
SYSMON_VM_INTERVAL_BOUNDS = (0.05, 5.0)
SYSMON_VM_INTERVAL = 0.2  # pkg/checker/sysmonvm/config.go defaultSampleInterval
SECURITY_MODES = ("none", "mtls")
SYSMON_VM_OPTION = "--sysmon-vm.config"
GRPC_NEEDS = ("cpu", "meminfo")  # per-core usage and memory: ServiceRadar drops a payload without them


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for mTLS: our certificate and key, and the CA that signs client certificates."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path


@dataclass(frozen=True)
class GrpcConfig:
    host: str = SYSMON_VM_LISTEN[0]
    port: int = SYSMON_VM_LISTEN[1]
    tls: TlsFiles | None = None  # None: plaintext (security mode "none")
    idle_timeout_seconds: float = 300.0  # a connection without traffic (TLS) or RPCs (gRPC) this long is closed


@dataclass(frozen=True)
class SysmonVmConfig:
    grpc: GrpcConfig
    sample_interval: float  # the file's, or the Go checker's default when it has none
    warnings: tuple[str, ...]


def load_sysmon_vm(path: Path) -> SysmonVmConfig:
    """The sysmon-vm checker's own JSON file (e.g. /etc/serviceradar/checkers/sysmon-vm.json)."""
    option = SYSMON_VM_OPTION
    try:
        raw = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(option, f"cannot read {path}: {e.strerror}; pass the checker's JSON config") from None
    except ValueError as e:
        raise ConfigError(option, f"{path} is not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(option, f"{path}: expected a JSON object")
    return parse_sysmon_vm(raw, str(path))


def _field(obj: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(SYSMON_VM_OPTION, f"{where}: {key} must be a string, not {json.dumps(value)}")
    return value


def parse_sysmon_vm(raw: Mapping[str, Any], where: str) -> SysmonVmConfig:
    option = SYSMON_VM_OPTION
    # Config.Normalize in the Go checker: an empty listen_addr or sample_interval is the default
    listen = _field(raw, "listen_addr", where) or "{}:{}".format(*SYSMON_VM_LISTEN)
    try:
        host, port = parse_listen_address(listen)
    except ValueError as e:
        raise ConfigError(option, f"{where}: listen_addr: {e}") from None

    warnings: list[str] = []
    low, high = SYSMON_VM_INTERVAL_BOUNDS
    interval = SYSMON_VM_INTERVAL
    text = _field(raw, "sample_interval", where)
    if text:
        try:
            interval = parse_duration(text, bare_seconds=False)  # the Go checker's time.ParseDuration
        except ValueError as e:
            raise ConfigError(option, f"{where}: sample_interval: {e}") from None
        clamped = min(high, max(low, interval))
        if clamped != interval:
            warnings.append(
                f"{where}: sample_interval {text} is outside {format_duration(low)}..{format_duration(high)}; "
                f"using {format_duration(clamped)}"
            )
            interval = clamped

    security = raw.get("security") or {}
    if not isinstance(security, dict):
        raise ConfigError(option, f"{where}: security must be an object")
    mode = (_field(security, "mode", where) or "none").lower()  # empty is none, as ServiceRadar reads it
    if mode == "spiffe":
        raise ConfigError(
            option, f"{where}: security mode spiffe is not supported; use mtls with certificate files, or none"
        )
    if mode not in SECURITY_MODES:
        raise ConfigError(option, f"{where}: security mode {mode!r} is not one of {', '.join(SECURITY_MODES)}")
    tls = _tls_files(security, where) if mode == "mtls" else None
    return SysmonVmConfig(GrpcConfig(host, port, tls), interval, tuple(warnings))


def _tls_files(security: Mapping[str, Any], where: str) -> TlsFiles:
    option = SYSMON_VM_OPTION
    tls = security.get("tls") or {}
    if not isinstance(tls, dict):
        raise ConfigError(option, f"{where}: security.tls must be an object")
    cert_dir = Path(_field(security, "cert_dir", where))

    def pem(key: str, fallback: str = "") -> Path:
        name = _field(tls, key, where) or (fallback and _field(tls, fallback, where))
        if not name:
            raise ConfigError(option, f"{where}: security.tls.{key} is required in mtls mode")
        path = cert_dir / name  # an absolute name stays as it is
        if not os.access(path, os.R_OK) or not path.is_file():
            reason = "missing" if not path.exists() else "unreadable"
            raise ConfigError(option, f"{where}: security.tls.{key}: {path} is {reason}")
        return path

    return TlsFiles(pem("cert_file"), pem("key_file"), pem("client_ca_file", "ca_file"))


@dataclass(frozen=True)
class GrpcFlags:
    listen_address: tuple[str, int] | None = None
    sysmon_vm_config: Path | None = None
    idle_timeout_seconds: float = GrpcConfig.idle_timeout_seconds

    def resolve(self) -> tuple[GrpcConfig | None, SysmonVmConfig | None]:
        """The shim's settings (None: off) and the checker file they came from, if any."""
        grpc: GrpcConfig | None = None
        vm = None
        if self.sysmon_vm_config is not None:
            vm = load_sysmon_vm(self.sysmon_vm_config)
            grpc = vm.grpc
        if self.listen_address is not None:
            host, port = self.listen_address
            grpc = replace(grpc or GrpcConfig(), host=host, port=port)
        if grpc is not None:
            grpc = replace(grpc, idle_timeout_seconds=self.idle_timeout_seconds)
        return grpc, vm


GRPC = Section(
    GrpcFlags,
    listen_address=Opt(
        "grpc.listen-address",
        parse_listen_address,
        "serve ServiceRadar's monitoring.AgentService (the sysmon-vm checker) here",
    ),
    sysmon_vm_config=Opt(
        "sysmon-vm.config",
        Path,
        "ServiceRadar sysmon-vm checker JSON config (listen_addr, sample_interval, security); enables gRPC",
    ),
    idle_timeout_seconds=Opt(
        "grpc.idle-timeout",
        duration_in(1.0, 86400.0),
        "a gRPC connection with no RPC (mTLS: no byte either way) for this long is closed",
    ),
)

"""The serving command: its flags, and the one frozen :class:`Config` they make."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from exporter.catalogue import Roots, collector_defaults
from exporter.config.cgroup import CGROUP, CgroupConfig
from exporter.config.collectors import Collectors
from exporter.config.filesystem import FILESYSTEM, FilesystemConfig
from exporter.config.flags import ConfigError, FlagSet
from exporter.config.grpc import GRPC, GRPC_NEEDS, GrpcConfig
from exporter.config.guest import GUEST, GuestConfig
from exporter.config.paths import SERVE_PATHS
from exporter.config.sampler import SAMPLER, SamplerConfig
from exporter.config.serviceradar import SERVICERADAR, ServiceRadarConfig
from exporter.config.syscalls import SYSCALLS, SyscallsConfig
from exporter.config.vm import VM, VmConfig
from exporter.config.web import LOG, WEB, WebConfig

COLLECTORS = Collectors()

SUBCOMMANDS = """commands:
  (none)          serve /metrics (these flags)
  agent           run inside a guest: send its CPU, memory and cgroups to the host over virtio-serial or vsock
  diag            check what works on this machine, each failing line with its fix
  syscalls        print syscall counts per interval from eBPF, without serving
  verify-record   check the signatures of recorded guest rows
`sysmon-exporter COMMAND --help` lists a command's flags."""

SERVE = FlagSet(
    "sysmon-exporter",
    (WEB, GRPC, SERVICERADAR, SERVE_PATHS, SAMPLER, CGROUP, FILESYSTEM, LOG, COLLECTORS, GUEST, SYSCALLS, VM),
    about=SUBCOMMANDS,
)


@dataclass(frozen=True)
class Config:
    web: WebConfig = field(default_factory=WebConfig)
    roots: Roots = field(default_factory=Roots)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    cgroup: CgroupConfig = field(default_factory=CgroupConfig)
    filesystem: FilesystemConfig = field(default_factory=FilesystemConfig)
    log_level: str = "info"
    log_format: str = "logfmt"
    collectors: frozenset[str] = field(
        default_factory=lambda: frozenset(n for n, on in collector_defaults().items() if on)
    )
    grpc: GrpcConfig | None = None
    serviceradar: ServiceRadarConfig | None = None  # push to the agent gateway
    guest: GuestConfig = field(default_factory=GuestConfig)
    syscalls: SyscallsConfig = field(default_factory=SyscallsConfig)
    vm: VmConfig = field(default_factory=VmConfig)
    warnings: tuple[str, ...] = ()  # logged once logging is set up


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """The serving command's Config from flags and SYSMON_* variables."""
    v = SERVE.parse(argv, environ)
    sampler = SAMPLER.build(v)
    grpc, vm = GRPC.build(v).resolve()
    warnings: tuple[str, ...] = ()
    if vm is not None:
        warnings = vm.warnings
        if "sampler.interval" not in v.given:
            sampler = replace(sampler, interval_seconds=vm.sample_interval)
    collectors = COLLECTORS.build(v)
    if grpc is not None:
        for name in GRPC_NEEDS:
            if name not in collectors:
                raise ConfigError(
                    f"--no-collector.{name}",
                    f"ServiceRadar's payload needs the {name} collector; keep it on, "
                    "or leave out --grpc.listen-address and --sysmon-vm.config",
                )
    syscalls = SYSCALLS.build(v)
    syscalls.check("syscalls" in collectors)
    guest = GUEST.build(v)
    guest.check()
    return Config(
        web=WEB.build(v),
        roots=SERVE_PATHS.build(v),
        sampler=sampler,
        cgroup=CGROUP.build(v),
        filesystem=FILESYSTEM.build(v),
        log_level=LOG.build(v).level,
        log_format=LOG.build(v).format,
        collectors=collectors,
        grpc=grpc,
        serviceradar=SERVICERADAR.build(v).resolve(),
        guest=guest,
        syscalls=syscalls,
        vm=VM.build(v),
        warnings=warnings,
    )

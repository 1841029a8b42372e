"""Command line, environment -> one frozen Config per command.

Flags follow the Prometheus dotted style (``--web.listen-address``,
``--collector.<name>`` / ``--no-collector.<name>``). Every flag can also come
from the environment as ``SYSMON_<FLAG>``, upper-cased with dots and dashes as
underscores (``SYSMON_WEB_LISTEN_ADDRESS``); the command line wins. Unknown
flags and bad values raise :class:`ConfigError`, whose text names the option
and the fix, and start-up stops there.

One module per concern, each declaring its flags next to the dataclass fields
they set (flags.Section): web and log, paths, sampler, cgroup, guest,
syscalls, grpc, serviceradar; ``serve`` composes them into :class:`Config`, ``commands``
into the other commands' settings. The collector toggles come from the
catalogue of sources (exporter/catalogue.py).
"""

from exporter.catalogue import Roots
from exporter.config.cgroup import GUEST_MAX_CGROUPS, CgroupConfig
from exporter.config.commands import (
    AGENT,
    DIAG,
    VERIFY,
    AgentConfig,
    DiagConfig,
    load_agent,
    load_diag,
)
from exporter.config.flags import ConfigError, Flag, FlagSet
from exporter.config.grpc import GRPC_NEEDS, SYSMON_VM_OPTION, GrpcConfig, SysmonVmConfig, TlsFiles, parse_sysmon_vm
from exporter.config.guest import (
    HOST_CID,
    VMADDR_CID_ANY,
    Address,
    AgentChannelConfig,
    GuestConfig,
    parse_agent_channel,
    parse_guest_listen,
)
from exporter.config.serve import SERVE, Config, load
from exporter.config.syscalls import SyscallsConfig
from exporter.config.values import DEFAULT_PORT, duration_in, int_in, parse_duration, parse_pid

__all__ = [
    "AGENT",
    "DEFAULT_PORT",
    "DIAG",
    "GRPC_NEEDS",
    "GUEST_MAX_CGROUPS",
    "HOST_CID",
    "SERVE",
    "SYSMON_VM_OPTION",
    "VERIFY",
    "VMADDR_CID_ANY",
    "Address",
    "AgentChannelConfig",
    "AgentConfig",
    "CgroupConfig",
    "Config",
    "ConfigError",
    "DiagConfig",
    "Flag",
    "FlagSet",
    "GrpcConfig",
    "GuestConfig",
    "Roots",
    "SyscallsConfig",
    "SysmonVmConfig",
    "TlsFiles",
    "duration_in",
    "int_in",
    "load",
    "load_agent",
    "load_diag",
    "parse_agent_channel",
    "parse_duration",
    "parse_guest_listen",
    "parse_pid",
    "parse_sysmon_vm",
]

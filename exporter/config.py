"""Command line, environment -> one frozen Config.

Flags follow the Prometheus dotted style (``--web.listen-address``,
``--collector.<name>`` / ``--no-collector.<name>``). Every flag can also come
from the environment as ``SYSMON_<FLAG>``, upper-cased with dots and dashes as
underscores (``SYSMON_WEB_LISTEN_ADDRESS``); the command line wins. Unknown
flags and bad values raise :class:`ConfigError`, whose text names the option
and the fix, and start-up stops there.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_PORT = 9477
LOG_LEVELS = ("debug", "info", "warn", "error")
SYSCALLS_BY = ("comm", "cgroup")

# Collectors that exist, and whether each is on by default.
COLLECTORS: dict[str, bool] = {
    "cpu": True,
    "cpufreq": True,
    "cpuinfo": True,
    "perf": True,
    "meminfo": True,
    "filesystem": True,
    "syscalls": False,  # eBPF: needs root or CAP_BPF + CAP_PERFMON
    "cgroup": True,
}


class ConfigError(Exception):
    """A bad flag, value or file: the message names the option and says how to fix it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, *, bare_seconds: bool = True) -> float:
    """A Go duration ("250ms", "1m30s", "1.5s") in seconds. A bare number is seconds, unless
    ``bare_seconds`` is False: then, as Go's time.ParseDuration, only "0" may go without a unit."""
    text = text.strip()
    if bare_seconds or text == "0":
        try:
            return float(text)
        except ValueError:
            pass
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            raise ValueError(f"{text!r} is not a duration (examples: 250ms, 1s, 1m30s)")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text:
        raise ValueError("empty duration (examples: 250ms, 1s, 1m30s)")
    return total


def format_duration(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def duration_in(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = parse_duration(text)
        if not low <= value <= high:
            raise ValueError(
                f"{text} is outside {format_duration(low)}..{format_duration(high)}; "
                f"pass a duration between {format_duration(low)} and {format_duration(high)}"
            )
        return value

    return parse


def parse_listen_address(text: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT; pass e.g. :{DEFAULT_PORT} or 127.0.0.1:{DEFAULT_PORT}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{text} must be above 0")
    return value


HOST_CID = 2  # VMADDR_CID_HOST, vsock(7)
VMADDR_CID_ANY = 0xFFFFFFFF


@dataclass(frozen=True)
class Address:
    """A guest channel end: ``virtio:[PATH]``, ``vsock:CID:PORT`` or ``unix:PATH``."""

    kind: str  # "virtio" | "vsock" | "unix"
    path: Path | None = None
    cid: int = HOST_CID
    port: int = 0

    def __str__(self) -> str:
        if self.kind == "vsock":
            return f"vsock:{self.cid}:{self.port}"
        return f"{self.kind}:{self.path or ''}"


def _vsock_port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 2**32:
        raise ValueError(f"{text!r} is not a vsock port (1..4294967295)")
    return int(text)


def parse_agent_channel(text: str) -> Address:
    """``virtio:[PATH]``, ``vsock:[CID:]PORT`` (host CID 2 by default) or ``unix:PATH``."""
    kind, sep, rest = text.partition(":")
    if kind == "virtio" and sep:
        return Address("virtio", Path(rest) if rest else None)
    if kind == "unix" and rest:
        return Address("unix", Path(rest))
    if kind == "vsock" and rest:
        cid, sep2, port = rest.rpartition(":")
        if sep2 and not cid.isdigit():
            raise ValueError(f"{text!r}: {cid!r} is not a context id; pass vsock:CID:PORT, e.g. vsock:2:9477")
        return Address("vsock", cid=int(cid) if sep2 else HOST_CID, port=_vsock_port(port))
    raise ValueError(f"{text!r} is not virtio:[PATH], vsock:[CID:]PORT or unix:PATH")


def parse_guest_listen(text: str) -> Address:
    """``unix:PATH`` or ``vsock:PORT`` (any local CID)."""
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return Address("unix", Path(rest))
    if kind == "vsock" and rest:
        return Address("vsock", cid=VMADDR_CID_ANY, port=_vsock_port(rest))
    raise ValueError(f"{text!r} is not unix:PATH or vsock:PORT")


def parse_pattern(text: str) -> str:
    if not text.strip():
        raise ValueError("empty pattern; pass a socket path such as /run/vms/{vm}/agent.sock")
    return text


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean; pass true or false")


def parse_regex(text: str) -> re.Pattern[str] | None:
    """A Python regular expression searched in each cgroup path; empty means none."""
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        raise ValueError(f"{text!r} is not a regular expression ({e}); pass e.g. '^/kubepods'") from None


def int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer; pass one between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"{value} is outside {low}..{high}; pass an integer between {low} and {high}")
        return value

    return parse


def parse_choice(choices: Sequence[str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def parse_pid(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError(f"{text!r} is not a process id; pass a positive integer")
    return int(text)


@dataclass(frozen=True)
class Flag:
    name: str  # dotted, without the leading dashes
    parse: Callable[[str], Any]
    default: Any
    help: str
    boolean: bool = False  # --name / --no-name
    repeatable: bool = False

    @property
    def env(self) -> str:
        return "SYSMON_" + re.sub(r"[.-]", "_", self.name).upper()

    @property
    def dest(self) -> str:
        return re.sub(r"[.-]", "_", self.name)


@dataclass(frozen=True)
class FlagSet:
    """A command's flags; ``parse`` returns {dest: value} for every flag."""

    prog: str
    flags: tuple[Flag, ...]
    positional: tuple[str, ...] = ()

    def usage(self) -> str:
        lines = [f"usage: {self.prog} [flags]" + "".join(f" {p.upper()}" for p in self.positional), "", "flags:"]
        for f in self.flags:
            spelled = f"--[no-]{f.name}" if f.boolean else f"--{f.name}=VALUE"
            default = "" if f.default in (None, (), "") else f" (default {_show(f.default)})"
            lines.append(f"  {spelled:<34} {f.help}{default}  [${f.env}]")
        return "\n".join(lines)

    def parse(self, argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, Any]:
        """{dest: value} for every flag, plus ``GIVEN``: the dests set on the command line or in the environment."""
        by_name = {f.name: f for f in self.flags}
        values: dict[str, Any] = {}
        given: set[str] = set()
        positional: list[str] = []

        def put(flag: Flag, raw: str, origin: str) -> None:
            given.add(flag.dest)
            try:
                value = flag.parse(raw)
            except ValueError as e:
                raise ConfigError(origin, str(e)) from None
            if flag.repeatable:
                values.setdefault(flag.dest, [])
                values[flag.dest].append(value)
            else:
                values[flag.dest] = value

        args = list(argv)
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if not arg.startswith("--"):
                if arg.startswith("-") and arg != "-":
                    raise ConfigError(arg, f"unknown flag; see {self.prog} --help")
                positional.append(arg)
                continue
            name, eq, raw = arg[2:].partition("=")
            negated = False
            if name not in by_name and name.startswith("no-") and name[3:] in by_name:
                name, negated = name[3:], True
            flag = by_name.get(name)
            if flag is None:
                raise ConfigError(f"--{name}", f"unknown flag; see {self.prog} --help")
            given.add(flag.dest)
            if flag.boolean:
                if negated and eq:
                    raise ConfigError(f"--no-{name}", "takes no value")
                put(flag, "false" if negated else (raw if eq else "true"), f"--{name}")
                continue
            if negated:
                raise ConfigError(f"--no-{name}", f"unknown flag; see {self.prog} --help")
            if not eq:
                if i >= len(args):
                    raise ConfigError(f"--{name}", "needs a value")
                raw = args[i]
                i += 1
            put(flag, raw, f"--{name}")

        for flag in self.flags:
            if flag.dest in given or flag.env not in environ:
                continue
            raw_env = environ[flag.env]
            parts = [p for p in raw_env.split(",") if p] if flag.repeatable else [raw_env]
            for part in parts:
                put(flag, part, f"${flag.env}")
        for flag in self.flags:
            if flag.dest not in values:
                values[flag.dest] = list(flag.default) if flag.repeatable else flag.default
            if flag.repeatable:
                values[flag.dest] = tuple(values[flag.dest])
        if len(positional) > len(self.positional):
            raise ConfigError(positional[len(self.positional)], f"unexpected argument; see {self.prog} --help")
        if len(positional) < len(self.positional):
            missing = self.positional[len(positional)]
            raise ConfigError(missing.upper(), f"missing argument; see {self.prog} --help")
        values.update(zip(self.positional, positional, strict=True))
        values[GIVEN] = frozenset(given)
        return values


GIVEN = "__given__"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return format_duration(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"{value[0]}:{value[1]}"
    return str(value)


SERVE_FLAGS: tuple[Flag, ...] = (
    Flag(
        "web.listen-address",
        parse_listen_address,
        ("", DEFAULT_PORT),
        "address for /metrics, / and the health endpoints",
    ),
    Flag(
        "grpc.listen-address",
        parse_listen_address,
        None,
        "serve ServiceRadar's monitoring.AgentService (the sysmon-vm checker) here",
    ),
    Flag(
        "sysmon-vm.config",
        Path,
        None,
        "ServiceRadar sysmon-vm checker JSON config (listen_addr, sample_interval, security); enables gRPC",
    ),
    Flag("path.procfs", Path, Path("/proc"), "procfs mount point (e.g. /host/proc in a container)"),
    Flag("path.sysfs", Path, Path("/sys"), "sysfs mount point (e.g. /host/sys in a container)"),
    Flag("path.rootfs", Path, Path("/"), "root of the filesystems to measure (e.g. /host/root in a container)"),
    Flag("path.cgroupfs", Path, Path("/sys/fs/cgroup"), "cgroupfs mount point (e.g. /host/sys/fs/cgroup)"),
    Flag("sampler.interval", duration_in(0.05, 5.0), 1.0, "how often CPU and memory are sampled"),
    Flag("cgroup.interval", duration_in(0.1, 300.0), 5.0, "how often cgroups are sampled"),
    Flag("cgroup.max-depth", int_in(0, 64), 6, "deepest cgroup level walked below each hierarchy root"),
    Flag("cgroup.include", parse_regex, None, "export only cgroups whose path matches this regex"),
    Flag("cgroup.exclude", parse_regex, None, "leave out cgroups whose path matches this regex"),
    Flag("cgroup.max-count", int_in(1, 1_000_000), 1000, "most cgroups exported; the deepest beyond it are dropped"),
    Flag("log.level", parse_choice(LOG_LEVELS), "info", "one of " + ", ".join(LOG_LEVELS)),
    *(
        Flag(f"collector.{name}", parse_bool, on, f"the {name} collector", boolean=True)
        for name, on in COLLECTORS.items()
    ),
    Flag(
        "guest.socket",
        parse_pattern,
        (),
        "QEMU chardev socket of a guest's agent port; {vm} names the VM (repeatable)",
        repeatable=True,
    ),
    Flag(
        "guest.listen",
        parse_guest_listen,
        (),
        "unix:PATH or vsock:PORT for agents to connect to (repeatable)",
        repeatable=True,
    ),
    Flag("guest.max-line-bytes", int_in(1024, 16 << 20), 65536, "longer guest lines are discarded"),
    Flag("guest.max-vms", int_in(1, 100_000), 256, "most VMs tracked at once"),
    Flag("guest.rate-limit", positive_float, 10.0, "rows per second accepted from one VM"),
    Flag(
        "guest.rate-burst",
        int_in(1, 1_000_000),
        256,
        "rows one VM may send at once (an agent's backlog after a reconnect; the agent queues 120 by default)",
    ),
    Flag("guest.silent-window", duration_in(0.05, 3600.0), 15.0, "a connection silent this long counts silent_window"),
    Flag("guest.rescan-interval", duration_in(0.05, 60.0), 5.0, "how often --guest.socket is re-globbed and retried"),
    Flag("guest.record", Path, None, "append every guest row to DIR/<vm>.jsonl"),
    Flag("guest.record.max-bytes", int_in(4096, 1 << 40), 64 << 20, "rotate a record file at this size"),
    Flag("guest.record.sign-key", Path, None, "Ed25519 PEM private key that signs each recorded line"),
    Flag("syscalls.pid", parse_pid, None, "count only this process and its descendants (syscalls collector)"),
    Flag("syscalls.cgroup", Path, None, "count only this cgroup v2 directory and below (syscalls collector)"),
    Flag("syscalls.include-self", parse_bool, False, "count the exporter's own syscalls too", boolean=True),
    Flag("syscalls.by", parse_choice(SYSCALLS_BY), None, "add a label: " + " or ".join(SYSCALLS_BY)),
    Flag("syscalls.top", int_in(1, 1000), 10, "with --syscalls.by, label values kept; the rest count as other"),
)


@dataclass(frozen=True)
class GuestConfig:
    patterns: tuple[str, ...] = ()
    listens: tuple[Address, ...] = ()
    max_line_bytes: int = 65536
    max_vms: int = 256
    rate_limit: float = 10.0
    rate_burst: int = 256
    silent_seconds: float = 15.0
    rescan_seconds: float = 5.0
    record_dir: Path | None = None
    record_max_bytes: int = 64 << 20
    sign_key: Path | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.patterns or self.listens)


@dataclass(frozen=True)
class Config:
    listen_host: str = ""
    listen_port: int = DEFAULT_PORT
    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    rootfs: Path = Path("/")
    cgroupfs: Path = Path("/sys/fs/cgroup")
    sampler_interval: float = 1.0
    cgroup_interval: float = 5.0
    cgroup_max_depth: int = 6
    cgroup_include: re.Pattern[str] | None = None
    cgroup_exclude: re.Pattern[str] | None = None
    cgroup_max_count: int = 1000
    log_level: str = "info"
    collectors: frozenset[str] = field(default_factory=lambda: frozenset(n for n, on in COLLECTORS.items() if on))
    grpc: GrpcConfig | None = None
    warnings: tuple[str, ...] = ()  # logged once logging is set up
    guest: GuestConfig = field(default_factory=GuestConfig)
    syscalls_pid: int | None = None
    syscalls_cgroup: Path | None = None
    syscalls_include_self: bool = False
    syscalls_by: str | None = None
    syscalls_top: int = 10


SERVE = FlagSet("sysmon-exporter", SERVE_FLAGS)


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """The serving command's Config from flags and SYSMON_* variables."""
    v = SERVE.parse(argv, environ)
    host, port = v["web_listen_address"]
    interval = v["sampler_interval"]
    grpc: GrpcConfig | None = None
    warnings: tuple[str, ...] = ()
    if v["sysmon_vm_config"] is not None:
        vm = load_sysmon_vm(v["sysmon_vm_config"])
        grpc, warnings = vm.grpc, vm.warnings
        if vm.sample_interval is not None and "sampler_interval" not in v[GIVEN]:
            interval = vm.sample_interval
    if v["grpc_listen_address"] is not None:
        grpc_host, grpc_port = v["grpc_listen_address"]
        grpc = replace(grpc or GrpcConfig(), host=grpc_host, port=grpc_port)
    collectors = frozenset(n for n in COLLECTORS if v[f"collector_{n}"])
    if grpc is not None:
        for name in GRPC_NEEDS:
            if name not in collectors:
                raise ConfigError(
                    f"--no-collector.{name}",
                    f"ServiceRadar's payload needs the {name} collector; keep it on, "
                    "or leave out --grpc.listen-address and --sysmon-vm.config",
                )
    if "syscalls" not in collectors:
        for name in ("syscalls.pid", "syscalls.cgroup", "syscalls.include-self", "syscalls.by"):
            if v[name.replace(".", "_").replace("-", "_")] not in (None, False):
                raise ConfigError(f"--{name}", "only applies to the syscalls collector; add --collector.syscalls")
    return Config(
        listen_host=host,
        listen_port=port,
        procfs=v["path_procfs"],
        sysfs=v["path_sysfs"],
        rootfs=v["path_rootfs"],
        sampler_interval=interval,
        cgroupfs=v["path_cgroupfs"],
        cgroup_interval=v["cgroup_interval"],
        cgroup_max_depth=v["cgroup_max_depth"],
        cgroup_include=v["cgroup_include"],
        cgroup_exclude=v["cgroup_exclude"],
        cgroup_max_count=v["cgroup_max_count"],
        log_level=v["log_level"],
        collectors=collectors,
        grpc=grpc,
        warnings=warnings,
        guest=_guest_config(v),
        syscalls_pid=v["syscalls_pid"],
        syscalls_cgroup=v["syscalls_cgroup"],
        syscalls_include_self=v["syscalls_include_self"],
        syscalls_by=v["syscalls_by"],
        syscalls_top=v["syscalls_top"],
    )


def _guest_config(v: Mapping[str, Any]) -> GuestConfig:
    guest = GuestConfig(
        patterns=v["guest_socket"],
        listens=v["guest_listen"],
        max_line_bytes=v["guest_max_line_bytes"],
        max_vms=v["guest_max_vms"],
        rate_limit=v["guest_rate_limit"],
        rate_burst=v["guest_rate_burst"],
        silent_seconds=v["guest_silent_window"],
        rescan_seconds=v["guest_rescan_interval"],
        record_dir=v["guest_record"],
        record_max_bytes=v["guest_record_max_bytes"],
        sign_key=v["guest_record_sign_key"],
    )
    if guest.record_dir is not None and not guest.enabled:
        raise ConfigError("--guest.record", "records nothing without --guest.socket or --guest.listen")
    if guest.sign_key is not None and guest.record_dir is None:
        raise ConfigError("--guest.record.sign-key", "signs recorded lines; pass --guest.record=DIR as well")
    if guest.record_dir is not None and not guest.record_dir.is_dir():
        raise ConfigError("--guest.record", f"{guest.record_dir} is not a directory; create it first")
    return guest


# The agent's collectors and whether each is on by default (cgroups only when asked for).
AGENT_COLLECTORS: dict[str, bool] = {"cpu": True, "cpufreq": True, "cpuinfo": True, "meminfo": True, "cgroup": False}
# The most cgroups one guest row may carry; the host discards a row with more (reason invalid_row).
GUEST_MAX_CGROUPS = 1000
_PATH_FLAGS = (
    Flag("path.procfs", Path, Path("/proc"), "procfs mount point"),
    Flag("path.sysfs", Path, Path("/sys"), "sysfs mount point"),
    Flag("path.dev", Path, Path("/dev"), "device directory (virtio-serial ports, /dev/vsock)"),
)
AGENT = FlagSet(
    "sysmon-exporter agent",
    (
        Flag("agent.channel", parse_agent_channel, Address("virtio"), "virtio:[PATH], vsock:[CID:]PORT or unix:PATH"),
        Flag("agent.interval", duration_in(0.05, 3600.0), 5.0, "how often the guest is sampled"),
        Flag("agent.queue-size", int_in(1, 100_000), 120, "rows kept while the host is not reading"),
        *_PATH_FLAGS,
        *(
            f
            for f in SERVE_FLAGS
            if f.name in ("path.cgroupfs", "cgroup.max-depth", "cgroup.include", "cgroup.exclude")
        ),
        Flag(
            "cgroup.max-count",
            int_in(1, GUEST_MAX_CGROUPS),
            100,
            "most cgroups in a row; each adds its path and ~90 bytes (host: --guest.max-line-bytes)",
        ),
        Flag("log.level", parse_choice(LOG_LEVELS), "info", "one of " + ", ".join(LOG_LEVELS)),
        *(
            Flag(f"collector.{n}", parse_bool, on, f"the {n} collector", boolean=True)
            for n, on in AGENT_COLLECTORS.items()
        ),
    ),
)
DIAG = FlagSet(
    "sysmon-exporter diag",
    (
        Flag("agent.channel", parse_agent_channel, None, "the agent channel to check (default: look for virtio)"),
        Flag("web.listen-address", parse_listen_address, ("", DEFAULT_PORT), "the exporter port to check"),
        *_PATH_FLAGS,
        Flag("json", parse_bool, False, "print the checks as JSON", boolean=True),
        *(
            Flag(f"collector.{n}", parse_bool, None, f"require the {n} collector to work", boolean=True)
            for n in COLLECTORS
        ),
    ),
)
VERIFY = FlagSet(
    "sysmon-exporter verify-record",
    (Flag("public-key", Path, None, "Ed25519 PEM public key"),),
    positional=("file",),
)


# ServiceRadar's sysmon-vm checker: its defaults and the interval bounds it clamps to.
SYSMON_VM_LISTEN = ("0.0.0.0", 50110)
SYSMON_VM_INTERVAL_BOUNDS = (0.05, 5.0)
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


@dataclass(frozen=True)
class SysmonVmConfig:
    grpc: GrpcConfig
    sample_interval: float | None  # None: the file leaves the interval to --sampler.interval
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
    listen = _field(raw, "listen_addr", where, "{}:{}".format(*SYSMON_VM_LISTEN))
    try:
        host, port = parse_listen_address(listen)
    except ValueError as e:
        raise ConfigError(option, f"{where}: listen_addr: {e}") from None

    warnings: list[str] = []
    low, high = SYSMON_VM_INTERVAL_BOUNDS
    interval: float | None = None
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
    mode = _field(security, "mode", where, "none").lower()
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

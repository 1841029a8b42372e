"""Command line, environment -> one frozen Config.

Flags follow the Prometheus dotted style (``--web.listen-address``,
``--collector.<name>`` / ``--no-collector.<name>``). Every flag can also come
from the environment as ``SYSMON_<FLAG>``, upper-cased with dots and dashes as
underscores (``SYSMON_WEB_LISTEN_ADDRESS``); the command line wins. Unknown
flags and bad values raise :class:`ConfigError`, whose text names the option
and the fix, and start-up stops there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 9477
LOG_LEVELS = ("debug", "info", "warn", "error")

# Collectors that exist, and whether each is on by default.
COLLECTORS: dict[str, bool] = {
    "cpu": True,
    "cpufreq": True,
    "cpuinfo": True,
    "perf": True,
    "meminfo": True,
    "cgroup": True,
}


class ConfigError(Exception):
    """A bad flag, value or file: the message names the option and says how to fix it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """A Go duration ("250ms", "1m30s", "1.5s") in seconds. A bare number is seconds."""
    text = text.strip()
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
        by_name = {f.name: f for f in self.flags}
        values: dict[str, Any] = {}
        given: set[str] = set()
        positional: list[str] = []

        def put(flag: Flag, raw: str, origin: str) -> None:
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
        return values


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
    Flag("path.procfs", Path, Path("/proc"), "procfs mount point (e.g. /host/proc in a container)"),
    Flag("path.sysfs", Path, Path("/sys"), "sysfs mount point (e.g. /host/sys in a container)"),
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
)


@dataclass(frozen=True)
class Config:
    listen_host: str = ""
    listen_port: int = DEFAULT_PORT
    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    cgroupfs: Path = Path("/sys/fs/cgroup")
    sampler_interval: float = 1.0
    cgroup_interval: float = 5.0
    cgroup_max_depth: int = 6
    cgroup_include: re.Pattern[str] | None = None
    cgroup_exclude: re.Pattern[str] | None = None
    cgroup_max_count: int = 1000
    log_level: str = "info"
    collectors: frozenset[str] = field(default_factory=lambda: frozenset(n for n, on in COLLECTORS.items() if on))


SERVE = FlagSet("sysmon-exporter", SERVE_FLAGS)


def load(argv: Sequence[str], environ: Mapping[str, str]) -> Config:
    """The serving command's Config from flags and SYSMON_* variables."""
    v = SERVE.parse(argv, environ)
    host, port = v["web_listen_address"]
    return Config(
        listen_host=host,
        listen_port=port,
        procfs=v["path_procfs"],
        sysfs=v["path_sysfs"],
        cgroupfs=v["path_cgroupfs"],
        sampler_interval=v["sampler_interval"],
        cgroup_interval=v["cgroup_interval"],
        cgroup_max_depth=v["cgroup_max_depth"],
        cgroup_include=v["cgroup_include"],
        cgroup_exclude=v["cgroup_exclude"],
        cgroup_max_count=v["cgroup_max_count"],
        log_level=v["log_level"],
        collectors=frozenset(n for n in COLLECTORS if v[f"collector_{n}"]),
    )

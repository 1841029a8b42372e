"""Flags bound to the fields of frozen dataclasses, and the parser that fills them.

A :class:`Section` pairs a dataclass with one :class:`Opt` per field that a
flag sets: the flag's name, parser and help stand next to each other, and its
default is the field's own default, so nothing is written twice. A
:class:`FlagSet` is a command's sections; ``parse`` reads the command line,
then ``SYSMON_<FLAG>`` variables, and returns :class:`Values`, from which each
section builds its dataclass. Unknown flags and bad values raise
:class:`ConfigError`, whose text names the option and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any, Generic, Protocol, TypeVar

from exporter.config.values import bytes_in, duration_in, format_bytes, format_duration

T = TypeVar("T")


class ConfigError(Exception):
    """A bad flag, value or file: the message names the option and says how to fix it."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclass(frozen=True)
class Flag:
    name: str  # dotted, without the leading dashes
    parse: Callable[[str], Any]
    default: Any
    help: str
    boolean: bool = False  # --name / --no-name
    repeatable: bool = False
    shown: str | None = None  # the default as --help prints it, in the unit it is typed in

    @property
    def env(self) -> str:
        return "SYSMON_" + re.sub(r"[.-]", "_", self.name).upper()


@dataclass(frozen=True)
class Opt:
    """The flag that sets one dataclass field; the field's default is the flag's."""

    name: str
    parse: Callable[[str], Any]
    help: str
    boolean: bool = False
    repeatable: bool = False
    shown: str | None = None


@dataclass(frozen=True)
class Values:
    """Parsed flags by name, which of them the command line or the environment set, and positionals."""

    by_name: Mapping[str, Any]
    given: frozenset[str]
    positional: Mapping[str, str]

    def __getitem__(self, name: str) -> Any:
        return self.by_name[name]


class Group(Protocol):
    @property
    def flags(self) -> tuple[Flag, ...]: ...


class Section(Generic[T]):
    """A frozen dataclass whose fields are set by flags (``field name -> Opt``)."""

    def __init__(self, cls: type[T], defaults: Mapping[str, Any] | None = None, **opts: Opt) -> None:
        self.cls = cls
        self.opts = opts
        declared = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        flags = []
        for attr, opt in opts.items():
            f = declared[attr]  # a KeyError here is a typo in a Section: caught by every test that imports config
            if defaults is not None and attr in defaults:
                default = defaults[attr]
            elif f.default is not MISSING:
                default = f.default
            elif f.default_factory is not MISSING:
                default = f.default_factory()
            else:
                raise TypeError(f"{cls.__name__}.{attr} has no default for --{opt.name}")
            flags.append(Flag(opt.name, opt.parse, default, opt.help, opt.boolean, opt.repeatable, opt.shown))
        self._flags = tuple(flags)

    @property
    def flags(self) -> tuple[Flag, ...]:
        return self._flags

    def build(self, values: Values, **extra: Any) -> T:
        """The dataclass from parsed flags; ``extra`` sets fields no flag sets."""
        kwargs = {attr: values[opt.name] for attr, opt in self.opts.items()}
        return self.cls(**kwargs, **extra)


@dataclass(frozen=True)
class FlagSet:
    """A command's flags, from its groups (sections and the collector toggles)."""

    prog: str
    groups: tuple[Group, ...]
    positional: tuple[str, ...] = ()
    about: str = ""  # a paragraph printed under the usage line (subcommands)

    @property
    def flags(self) -> tuple[Flag, ...]:
        return tuple(f for g in self.groups for f in g.flags)

    def usage(self) -> str:
        lines = [f"usage: {self.prog} [flags]" + "".join(f" {p.upper()}" for p in self.positional)]
        if self.about:
            lines += ["", self.about]
        lines += ["", "flags:"]
        for f in self.flags:
            spelled = f"--[no-]{f.name}" if f.boolean else f"--{f.name}=VALUE"
            shown = f.shown if f.shown is not None else ("" if f.default in (None, (), "") else _show(f))
            default = f" (default {shown})" if shown else ""
            lines.append(f"  {spelled:<34} {f.help}{default}  [${f.env}]")
        return "\n".join(lines)

    def parse(self, argv: Sequence[str], environ: Mapping[str, str]) -> Values:
        by_name = {f.name: f for f in self.flags}
        values: dict[str, Any] = {}
        given: set[str] = set()
        positional: list[str] = []

        def put(flag: Flag, raw: str, origin: str) -> None:
            given.add(flag.name)
            try:
                value = flag.parse(raw)
            except ValueError as e:
                raise ConfigError(origin, str(e)) from None
            if flag.repeatable:
                values.setdefault(flag.name, [])
                values[flag.name].append(value)
            elif flag.name in values and origin.startswith("--"):
                raise ConfigError(origin, "given twice; pass it once")
            else:
                values[flag.name] = value

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
            if flag.boolean:
                if negated and eq:
                    raise ConfigError(f"--no-{name}", "takes no value")
                values.pop(flag.name, None)  # --x --no-x: the last one wins, as with Go's flag package
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
            if flag.name in given or flag.env not in environ:
                continue
            raw_env = environ[flag.env]
            parts = [p for p in raw_env.split(",") if p] if flag.repeatable else [raw_env]
            for part in parts:
                put(flag, part, f"${flag.env}")
        for flag in self.flags:
            if flag.name not in values:
                values[flag.name] = list(flag.default) if flag.repeatable else flag.default
            if flag.repeatable:
                values[flag.name] = tuple(values[flag.name])
        if len(positional) > len(self.positional):
            raise ConfigError(positional[len(self.positional)], f"unexpected argument; see {self.prog} --help")
        if len(positional) < len(self.positional):
            missing = self.positional[len(positional)]
            raise ConfigError(missing.upper(), f"missing argument; see {self.prog} --help")
        return Values(values, frozenset(given), dict(zip(self.positional, positional, strict=True)))


def _show(flag: Flag) -> str:
    """The default in the unit it is typed in."""
    value = flag.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(flag.parse, duration_in):
        return format_duration(value)
    if isinstance(flag.parse, bytes_in):
        return format_bytes(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"{value[0]}:{value[1]}"
    return str(value)

"""``--[no-]collector.<name>``: one toggle per catalogued source, with the catalogue's default."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.catalogue import SOURCES, collector_defaults
from exporter.config.flags import Flag, Values
from exporter.config.values import parse_bool

# node_exporter's flag: every source off unless turned on by name.
DISABLE_DEFAULTS = Flag(
    "collector.disable-defaults", parse_bool, False, "turn off every source not named with --collector.<name>", True
)


@dataclass(frozen=True)
class Collectors:
    """The toggles of the exporter (``agent=False``) or the guest agent; ``required`` is diag's reading:
    a toggle defaults to None and ``--collector.x`` means "x must work"."""

    agent: bool = False
    required: bool = False

    @property
    def serving(self) -> bool:
        return not (self.agent or self.required)

    @property
    def flags(self) -> tuple[Flag, ...]:
        verb = "require the {} source to work: {}" if self.required else "the {} source: {}"
        disable = (DISABLE_DEFAULTS,) if self.serving else ()
        return disable + tuple(
            Flag(
                f"collector.{name}",
                parse_bool,
                None if self.required else on,
                verb.format(name, SOURCES[name].help),
                boolean=True,
            )
            for name, on in collector_defaults(self.agent).items()
        )

    def build(self, values: Values) -> frozenset[str]:
        """The sources turned on (diag: the ones requested with ``--collector.<name>``); with
        ``--collector.disable-defaults``, only those named on the command line or in the environment."""
        toggles = [f for f in self.flags if f is not DISABLE_DEFAULTS]
        if self.serving and values[DISABLE_DEFAULTS.name]:
            toggles = [f for f in toggles if f.name in values.given]
        return frozenset(f.name.removeprefix("collector.") for f in toggles if values[f.name] is True)

    def refused(self, values: Values) -> frozenset[str]:
        """diag: the sources turned off with ``--no-collector.<name>``."""
        toggles = [f for f in self.flags if f is not DISABLE_DEFAULTS]
        return frozenset(f.name.removeprefix("collector.") for f in toggles if values[f.name] is False)

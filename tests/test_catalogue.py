"""The catalogue of sources is the one place a source is described; these tests hold everything else to it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from exporter.catalogue import JOBS, SOURCES, collector_defaults
from exporter.config import AGENT, SERVE, load, load_agent
from exporter.snapshot import CpuSources, SystemClock, _Run, take_snapshot
from tests.helpers import FIXTURES, ROOT

PACKAGE = ROOT / "exporter"


def test_readme_sources_table_is_the_catalogue():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Sources") : readme.index("## Flags")]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| ([^|]+) \| ([^|]+) \| ([a-z]+) \| (.+) \|$", section, re.MULTILINE)
    documented = {name: (default.strip(), agent.strip(), job, what.strip()) for name, default, agent, job, what in rows}
    expected = {
        s.name: (
            "on" if s.default else (f"with {s.feature}" if not s.flag else "off"),
            {True: "on", False: "off", None: "—"}[s.agent],
            s.job,
            s.help,
        )
        for s in SOURCES.values()
    }
    assert documented == expected


def test_collector_flags_and_defaults_come_from_the_catalogue():
    serve = {f.name: f.default for f in SERVE.flags if f.name.startswith("collector.")}
    assert serve.pop("collector.disable-defaults") is False
    assert serve == {f"collector.{n}": on for n, on in collector_defaults().items()}
    assert "collector.host" not in serve  # turned on by the gRPC shim, not by a flag
    agent = {f.name: f.default for f in AGENT.flags if f.name.startswith("collector.")}
    assert agent == {
        "collector.cpu": True,
        "collector.cpufreq": True,
        "collector.cpuinfo": True,
        "collector.meminfo": True,
        "collector.cgroup": False,
    }
    assert load([], {}).collectors == {n for n, on in collector_defaults().items() if on}
    assert load_agent([], {}).collectors == {"cpu", "cpufreq", "cpuinfo", "meminfo"}
    assert {s.job for s in SOURCES.values()} <= set(JOBS)


def test_a_status_for_a_source_the_catalogue_lacks_is_refused():
    run = _Run(SystemClock())
    with pytest.raises(KeyError, match="uptime"):
        run("uptime", lambda: 1)
    with pytest.raises(KeyError, match="uptime"):
        run.fail("uptime", "missing")


def test_every_status_a_cpu_step_records_is_catalogued():
    root = FIXTURES / "vm-2cpu"
    names = {n for n in SOURCES if SOURCES[n].job == "cpu"}
    snap = take_snapshot(
        None,
        CpuSources(
            root / "proc",
            root / "sys",
            100,
            frozenset(names),
            host_identity=True,
            rootfs=root,
            host_ipv4=lambda: "192.0.2.1",
        ),
        SystemClock(),
    )
    assert set(snap.statuses) == names


# Layers of the import graph, lowest first: a module may import its own layer and those below.
LAYERS = (
    (
        "exporter.sources",
        "exporter.guest_state",
        "exporter.guest.hoststate",
        "exporter.guest.lines",
        "exporter.__init__",
        "exporter.logs",
    ),
    ("exporter.catalogue",),
    ("exporter.config", "exporter.snapshot"),
    ("exporter.collector", "exporter.sampler"),
    ("exporter.guest", "exporter.grpc_compat", "exporter.http", "exporter.web"),
    ("exporter.app", "exporter.diag", "exporter.syscalls_cmd"),
    ("exporter.cli", "exporter.__main__"),
)


def _layer(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"{module} has no layer in LAYERS")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return {m for m in out if m == "exporter" or m.startswith("exporter.")}


def test_no_import_points_up_the_layers():
    back = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "_generated" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts if parts[-1] != "__init__" else (*parts[:-1], "__init__"))
        for target in _imports(path):
            if target == "exporter":
                continue
            if _layer(target) > _layer(module):
                back.append(f"{module} -> {target}")
    assert back == []


def test_the_layers_test_sees_a_back_edge(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("from exporter.guest.ingest import Ingest\nimport exporter.collector\n")
    assert _imports(bad) == {"exporter.guest.ingest", "exporter.collector"}
    assert _layer("exporter.guest.ingest") > _layer("exporter.snapshot")
    assert _layer("exporter.collector.cpu") > _layer("exporter.sources.stat")

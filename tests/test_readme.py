"""The README's metrics and flags tables are a public API document: keep them true."""

from __future__ import annotations

import fnmatch
import re

from exporter.config import SERVE
from tests.helpers import GOLDEN, ROOT

README = (ROOT / "README.md").read_text()


def _table_names(pattern: str) -> set[str]:
    return set(re.findall(pattern, README, flags=re.MULTILINE))


def _golden_families() -> set[str]:
    names = set()
    for path in GOLDEN.glob("*.prom"):
        names |= set(re.findall(r"^# TYPE (\S+) ", path.read_text(), flags=re.MULTILINE))
    return names


def test_every_exposed_metric_is_in_the_metrics_table():
    documented = _table_names(r"^\| `((?:sysmon|process)_[a-z0-9_*]+)` \|")
    missing = {n for n in _golden_families() if not any(fnmatch.fnmatchcase(n, d) for d in documented)}
    assert not missing, f"README.md's metrics table lacks {sorted(missing)}"


def test_every_documented_metric_is_exposed_somewhere():
    documented = _table_names(r"^\| `(sysmon_[a-z0-9_*]+)` \|")
    exposed = _golden_families()
    stale = {d for d in documented if not any(fnmatch.fnmatchcase(n, d) for n in exposed)}
    assert not stale, f"README.md documents metrics no golden exposition has: {sorted(stale)}"


def test_every_serving_flag_is_in_the_flags_table():
    documented = _table_names(r"^\| `--(?:\[no-\])?([a-z][a-z0-9.-]+(?:<name>)?)`")
    flags = {f.name for f in SERVE.flags if not f.name.startswith("collector.")}
    assert flags - documented == set(), f"README.md's flags table lacks {sorted(flags - documented)}"
    assert "collector.<name>" in documented


def test_serviceradar_check_entries_use_each_files_own_keys():
    """The poller's check list reads service_type/service_name/details; the agent's checker file name/type/address."""
    import json

    section = README.split("## ServiceRadar: replacing the sysmon-vm checker", 1)[1].split("\n## ", 1)[0]
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", section, flags=re.DOTALL)]
    poller = [b for b in blocks if set(b) == {"service_type", "service_name", "details"}]
    agent = [b for b in blocks if set(b) == {"name", "type", "address"}]
    assert len(poller) == 1 and len(agent) == 1, blocks
    assert poller[0]["service_type"] == agent[0]["type"] == "grpc"
    assert poller[0]["service_name"] == agent[0]["name"] in {"sysmon", "sysmon-vm"}
    assert poller[0]["details"] == agent[0]["address"]
    host, _, port = agent[0]["address"].rpartition(":")
    assert host and port.isdigit()

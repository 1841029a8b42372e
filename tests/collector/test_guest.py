"""Guest families: one VM whose series cannot be written loses only its own series, counted and logged once."""

from __future__ import annotations

import logging

from exporter.collector import Renderer, default_collectors
from exporter.guest_state import GuestVm
from exporter.snapshot import Snapshot
from tests.helpers import parse_exposition


def render(renderer: Renderer, snap: Snapshot) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return parse_exposition(renderer(snap).body(False, False)[0].decode())


def by_vm(metrics, name: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {dict(k)["vm"]: v for k, v in metrics.get(name, {}).items()}


def test_a_vm_that_cannot_be_rendered_loses_only_its_own_series(caplog):
    good = GuestVm(
        "good",
        channel_up=True,
        up=True,
        hostname="web-1",
        agent_version="1",
        rows_total=4,
        cpu_seconds={0: {"user": 1.5}},
    )
    # What the ingest refuses (a lone surrogate from a "\ud800" escape), put in the state directly.
    bad = GuestVm("bad", channel_up=True, up=True, hostname="\ud800", agent_version="1", rows_total=9)
    snap = Snapshot(guests={"bad": bad, "good": good})
    renderer = Renderer(default_collectors("t"))
    caplog.set_level(logging.WARNING, logger="exporter.collector.guest")
    for n in (1, 2):
        metrics = render(renderer, Snapshot(guests=dict(snap.guests)))  # a new mapping: a new snapshot
        assert by_vm(metrics, "sysmon_guest_rows_total") == {"good": 4}
        assert by_vm(metrics, "sysmon_guest_up") == {"good": 1}
        assert by_vm(metrics, "sysmon_guest_cpu_seconds_total") == {"good": 1.5}
        assert by_vm(metrics, "sysmon_guest_render_failures_total") == {"bad": n, "good": 0}
    assert caplog.text.count("vm bad: guest series cannot be written") == 1

    # Once the VM's state can be written again its series are back; its count stays.
    fixed = GuestVm("bad", channel_up=True, up=True, hostname="db-1", agent_version="1", rows_total=10)
    metrics = render(renderer, Snapshot(guests={"bad": fixed, "good": good}))
    assert by_vm(metrics, "sysmon_guest_rows_total") == {"bad": 10, "good": 4}
    assert by_vm(metrics, "sysmon_guest_render_failures_total") == {"bad": 2, "good": 0}


def test_channel_up_and_up_are_separate_series():
    snap = Snapshot(
        guests={
            "booting": GuestVm("booting", channel_up=True, up=False),
            "running": GuestVm("running", channel_up=True, up=True),
            "stopped": GuestVm("stopped"),
        }
    )
    metrics = render(Renderer(default_collectors("t")), snap)
    assert by_vm(metrics, "sysmon_guest_channel_up") == {"booting": 1, "running": 1, "stopped": 0}
    assert by_vm(metrics, "sysmon_guest_up") == {"booting": 0, "running": 1, "stopped": 0}


def test_host_lines_a_guest_rejected_show_on_the_host():
    import json

    from exporter.config import GuestConfig
    from exporter.guest.ingest import Ingest
    from tests.guest.test_ingest import StepClock

    ingest = Ingest(GuestConfig(), StepClock())
    for seq, rejected in ((0, 1), (1, 3)):
        msg = {"v": 1, "type": "row", "seq": seq, "wall_ns": 1, "dropped": 0, "host_lines_rejected": rejected}
        ingest.feed("web-1", json.dumps(msg).encode() + b"\n")
    ingest.feed("quiet", json.dumps({"v": 1, "type": "row", "seq": 0, "wall_ns": 1}).encode() + b"\n")
    metrics = render(Renderer(default_collectors("t")), Snapshot(guests=ingest.view()))
    assert by_vm(metrics, "sysmon_guest_host_lines_rejected_total") == {"quiet": 0, "web-1": 3}

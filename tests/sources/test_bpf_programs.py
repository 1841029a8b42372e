"""Every eBPF program variant: its bytes pinned to the captured ones, its listing to a golden file.

tests/fixtures/bpf/programs.hex holds the bytes as the assembler produced them
before it printed itself (the file's header says how they were captured);
tests/golden/bpf/<variant>.txt holds each listing, with the map fds named.
Regenerate the listings with ``pytest tests/sources/test_bpf_programs.py --update-golden``
and review the diff; never the bytes.
"""

from __future__ import annotations

import ctypes
import os
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from exporter.sources.bpf import FP, R0, R1, R6, Asm, Bpf, MapType, ProgType
from exporter.sources.syscalls import (
    BreakdownMap,
    CgroupTarget,
    count_program,
    fork_program,
    free_program,
    own_tgid_program,
)
from tests.helpers import require_binary, require_root

ROOT = Path(__file__).resolve().parents[1]
BYTES = ROOT / "fixtures" / "bpf" / "programs.hex"
GOLDEN = ROOT / "golden" / "bpf"

# The same arguments as the capture (see the header of programs.hex).
COUNTS, PIDS, BY_COMM, BY_CGROUP, CONTAINERS = 11, 12, 13, 14, 15
MAPS = {COUNTS: "counts", PIDS: "pids", BY_COMM: "by_comm", BY_CGROUP: "by_cgroup", CONTAINERS: "containers"}
TGID, CGROUP = 4242, CgroupTarget(id=0x1_0000_0002, level=2)
PID_OFF, TGID_OFF = 2440, 2444
COMM, CGROUP_BY = BreakdownMap(BY_COMM, "comm"), BreakdownMap(BY_CGROUP, "cgroup")

VARIANTS: dict[str, Callable[[], Asm]] = {
    "count": lambda: count_program(COUNTS, None, None, None),
    "count-exclude-self": lambda: count_program(COUNTS, TGID, None, None),
    "count-pid": lambda: count_program(COUNTS, None, PIDS, None),
    "count-cgroup": lambda: count_program(COUNTS, None, None, CGROUP),
    "count-pid-cgroup-exclude-self": lambda: count_program(COUNTS, TGID, PIDS, CGROUP),
    "count-by-comm": lambda: count_program(COUNTS, None, None, None, COMM),
    "count-by-cgroup": lambda: count_program(COUNTS, None, None, None, CGROUP_BY),
    "count-pid-cgroup-exclude-self-by-comm": lambda: count_program(COUNTS, TGID, PIDS, CGROUP, COMM),
    "count-pid-cgroup-exclude-self-by-cgroup": lambda: count_program(COUNTS, TGID, PIDS, CGROUP, CGROUP_BY),
    "count-exclude-self-containers": lambda: count_program(COUNTS, TGID, None, None, None, CONTAINERS),
    "count-exclude-self-containers-by-cgroup": lambda: count_program(COUNTS, TGID, None, None, CGROUP_BY, CONTAINERS),
    "count-exclude-self-containers-by-comm": lambda: count_program(COUNTS, TGID, None, None, COMM, CONTAINERS),
    "fork": lambda: fork_program(PIDS, TGID_OFF),
    "free": lambda: free_program(PIDS, PID_OFF, TGID_OFF),
    "own-tgid": own_tgid_program,
}


def captured() -> dict[str, str]:
    lines = [ln for ln in BYTES.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split(" ", 1) for ln in lines)


def test_every_captured_program_is_still_built():
    assert sorted(captured()) == sorted(VARIANTS)


@pytest.mark.parametrize("name", VARIANTS)
def test_bytes_are_the_captured_ones(name):
    assert bytes(VARIANTS[name]()).hex() == captured()[name]


@pytest.mark.parametrize("name", VARIANTS)
def test_listing_matches_golden(request, name):
    text = VARIANTS[name]().listing(MAPS)
    path = GOLDEN / f"{name}.txt"
    if request.config.getoption("--update-golden"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.read_text() == text


def test_no_stale_golden_listing():
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(VARIANTS)


def _every_form_the_kernel_leaves_alone() -> Asm:
    """The instruction forms the programs use that the two below do not, in a program the verifier accepts."""
    a = Asm()
    a.mov(R6, R1)
    a.store_imm(FP, -4, 0, size=4)
    a.ld_imm64(R1, 0x1_0000_0002)
    a.store(FP, -16, R1)
    a.load(R0, FP, -16)
    a.jeq_imm(R0, 1, "out")
    a.jge_imm(R0, 1024, "out")
    a.label("out")
    a.mov_imm(R0, 0)
    return a.exit()


def _xlated(bpf: Bpf, fd: int) -> str:
    """``bpftool prog dump xlated`` of a loaded program (by its id, from BPF_OBJ_GET_INFO_BY_FD)."""
    info, query = ctypes.create_string_buffer(80), ctypes.create_string_buffer(16)
    struct.pack_into("=IIQ", query, 0, fd, len(info), ctypes.addressof(info))
    bpf.call(15, query)
    prog_id = struct.unpack_from("=I", info, 4)[0]
    return subprocess.run(
        ["bpftool", "prog", "dump", "xlated", "id", str(prog_id)], check=True, capture_output=True, text=True
    ).stdout


def _comparable(listing: str) -> str:
    # What the kernel's translation changes: helper ids become addresses, a map helper becomes the map
    # type's own function (bpf_map_delete_elem -> htab_map_delete_elem), fds become map ids.
    text = re.sub(r"call (\w+)#-?\d+", lambda m: "call " + m.group(1).replace("htab_map_", "bpf_map_"), listing)
    text = re.sub(r"map\[(fd|id):\w+\]", "map[]", text)
    return "\n".join(line for line in text.splitlines() if not line.startswith(";"))


@pytest.mark.live
def test_listing_is_what_bpftool_prints():
    """Programs the kernel does not rewrite (no map lookups, which it inlines) print as bpftool prints them."""
    require_root()
    require_binary("bpftool")
    bpf = Bpf()
    fds = [bpf.map_create(MapType.HASH, 4, 4, 16, "t_listing")]
    try:
        for asm in (own_tgid_program(), free_program(fds[0], PID_OFF, TGID_OFF), _every_form_the_kernel_leaves_alone()):
            fds.append(bpf.prog_load(ProgType.RAW_TRACEPOINT, bytes(asm), "t_listing"))
            assert _comparable(str(asm)) == _comparable(_xlated(bpf, fds[-1]))
    finally:
        for fd in fds:
            os.close(fd)

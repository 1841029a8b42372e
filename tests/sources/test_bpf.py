import struct
from pathlib import Path

import pytest

from exporter.sources.bpf import Asm, insn, parse_btf_struct_offsets, possible_cpus, read_btf_struct_offsets


@pytest.mark.parametrize(
    ("asm", "expected"),
    [
        (Asm().mov(6, 1), "bf16000000000000"),  # r6 = r1
        (Asm().exit(), "9500000000000000"),
        (Asm().call(14), "850000000e000000"),  # call bpf_get_current_pid_tgid
        (Asm().rsh_imm(0, 32), "7700000020000000"),
        (Asm().add_imm(2, -4), "07020000fcffffff"),
        (Asm().load(1, 6, 8), "7961080000000000"),  # r1 = *(u64 *)(r6 + 8)
        (Asm().store(10, -4, 1, size=4), "631afcff00000000"),  # *(u32 *)(r10 - 4) = r1
        (Asm().store_imm(10, -12, 1, size=4), "620af4ff01000000"),
        (Asm().ld_map(1, 5), "1811000005000000" + "0000000000000000"),  # ld_imm64 with BPF_PSEUDO_MAP_FD
        (Asm().ld_imm64(1, 0x1_0000_0002), "1801000002000000" + "0000000001000000"),
    ],
    ids=["mov", "exit", "call", "rsh", "add-negative", "ldx-dw", "stx-w", "st-imm", "ld-map", "ld-imm64"],
)
def test_instruction_encoding(asm, expected):
    assert bytes(asm).hex() == expected


def test_jumps_resolve_forward_over_wide_instructions():
    code = bytes(Asm().jeq_imm(0, 0, "out").ld_imm64(1, 7).mov_imm(0, 1).label("out").exit())
    assert code[:8] == insn(0x15, 0, 0, 3, 0)  # skips the two slots of ld_imm64 and the mov
    assert len(code) == 5 * 8


def test_jump_to_missing_label_is_an_error():
    with pytest.raises(ValueError, match="undefined label 'nowhere'"):
        bytes(Asm().jne_imm(0, 0, "nowhere").exit())


def _btf(types: bytes, strings: bytes) -> bytes:
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


def _type(name_off: int, kind: int, vlen: int, size: int, kind_flag: int = 0) -> bytes:
    return struct.pack("<III", name_off, (kind_flag << 31) | (kind << 24) | vlen, size)


STRINGS = b"\0int\0task_struct\0state\0pid\0tgid\0"
INT, TASK, STATE, PID, TGID = 1, 5, 17, 23, 27


def test_btf_offsets_including_anonymous_members_and_bitfield_encoding():
    types = (
        _type(INT, 1, 0, 4)
        + struct.pack("<I", 32)  # [1] int
        + _type(0, 4, 1, 8)
        + struct.pack("<III", PID, 1, 32)  # [2] anonymous struct { int pid @4 }
        + _type(TASK, 4, 3, 32, kind_flag=1)  # [3] task_struct, member offsets in bitfield form
        + struct.pack("<III", STATE, 1, 0)
        + struct.pack("<III", 0, 2, 64)  # the anonymous struct @8
        + struct.pack("<III", TGID, 1, 128)
    )
    assert parse_btf_struct_offsets(_btf(types, STRINGS), "task_struct", ["pid", "tgid"]) == {"pid": 12, "tgid": 16}


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\0" * 24, "bad magic"),
        (_btf(_type(INT, 1, 0, 4) + struct.pack("<I", 32), STRINGS), "no struct task_struct"),
        (_btf(_type(TASK, 4, 1, 8) + struct.pack("<III", STATE, 1, 0), STRINGS), "has no member pid"),
        (_btf(_type(0, 30, 0, 0), STRINGS), "unknown BTF kind 30"),
    ],
    ids=["magic", "no-struct", "no-member", "unknown-kind"],
)
def test_btf_errors_name_the_problem(blob, message):
    with pytest.raises(ValueError, match=message):
        parse_btf_struct_offsets(blob, "task_struct", ["pid"])


@pytest.mark.parametrize("blob", [b"\x9f\xeb\x01\x00", _btf(_type(TASK, 4, 3, 32), STRINGS)], ids=["header", "members"])
def test_truncated_btf_is_a_value_error_naming_the_file(tmp_path, blob):
    (tmp_path / "kernel" / "btf").mkdir(parents=True)
    (tmp_path / "kernel" / "btf" / "vmlinux").write_bytes(blob)
    with pytest.raises(ValueError, match="kernel/btf/vmlinux: "):
        read_btf_struct_offsets(tmp_path, "task_struct", ["pid"])


@pytest.mark.parametrize(("text", "n"), [("0-1\n", 2), ("0\n", 1), ("0-3,8-11\n", 12)], ids=["range", "one", "holes"])
def test_possible_cpus(tmp_path, text, n):
    path = tmp_path / "devices" / "system" / "cpu"
    path.mkdir(parents=True)
    (path / "possible").write_text(text)
    assert possible_cpus(tmp_path) == n


@pytest.mark.live
def test_task_struct_offsets_from_this_kernel():
    btf = Path("/sys/kernel/btf/vmlinux")
    if not btf.exists():
        pytest.skip("no kernel BTF")
    offsets = parse_btf_struct_offsets(btf.read_bytes(), "task_struct", ["pid", "tgid"])
    assert offsets["tgid"] == offsets["pid"] + 4  # adjacent pid_t fields (include/linux/sched.h)

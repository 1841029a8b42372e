import struct
from pathlib import Path

import pytest

from exporter.sources.bpf import (
    FP,
    R0,
    R1,
    R2,
    R6,
    R7,
    R10,
    Asm,
    Helper,
    Reg,
    disassemble,
    insn,
    parse_btf_struct_offsets,
    possible_cpus,
    read_btf_struct_offsets,
)


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


@pytest.mark.parametrize(
    ("asm", "line"),
    [
        (Asm().mov(R6, R1), "(bf) r6 = r1"),
        (Asm().mov_imm(R0, -1), "(b7) r0 = -1"),
        (Asm().add_imm(R2, -4), "(07) r2 += -4"),
        (Asm().rsh_imm(R0, 32), "(77) r0 >>= 32"),
        (Asm().load(R7, R6, 8), "(79) r7 = *(u64 *)(r6 +8)"),
        (Asm().load(R1, FP, -4, size=4), "(61) r1 = *(u32 *)(r10 -4)"),
        (Asm().store(FP, -4, R7, size=4), "(63) *(u32 *)(r10 -4) = r7"),
        (Asm().store(R0, 0, R1), "(7b) *(u64 *)(r0 +0) = r1"),
        (Asm().store_imm(FP, -12, 1, size=4), "(62) *(u32 *)(r10 -12) = 1"),
        (Asm().ld_imm64(R1, 0x1_0000_0002), "(18) r1 = 0x100000002"),
        (Asm().ld_map(R1, 5), "(18) r1 = map[fd:5]"),
        (Asm().call(Helper.MAP_LOOKUP_ELEM), "(85) call bpf_map_lookup_elem#1"),
        (Asm().call(Helper.GET_CURRENT_ANCESTOR_CGROUP_ID), "(85) call bpf_get_current_ancestor_cgroup_id#123"),
        (Asm().exit(), "(95) exit"),
        (Asm().jeq_imm(R0, 0, "x").label("x"), "(15) if r0 == 0x0 goto pc+0"),
        (Asm().jne_imm(R0, -1, "x").label("x"), "(55) if r0 != 0xffffffff goto pc+0"),
        (Asm().jge_imm(R7, 1024, "x").label("x"), "(35) if r7 >= 0x400 goto pc+0"),
        (Asm().jne_reg(R0, R1, "x").label("x"), "(5d) if r0 != r1 goto pc+0"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_instruction_prints_as_bpftool_prints_it(asm, line):
    assert str(asm) == f"   0: {line}\n"


def test_listing_numbers_slots_names_maps_and_prints_comments_before_their_block():
    a = Asm().comment("look up").ld_map(R1, 7).mov(R2, FP).comment("and").comment("return").exit()
    assert a.listing({7: "counts"}) == (
        "; look up\n   0: (18) r1 = map[fd:counts]\n   2: (bf) r2 = r10\n; and\n; return\n   3: (95) exit\n"
    )
    assert "map[fd:7]" in str(a)


def test_backward_and_forward_jumps_print_their_offsets():
    text = str(Asm().label("top").mov_imm(R0, 0).jeq_imm(R0, 0, "top").jeq_imm(R0, 1, "end").exit().label("end"))
    assert "   1: (15) if r0 == 0x0 goto pc-2\n   2: (15) if r0 == 0x1 goto pc+1\n" in text


def test_a_helper_without_a_name_prints_its_id():
    assert disassemble(insn(0x85, imm=999)) == "   0: (85) call unknown#999\n"


def test_an_opcode_the_printer_does_not_know_is_an_error():
    with pytest.raises(ValueError, match="cannot print opcode 0xd4"):
        disassemble(insn(0xD4, 1, imm=16))  # le16 r1: never emitted


def test_registers_and_helpers_are_the_kernel_numbers():
    assert (R0, R1, R6, R10, FP) == (0, 1, 6, 10, 10) and Reg.FP is Reg.R10
    assert Helper.PROBE_READ_KERNEL == 113 and Helper.GET_CURRENT_COMM.c_name == "bpf_get_current_comm"

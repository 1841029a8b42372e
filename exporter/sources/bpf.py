"""A minimal eBPF toolkit over bpf(2) with ctypes: instructions, maps, programs, raw tracepoints, BTF.

Interfaces: bpf(2) (include/uapi/linux/bpf.h, Documentation/bpf/), the
instruction set (Documentation/bpf/standardization/instruction-set.rst) and
the BTF format of /sys/kernel/btf/vmlinux (Documentation/bpf/btf.rst).

Why hand-assembled instructions rather than a compiled object: the programs
the exporter needs are a few dozen instructions, so assembling them here keeps
a plain ``pip install`` (and a slim container) enough to run them: no clang,
no BCC, no kernel headers, no ELF/relocation loader and no build step that
could drift from the Python that reads the maps. The constants that would
otherwise come from the compiler (the syscall number's offset in the raw
tracepoint context, task_struct field offsets) are either fixed ABI or read
from the running kernel's BTF.

Programs print themselves (``str(asm)``) in the syntax of ``bpftool prog dump
xlated``, so a listing can be read next to the kernel's own disassembly and
its verifier log; tests/golden/bpf/ holds one listing per program variant.

Only little-endian 64-bit machines (x86_64, aarch64) are supported: the
instruction encoding below packs the register nibbles in little-endian order.
Raw tracepoints need Linux 4.17; the syscall programs need 5.8+ for CAP_BPF and 5.10 for test runs.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from exporter.sources import SourceError, read_small, read_small_bytes
from exporter.sources.libc import syscall


class Cmd(IntEnum):
    """bpf(2) commands (enum bpf_cmd)."""

    MAP_CREATE = 0
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    PROG_TEST_RUN = 10
    RAW_TRACEPOINT_OPEN = 17
    MAP_LOOKUP_BATCH = 24  # Linux 5.6


class MapType(IntEnum):
    """enum bpf_map_type, the ones the exporter creates."""

    HASH = 1
    PERCPU_ARRAY = 6
    LRU_PERCPU_HASH = 10  # Linux 4.10


class ProgType(IntEnum):
    """enum bpf_prog_type, the ones the exporter loads."""

    RAW_TRACEPOINT = 17


class Helper(IntEnum):
    """Helper function ids (enum bpf_func_id, ``BPF_FUNC_<name>``) the programs call."""

    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    GET_CURRENT_PID_TGID = 14
    GET_CURRENT_COMM = 16
    GET_CURRENT_CGROUP_ID = 80
    PROBE_READ_KERNEL = 113
    GET_CURRENT_ANCESTOR_CGROUP_ID = 123

    @property
    def c_name(self) -> str:
        """The helper as C and bpftool call it: ``bpf_map_lookup_elem``."""
        return "bpf_" + self.name.lower()


class Reg(IntEnum):
    """Registers: r0 return value, r1-r5 arguments (clobbered by calls), r6-r9 kept across calls, r10 frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10
    FP = 10  # read-only; the 512-byte stack is below it


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = (Reg(i) for i in range(11))
FP = Reg.FP

# instruction classes, sizes, modes, sources, operations
_LD, _LDX, _ST, _STX, _JMP, _ALU64 = 0x00, 0x01, 0x02, 0x03, 0x05, 0x07
_W, _H, _B, _DW = 0x00, 0x08, 0x10, 0x18
_IMM, _MEM = 0x00, 0x60
_K, _X = 0x00, 0x08
_ADD, _RSH, _MOV = 0x00, 0x70, 0xB0
_JA, _JEQ, _JGE, _JNE, _CALL, _EXIT = 0x00, 0x10, 0x30, 0x50, 0x80, 0x90
BPF_PSEUDO_MAP_FD = 1
BPF_NOEXIST = 1
_SIZE = {4: _W, 8: _DW}

# How kernel/bpf/disasm.c (print_bpf_insn, shared with bpftool) spells operators and sizes.
_ALU_OPS = {
    0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=", 0x60: "<<=",
    0x70: ">>=", 0x90: "%=", 0xA0: "^=", 0xB0: "=", 0xC0: "s>>=",
}  # fmt: skip
_JMP_OPS = {
    0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>", 0x70: "s>=",
    0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<=",
}  # fmt: skip
_SIZE_NAMES = {_W: "u32", _H: "u16", _B: "u8", _DW: "u64"}

_SYSCALL_NR = {"x86_64": 321, "aarch64": 280}


class BpfUnavailable(OSError):
    """eBPF cannot be used here; the message says why and how to fix it."""


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte instruction: opcode, dst/src register nibbles (little-endian), offset, immediate."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass(frozen=True)
class Jump:
    """A conditional jump to a label, resolved by :class:`Asm`."""

    code: int
    dst: int
    imm: int
    label: str
    src: int = 0


class Asm:
    """A tiny assembler: instructions, labels, jumps to labels and comments.

    ``bytes(asm)`` is the program; ``str(asm)`` (or :meth:`listing`, which can
    name map fds) is its disassembly in bpftool's ``prog dump xlated`` syntax
    (see :func:`disassemble` for where it differs). Each method appends one instruction
    (``ld_imm64`` and ``ld_map`` take two slots, as in the kernel) and returns
    the assembler.
    """

    def __init__(self) -> None:
        self._items: list[bytes | Jump] = []
        self._pc = 0  # slots so far
        self._labels: dict[str, int] = {}
        self._comments: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return self._pc

    def _add(self, item: bytes | Jump) -> Asm:
        self._items.append(item)
        self._pc += len(item) // 8 if isinstance(item, bytes) else 1
        return self

    def label(self, name: str) -> Asm:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = self._pc
        return self

    def comment(self, text: str) -> Asm:
        """A line printed (``; text``) before the next instruction: what the block below does."""
        self._comments.setdefault(self._pc, []).append(text)
        return self

    def mov(self, dst: Reg, src: Reg) -> Asm:
        return self._add(insn(_ALU64 | _MOV | _X, dst, src))

    def mov_imm(self, dst: Reg, imm: int) -> Asm:
        return self._add(insn(_ALU64 | _MOV | _K, dst, imm=imm))

    def add_imm(self, dst: Reg, imm: int) -> Asm:
        return self._add(insn(_ALU64 | _ADD | _K, dst, imm=imm))

    def rsh_imm(self, dst: Reg, imm: int) -> Asm:
        return self._add(insn(_ALU64 | _RSH | _K, dst, imm=imm))

    def load(self, dst: Reg, src: Reg, off: int, size: int = 8) -> Asm:
        return self._add(insn(_LDX | _MEM | _SIZE[size], dst, src, off))

    def store(self, dst: Reg, off: int, src: Reg, size: int = 8) -> Asm:
        return self._add(insn(_STX | _MEM | _SIZE[size], dst, src, off))

    def store_imm(self, dst: Reg, off: int, imm: int, size: int = 8) -> Asm:
        return self._add(insn(_ST | _MEM | _SIZE[size], dst, off=off, imm=imm))

    def ld_imm64(self, dst: Reg, value: int, src: int = 0) -> Asm:
        lo, hi = _s32(value), _s32(value >> 32)
        return self._add(insn(_LD | _IMM | _DW, dst, src, imm=lo) + insn(0, imm=hi))

    def ld_map(self, dst: Reg, map_fd: int) -> Asm:
        """``dst = map``: ld_imm64 of the fd with BPF_PSEUDO_MAP_FD; the kernel puts the map's address there."""
        return self.ld_imm64(dst, map_fd, src=BPF_PSEUDO_MAP_FD)

    def call(self, helper: Helper) -> Asm:
        return self._add(insn(_JMP | _CALL, imm=helper))

    def exit(self) -> Asm:
        return self._add(insn(_JMP | _EXIT))

    def jeq_imm(self, dst: Reg, imm: int, label: str) -> Asm:
        return self._add(Jump(_JMP | _JEQ | _K, dst, imm, label))

    def jne_imm(self, dst: Reg, imm: int, label: str) -> Asm:
        return self._add(Jump(_JMP | _JNE | _K, dst, imm, label))

    def jge_imm(self, dst: Reg, imm: int, label: str) -> Asm:
        """Unsigned ``dst >= imm``."""
        return self._add(Jump(_JMP | _JGE | _K, dst, imm, label))

    def jne_reg(self, dst: Reg, src: Reg, label: str) -> Asm:
        return self._add(Jump(_JMP | _JNE | _X, dst, 0, label, src))

    def __bytes__(self) -> bytes:
        out = bytearray()
        pc = 0
        for item in self._items:
            if isinstance(item, bytes):
                out += item
                pc += len(item) // 8
                continue
            if item.label not in self._labels:
                raise ValueError(f"jump to undefined label {item.label!r}")
            out += insn(item.code, item.dst, item.src, self._labels[item.label] - pc - 1, item.imm)
            pc += 1
        return bytes(out)

    def listing(self, maps: Mapping[int, str] | None = None) -> str:
        """The disassembly with this program's comments; ``maps`` names map fds (see :func:`disassemble`)."""
        return disassemble(bytes(self), maps, self._comments)

    def __str__(self) -> str:
        return self.listing()


def disassemble(
    code: bytes, maps: Mapping[int, str] | None = None, comments: Mapping[int, Sequence[str]] | None = None
) -> str:
    """One line per instruction, as ``bpftool prog dump xlated`` prints a program.

    The syntax is bpftool's (kernel/bpf/disasm.c print_bpf_insn, which bpftool
    compiles in): ``   0: (bf) r6 = r1``, the slot number, the opcode in hex,
    then the instruction in C-like form; a two-slot ld_imm64 is one line and
    the next number skips a slot. ``; text`` lines are the program's comments,
    where bpftool prints source lines. One difference: bpftool shows programs
    as the kernel translated them, with map ids (``map[id:5]``) and some
    helper calls inlined; this shows the instructions as loaded, so a map is
    its fd, ``map[fd:5]``, or the name ``maps`` gives that fd (``map[fd:counts]``).
    """
    maps = maps or {}
    comments = comments or {}
    lines: list[str] = []
    pc = 0
    while pc < len(code) // 8:
        lines.extend(f"; {text}" for text in comments.get(pc, ()))
        op, regs, off, imm = struct.unpack_from("<BBhi", code, pc * 8)
        dst, src = regs & 0x0F, regs >> 4
        if op == _LD | _IMM | _DW:
            hi = struct.unpack_from("<i", code, pc * 8 + 12)[0]
            value = (hi & 0xFFFFFFFF) << 32 | (imm & 0xFFFFFFFF)
            what = f"map[fd:{maps.get(value, value)}]" if src == BPF_PSEUDO_MAP_FD else f"{value:#x}"
            lines.append(f"{pc:4d}: ({op:02x}) r{dst} = {what}")
            pc += 2
            continue
        lines.append(f"{pc:4d}: ({op:02x}) {_instruction(op, dst, src, off, imm)}")
        pc += 1
    return "\n".join(lines) + "\n"


def _instruction(op: int, dst: int, src: int, off: int, imm: int) -> str:
    cls, size, mode = op & 0x07, op & 0x18, op & 0xE0
    if cls == _ALU64 and (op & 0xF0) in _ALU_OPS:
        rhs = f"r{src}" if op & _X else str(imm)
        return f"r{dst} {_ALU_OPS[op & 0xF0]} {rhs}"
    if cls == _LDX and mode == _MEM:
        return f"r{dst} = *({_SIZE_NAMES[size]} *)(r{src} {off:+d})"
    if cls == _STX and mode == _MEM:
        return f"*({_SIZE_NAMES[size]} *)(r{dst} {off:+d}) = r{src}"
    if cls == _ST and mode == _MEM:
        return f"*({_SIZE_NAMES[size]} *)(r{dst} {off:+d}) = {imm}"
    if op == _JMP | _CALL:
        return f"call {_helper_name(imm)}#{imm}"
    if op == _JMP | _EXIT:
        return "exit"
    if op == _JMP | _JA:
        return f"goto pc{off:+d}"
    if cls == _JMP and (op & 0xF0) in _JMP_OPS:
        rhs = f"r{src}" if op & _X else f"{imm & 0xFFFFFFFF:#x}"
        return f"if r{dst} {_JMP_OPS[op & 0xF0]} {rhs} goto pc{off:+d}"
    raise ValueError(f"cannot print opcode {op:#04x}")


def _helper_name(helper_id: int) -> str:
    try:
        return Helper(helper_id).c_name
    except ValueError:
        return "unknown"


class Bpf:
    """The bpf(2) syscall; every call raises OSError with the kernel's errno (and the verifier log)."""

    def __init__(self) -> None:
        nr = _SYSCALL_NR.get(platform.machine())
        if nr is None:
            raise BpfUnavailable(errno.ENOSYS, f"bpf(2): unsupported architecture {platform.machine()}")
        self._nr = nr

    def call(self, cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
        return syscall(self._nr, cmd, ctypes.addressof(attr), len(attr))

    def map_create(self, map_type: MapType, key_size: int, value_size: int, max_entries: int, name: str) -> int:
        attr = ctypes.create_string_buffer(72)
        struct.pack_into("=IIIII", attr, 0, map_type, key_size, value_size, max_entries, 0)
        struct.pack_into("16s", attr, 28, name.encode()[:15])
        return self.call(Cmd.MAP_CREATE, attr)

    def _elem(
        self,
        cmd: int,
        fd: int,
        key: ctypes.Array[ctypes.c_char],
        value: ctypes.Array[ctypes.c_char] | None,
        flags: int = 0,
    ) -> int:
        attr = ctypes.create_string_buffer(32)
        value_addr = 0 if value is None else ctypes.addressof(value)
        struct.pack_into("=IIQQQ", attr, 0, fd, 0, ctypes.addressof(key), value_addr, flags)
        return self.call(cmd, attr)

    def update(self, fd: int, key: bytes, value: bytes) -> None:
        self._elem(
            Cmd.MAP_UPDATE_ELEM,
            fd,
            ctypes.create_string_buffer(key, len(key)),
            ctypes.create_string_buffer(value, len(value)),
        )

    def delete(self, fd: int, key: bytes) -> None:
        """Remove ``key`` from a hash map; ENOENT when it is not there."""
        self._elem(Cmd.MAP_DELETE_ELEM, fd, ctypes.create_string_buffer(key, len(key)), None)

    def keys(self, fd: int, key_size: int) -> list[bytes]:
        """Every key of a hash map (BPF_MAP_GET_NEXT_KEY from no key)."""
        out: list[bytes] = []
        key: ctypes.Array[ctypes.c_char] | None = None
        while True:
            nxt = ctypes.create_string_buffer(key_size)
            attr = ctypes.create_string_buffer(32)
            struct.pack_into(
                "=IIQQ", attr, 0, fd, 0, 0 if key is None else ctypes.addressof(key), ctypes.addressof(nxt)
            )
            try:
                self.call(Cmd.MAP_GET_NEXT_KEY, attr)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    return out
                raise
            out.append(nxt.raw)
            key = nxt

    def lookup_all(self, fd: int, key_size: int, value_size: int, max_entries: int) -> list[tuple[bytes, bytes]]:
        """Every (key, value) of a map in as few calls as possible (BPF_MAP_LOOKUP_BATCH, 5.6).

        ``value_size`` is what one element holds in userspace (for per-CPU maps,
        8-byte-rounded value size x possible CPUs).
        """
        keys = ctypes.create_string_buffer(key_size * max_entries)
        values = ctypes.create_string_buffer(value_size * max_entries)
        token_in, token_out = ctypes.create_string_buffer(8), ctypes.create_string_buffer(8)
        out: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            attr = ctypes.create_string_buffer(56)
            struct.pack_into(
                "=QQQQIIQQ",
                attr,
                0,
                0 if first else ctypes.addressof(token_in),
                ctypes.addressof(token_out),
                ctypes.addressof(keys),
                ctypes.addressof(values),
                max_entries,
                fd,
                0,
                0,
            )
            done = False
            try:
                self.call(Cmd.MAP_LOOKUP_BATCH, attr)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise
                done = True  # no more elements; count still says how many came back
            count = struct.unpack_from("=I", attr, 32)[0]
            k, v = keys.raw, values.raw  # each .raw is a copy of the whole buffer: once per batch
            out.extend(
                (k[i * key_size : (i + 1) * key_size], v[i * value_size : (i + 1) * value_size]) for i in range(count)
            )
            if done or count == 0:
                return out
            ctypes.memmove(token_in, token_out, 8)
            first = False

    def prog_load(self, prog_type: ProgType, code: bytes, name: str) -> int:
        """Loads a GPL program; on failure the OSError's message carries the verifier log."""
        license_ = ctypes.create_string_buffer(b"GPL")
        insns = ctypes.create_string_buffer(code, len(code))
        log = ctypes.create_string_buffer(1 << 16)
        attr = ctypes.create_string_buffer(128)
        struct.pack_into(
            "=IIQQIIQII16s",
            attr,
            0,
            prog_type,
            len(code) // 8,
            ctypes.addressof(insns),
            ctypes.addressof(license_),
            0,
            0,
            0,
            0,
            0,
            name.encode()[:15],
        )
        try:
            return self.call(Cmd.PROG_LOAD, attr)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
        # Again with the verifier log: only needed to explain a rejection.
        struct.pack_into("=IIQ", attr, 24, 1, len(log), ctypes.addressof(log))
        try:
            return self.call(Cmd.PROG_LOAD, attr)
        except OSError as e:
            text = log.value.decode(errors="replace").strip().splitlines()
            raise OSError(e.errno, f"{e.strerror}; verifier: {' | '.join(text[-4:])}") from None

    def test_run(self, prog_fd: int) -> int:
        """Runs a raw tracepoint program once in the caller's context (no ctx; Linux 5.10); its return value."""
        attr = ctypes.create_string_buffer(80)
        struct.pack_into("=I", attr, 0, prog_fd)
        self.call(Cmd.PROG_TEST_RUN, attr)
        return int(struct.unpack_from("=I", attr, 4)[0])

    def raw_tracepoint_open(self, name: str, prog_fd: int) -> int:
        tp = ctypes.create_string_buffer(name.encode())
        attr = ctypes.create_string_buffer(16)
        struct.pack_into("=QI", attr, 0, ctypes.addressof(tp), prog_fd)
        return self.call(Cmd.RAW_TRACEPOINT_OPEN, attr)


_CPU_RANGE = re.compile(r"([0-9]{1,7})(?:-([0-9]{1,7}))?\Z")


def parse_possible_cpus(text: str, path: str = "/sys/devices/system/cpu/possible") -> int:
    """Highest CPU number + 1 in a cpulist such as ``0-3,8-11`` (Documentation/admin-guide/cputopology.rst)."""
    highest = -1
    for part in text.strip().split(","):
        match = _CPU_RANGE.match(part)
        if match is None or (match.group(2) is not None and int(match.group(2)) < int(match.group(1))):
            raise SourceError(path, f"not a CPU list: {text[:60]!r}")
        highest = max(highest, int(match.group(2) or match.group(1)))
    return highest + 1


def possible_cpus(sysfs: Path) -> int:
    """How many values a per-CPU map holds: highest possible CPU + 1 (devices/system/cpu/possible)."""
    path = sysfs / "devices" / "system" / "cpu" / "possible"
    return parse_possible_cpus(read_small(path), str(path))


# --- BTF -------------------------------------------------------------------

_BTF_MAGIC = 0xEB9F
_KIND_STRUCT = 4
_COMPOSITE = frozenset({4, 5})  # struct, union
# Bytes following the 12-byte type header, per kind: fixed, and per vlen entry.
_BTF_TRAILER = {
    1: (4, 0),
    2: (0, 0),
    3: (12, 0),
    4: (0, 12),
    5: (0, 12),
    6: (0, 8),
    7: (0, 0),
    8: (0, 0),
    9: (0, 0),
    10: (0, 0),
    11: (0, 0),
    12: (0, 0),
    13: (0, 8),
    14: (4, 0),
    15: (0, 12),
    16: (0, 0),
    17: (4, 0),
    18: (0, 0),
    19: (0, 12),
}


def parse_btf_struct_offsets(
    data: bytes, struct_name: str, members: Iterable[str], path: str = "/sys/kernel/btf/vmlinux"
) -> dict[str, int]:
    """Byte offsets of ``members`` in the struct named ``struct_name`` of a raw BTF blob.

    Members inside anonymous structs and unions (as CONFIG_RANDSTRUCT lays out
    task_struct) are found too, at their offset from the outer struct. Any blob
    that is not such BTF (truncated, offsets out of range, a name that is not
    UTF-8, anonymous members that nest in a cycle) is a :class:`SourceError`.
    """
    try:
        return _btf_struct_offsets(data, struct_name, list(members))
    except struct.error:
        raise SourceError(path, "truncated") from None
    except UnicodeDecodeError:
        raise SourceError(path, "a name is not UTF-8") from None
    except _BtfError as e:
        raise SourceError(path, str(e)) from None


class _BtfError(Exception):
    pass


def _btf_struct_offsets(data: bytes, struct_name: str, wanted: list[str]) -> dict[str, int]:
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
    if magic != _BTF_MAGIC:
        raise _BtfError("not BTF (bad magic)")
    type_off, type_len, str_off, _str_len = struct.unpack_from("<IIII", data, 8)
    types = hdr_len + type_off
    strings = hdr_len + str_off

    def name_at(off: int) -> str:
        end = data.find(b"\0", strings + off)
        if end < 0 or strings + off > len(data):
            raise _BtfError(f"name offset {off} is outside the string section")
        return data[strings + off : end].decode()

    # Type ids start at 1; for structs and unions keep (member name offset, type id, byte offset).
    composite: dict[int, list[tuple[int, int, int]]] = {}
    named: list[int] = []
    pos, end, type_id = types, types + type_len, 0
    if end > len(data):
        raise _BtfError("type section runs past the end")
    while pos < end:
        type_id += 1
        name_off, info, _size = struct.unpack_from("<III", data, pos)
        kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        if kind not in _BTF_TRAILER:
            raise _BtfError(f"unknown BTF kind {kind}")
        fixed, each = _BTF_TRAILER[kind]
        body = pos + 12
        if kind in _COMPOSITE:
            entries = []
            for i in range(vlen):
                m_name, m_type, m_off = struct.unpack_from("<III", data, body + 12 * i)
                entries.append((m_name, m_type, (m_off & 0xFFFFFF if kind_flag else m_off) // 8))
            composite[type_id] = entries
            if kind == _KIND_STRUCT and name_off and name_at(name_off) == struct_name:
                named.append(type_id)
        pos = body + fixed + each * vlen
    if not named:
        raise _BtfError(f"no struct {struct_name} in BTF")

    found: dict[str, int] = {}
    # Anonymous members are walked with an explicit stack; a type already on the path is a cycle.
    todo: list[tuple[int, int, frozenset[int]]] = [(named[0], 0, frozenset({named[0]}))]
    while todo:
        tid, base, path = todo.pop()
        nested = []
        for m_name, m_type, off in composite[tid]:
            if m_name:
                found.setdefault(name_at(m_name), base + off)
            elif m_type in composite:
                if m_type in path:
                    raise _BtfError(f"anonymous members of type {m_type} nest in a cycle")
                nested.append((m_type, base + off, path | {m_type}))
        todo.extend(reversed(nested))  # depth first, in member order, as the recursive walk did
    missing = [m for m in wanted if m not in found]
    if missing:
        raise _BtfError(f"struct {struct_name} has no member {', '.join(missing)}")
    return {m: found[m] for m in wanted}


# vmlinux BTF is 5 to 10 MiB on distribution kernels.
BTF_LIMIT = 64 << 20


def read_btf_struct_offsets(sysfs: Path, struct_name: str, members: Sequence[str]) -> dict[str, int]:
    """Member offsets from the running kernel's BTF (``kernel/btf/vmlinux``, CONFIG_DEBUG_INFO_BTF)."""
    path = sysfs / "kernel" / "btf" / "vmlinux"
    return parse_btf_struct_offsets(read_small_bytes(path, BTF_LIMIT), struct_name, members, str(path))

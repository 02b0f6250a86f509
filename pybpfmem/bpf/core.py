"""Programs: bpf_prog_load() (kernel/bpf/syscall.c) and bpf_prog_alloc()
(kernel/bpf/core.c), with both accounting regimes.

Simplifications: no verifier (instructions are only counted and scanned for
map references), no JIT image (it is limited by bpf_jit_limit, not memcg),
no bpf_prog_realloc; the sizes of struct bpf_prog_aux and the per-cpu stats
are the profile's (pybpfmem/profiles/structs/).
"""

from __future__ import annotations

import errno
import struct
from typing import Any, Sequence

from .._ffi import NoCopy
from . import uapi as U
from .caps import bpf_capable
from .errors import BpfError
from .fd import BpfFile, map_inc, map_put
from .map import CHARGE_KINDS, BpfMap, kmalloc_stat_kind, rup, sum_over_memcgs
from .regime import MemlockCharge, charge_memlock, uncharge_memlock

BPF_LD_IMM64 = 0x18
BPF_PSEUDO_MAP_FD = 1
_KNOWN_PROG_FLAGS = (U.BPF_F_STRICT_ALIGNMENT | U.BPF_F_ANY_ALIGNMENT | U.BPF_F_TEST_RND_HI32
                     | U.BPF_F_TEST_STATE_FREQ | U.BPF_F_SLEEPABLE)
_UNPRIV_TYPES = (U.BPF_PROG_TYPE_SOCKET_FILTER, U.BPF_PROG_TYPE_CGROUP_SKB)


def build_insns(insn_cnt: int, maps: Sequence[int]) -> bytes:
    """insn_cnt instructions: a BPF_LD_IMM64 (BPF_PSEUDO_MAP_FD) pair per map fd,
    the rest zero (only the count matters to the model)."""
    out = bytearray(8 * insn_cnt)
    if 2 * len(maps) > insn_cnt:
        raise ValueError(f"{len(maps)} map references need {2 * len(maps)} instructions")
    for i, fd in enumerate(maps):
        struct.pack_into("<BBhi", out, 16 * i, BPF_LD_IMM64, BPF_PSEUDO_MAP_FD << 4, 0, fd)
    return bytes(out)


class BpfProg(NoCopy):
    """struct bpf_prog + bpf_prog_aux, as far as memory is concerned."""

    is_prog = True

    def __init__(self, system: Any, prog_type: int, insn_cnt: int, name: str) -> None:
        self.system = system
        self.prog_type = prog_type
        self.expected_attach_type = 0
        self.insn_cnt = insn_cnt
        self.name = name
        self.id = 0
        self.refcnt = 0
        self.pages = 0
        self.memory = MemlockCharge()
        self.used_maps: list[BpfMap] = []
        self.pinned: list[str] = []
        self.memcg_path: str | None = None
        self.allocs: list[tuple[str, int, int]] = []   # (kind, addr, requested bytes)

    def free_all(self) -> None:
        """Mirrors __bpf_prog_put_rcu() -> bpf_prog_free(): uncharge (v5.10), free the
        aux, stats and the prog area, drop used maps."""
        st = self.system.bpf_state
        sysm = self.system
        if self.memory.user is not None:
            uncharge_memlock(self.memory.user, self.memory.pages)
            st.rlimit.free_uid(self.memory.user)
            self.memory = MemlockCharge()
        for kind, addr, _ in reversed(self.allocs):
            if kind == "vmalloc":
                sysm.vfree(addr)
            elif kind == "slab":
                sysm.kfree(addr)
            else:
                sysm.free_percpu(addr)
        self.allocs.clear()
        for m in self.used_maps:
            map_put(st, m)
        self.used_maps.clear()

    def charges(self) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
        """As BpfMap.charges(): requested bytes by kind on non-root memcgs, and per memcg
        id the bytes it sees, by CHARGE_KINDS."""
        sysm = self.system
        asked = dict.fromkeys(CHARGE_KINDS, 0)
        by_memcg: dict[int, dict[str, int]] = {}
        for kind, addr, n in self.allocs:
            cg = sysm.obj_cgroup_of(addr)[1]
            if cg is None or cg is sysm.root:
                continue
            seen = by_memcg.setdefault(cg.id, dict.fromkeys(CHARGE_KINDS, 0))
            asked[kind] += n
            if kind == "slab":
                full = sysm.kmalloc_charged_size(addr)
                seen[kmalloc_stat_kind(sysm, full)] += full
            elif kind == "percpu":
                seen[kind] += sysm.pcpu_obj_full_size(n // sysm.nr_cpus)
            else:
                seen[kind] += n
        return asked, by_memcg

    def objcgs(self) -> set[int]:
        """The obj_cgroups its slab and percpu objects are charged through."""
        found = (self.system.obj_cgroup_of(addr)[0] for kind, addr, _ in self.allocs if kind != "vmalloc")
        return {o for o in found if o is not None}

    def charged_bytes(self) -> tuple[dict[str, int], dict[str, int]]:
        """charges() summed over the memcgs: (requested, seen by the memcgs) by kind."""
        return sum_over_memcgs(*self.charges())

    def show(self) -> dict[str, Any]:
        requested, charged = self.charged_bytes()
        return {"id": self.id, "type": U.PROG_TYPE_NAMES.get(self.prog_type, "").lower(),
                "name": self.name, "bytes_xlated": 8 * self.insn_cnt,
                "bytes_memlock": self.pages * self.system.page_size,
                "map_ids": [m.id for m in self.used_maps], "pinned": list(self.pinned),
                "memcg": self.memcg_path, "charged": charged, "requested": requested,
                "legacy_pages": self.memory.pages}

    def fdinfo(self, st: Any) -> dict[str, str]:
        """bpf_prog_show_fdinfo(): memlock = prog->pages * PAGE_SIZE in every regime."""
        out = {"prog_type": str(self.prog_type), "prog_jited": "0",
               "prog_tag": "0000000000000000",
               "memlock": str(self.pages * self.system.page_size),
               "prog_id": str(self.id), "run_time_ns": "0", "run_cnt": "0"}
        if st.bprof.prog_fdinfo_recursion_misses:
            out["recursion_misses"] = "0"
        if st.bprof.prog_fdinfo_verified_insns:
            out["verified_insns"] = str(self.insn_cnt)
        return out

    def info_bytes(self, bprof: Any) -> bytes:
        """struct bpf_prog_info head: type, id, tag[8], jited_prog_len, xlated_prog_len."""
        buf = bytearray(64)
        struct.pack_into("<II", buf, 0, self.prog_type, self.id)
        struct.pack_into("<II", buf, 16, 0, 8 * self.insn_cnt)
        return bytes(buf)

    @staticmethod
    def decode_info(raw: bytes) -> dict[str, Any]:
        t, i = struct.unpack_from("<II", raw, 0)
        _, xl = struct.unpack_from("<II", raw, 16)
        return {"type": t, "id": i, "xlated_prog_len": xl}


def prog_map_compatible(m: Any, prog: Any) -> bool:
    """Mirrors __bpf_prog_map_compatible() for a prog array (tail calls): the first
    program put in the array or loaded using it makes it the owner (its type and, with
    switch prog_array_owner_attach_type, its expected attach type); later programs must
    match.  The owner stays when the programs go.  (jited, xdp_has_frags and the cgroup
    storage cookies agree for every program the model loads.)"""
    mine = (prog.prog_type, prog.expected_attach_type if m.bprof.prog_array_owner_attach_type
            else 0)
    if m.owner is None:
        m.owner = mine
        return True
    return bool(m.owner == mine)


def bpf_prog_load(c: Any) -> int:
    """Mirrors bpf_prog_load(), kernel/bpf/syscall.c (checks, allocation, v5.10
    rlimit charge, map references, id, fd)."""
    a, task, st = c.a, c.task, c.st
    bp, sysm = st.bprof, c.system
    g = st.gfp
    cap = bpf_capable(task)
    if a["prog_flags"] & ~_KNOWN_PROG_FLAGS:
        raise BpfError(errno.EINVAL, f"bpf_prog_load: unknown prog_flags {a['prog_flags']:#x}")
    if bp.unpriv_per_command and st.unprivileged_bpf_disabled and not cap:
        raise BpfError(errno.EPERM, "bpf_prog_load: unprivileged_bpf_disabled and no CAP_BPF")
    license = c.umem.read_str(a["license"], 128)
    n = a["insn_cnt"]
    limit = U.BPF_COMPLEXITY_LIMIT_INSNS if cap else U.BPF_MAXINSNS
    if n == 0 or n > limit:
        raise BpfError(errno.E2BIG, f"bpf_prog_load: insn_cnt {n} not in 1..{limit}")
    if a["prog_type"] not in _UNPRIV_TYPES and not cap:
        raise BpfError(errno.EPERM, f"bpf_prog_load: prog type {a['prog_type']} needs CAP_BPF")
    if a["prog_type"] not in U.PROG_TYPE_NAMES or a["prog_type"] == 0:
        raise BpfError(errno.EINVAL, f"bpf_prog_load: unknown prog_type {a['prog_type']}")
    name_raw = bytes(a["prog_name"])
    if b"\0" not in name_raw:
        raise BpfError(errno.EINVAL, "bpf_prog_load: prog_name not NUL-terminated")
    p = BpfProg(sysm, a["prog_type"], n, name_raw.split(b"\0")[0].decode("latin-1"))
    p.license = license  # type: ignore[attr-defined]
    p.expected_attach_type = a["expected_attach_type"]
    # bpf_prog_alloc(bpf_prog_size(insn_cnt), GFP_USER) -> bpf_prog_alloc_no_stats()
    page = sysm.page_size
    size = rup(max(st.sizes.bpf_prog, st.sizes.bpf_prog + 8 * n), page)
    p.pages = size // page
    acct = g.ACCOUNT if bp.account else 0
    p.memcg_path = task.cgroup.path if bp.account else None
    try:
        p.allocs.append(("vmalloc", sysm.vmalloc(size, g.KERNEL | g.ZERO | acct), size))
        p.allocs.append(("slab", sysm.kmalloc(st.sizes.bpf_prog_aux, g.KERNEL | g.ZERO | acct),
                         st.sizes.bpf_prog_aux))
        p.allocs.append(("percpu", sysm.alloc_percpu(st.sizes.bpf_prog_stats, 8,
                                                     g.KERNEL | g.ZERO | acct),
                         st.sizes.bpf_prog_stats * sysm.nr_cpus))
    except OSError as exc:
        p.free_all()
        err = errno.ENOMEM if bp.prog_alloc_enomem else errno.EINVAL
        raise BpfError(err, f"bpf_prog_alloc({size}) failed: {exc.strerror or exc}") from None
    try:
        if bp.rlimit:
            # bpf_prog_charge_memlock(): prog->pages against the loader's user
            user = st.rlimit.get_user(task.uid)
            try:
                charge_memlock(user, p.pages, task.getrlimit(U.RLIMIT_MEMLOCK)[0], page,
                               f"bpf_prog_load({n} insns, {p.pages} pages)")
            except BpfError:
                st.rlimit.free_uid(user)
                raise
            p.memory = MemlockCharge(p.pages, user)
        insns = c.umem.read(a["insns"], 8 * n)
        i = 0
        while i < n:
            code, regs, _off, imm = struct.unpack_from("<BBhi", insns, 8 * i)
            if code == BPF_LD_IMM64:
                if regs >> 4 == BPF_PSEUDO_MAP_FD:
                    f = task.bpf_task.fds.get(imm)
                    if not isinstance(f.obj, BpfMap):
                        raise BpfError(errno.EINVAL, f"bpf_prog_load: fd {imm} is not a map")
                    if f.obj not in p.used_maps:
                        map_inc(f.obj, False)
                        p.used_maps.append(f.obj)
                i += 2
            else:
                i += 1
        # bpf_check_tail_call(): every prog array the program uses must accept it as
        # a tail call target (the first program makes itself the owner)
        p.expected_attach_type = a["expected_attach_type"]
        for m in p.used_maps:
            if m.map_type == U.BPF_MAP_TYPE_PROG_ARRAY and not prog_map_compatible(m, p):
                raise BpfError(errno.EINVAL, f"bpf_prog_load: program incompatible with "
                                             f"prog array {m.id}'s owner {m.owner}")
    except BaseException:
        p.free_all()
        raise
    p.refcnt = 1
    p.id = st.prog_ids.alloc(p)
    st.live_progs[id(p)] = p
    return task.bpf_task.fds.install(BpfFile(p))

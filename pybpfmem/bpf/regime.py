"""The two accounting regimes of BPF memory, per profile.

* 5.10: RLIMIT_MEMLOCK.  Each uid has one `user_struct` whose `locked_vm`
  counts pages charged by every task of that uid (mirrors
  bpf_charge_memlock() / bpf_map_charge_init() / __bpf_prog_charge(),
  kernel/bpf/syscall.c of v5.10).  The limit is the calling task's soft
  RLIMIT_MEMLOCK.
* 5.11 / 6.18: memcg.  The map keeps its creator's memcg (v5.11
  bpf_map_save_memcg(): map->memcg) or objcg (v6.0+: map->objcg) and
  runtime allocations run under set_active_memcg() of it
  (bpf_map_kmalloc_node() and friends, kernel/bpf/syscall.c).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import BpfError
from .uapi import RLIM_INFINITY, U32_MAX

if TYPE_CHECKING:  # pragma: no cover
    pass


@dataclass(frozen=True)
class BpfProfile:
    """What the BPF side of a kernel release does (data, not branches)."""

    name: str
    attr_line: str                 # "5" or "6": CHECK_ATTR last fields / sizeof(bpf_attr)
    rlimit: bool                   # v5.10 RLIMIT_MEMLOCK charging of maps and progs
    map_memcg: str                 # "none" (5.10), "memcg" (5.11), "objcg" (6.0+)
    account: bool                  # BPF allocations carry __GFP_ACCOUNT (5.11+)
    memlock: str                   # fdinfo memlock: "pages" / "footprint" / "usage"
    nopre_alloc: str               # no-prealloc hash element: "kmalloc" (<= 6.0) / "memalloc" (6.1+)
    nopre_gfp: str                 # gfp of runtime element allocations: "atomic" / "nowait"
    default_memlock: int           # default RLIMIT_MEMLOCK soft = hard, bytes
    caps_central: bool             # v6.5+: permission checks centralised in map_create()
    htab_struct_area: bool         # v6.1+: struct bpf_htab from bpf_map_area_alloc
    htab_lock_term: bool           # map_locked per-cpu ints present (and in mem_usage)
    map_extra: bool                # v5.16+ map_extra attr
    prog_alloc_enomem: bool        # bpf_prog_alloc failure -> ENOMEM (else EINVAL)
    lookup_and_delete_hash: bool   # LOOKUP_AND_DELETE_ELEM on the hash family (5.14+)
    percpu_value_limit: bool       # per-cpu value_size > PCPU_MIN_UNIT_SIZE -> E2BIG
    htab_max_2g: bool              # hash max_entries > 2^31 -> E2BIG
    memalloc_prefill_split: bool   # v6.8+: per-cpu bpf_mem_alloc caches prefill 1
    unpriv_at_entry: bool          # unprivileged_bpf_disabled tested at syscall entry (< 6.5)
    batch_retry_eintr: bool        # generic lookup batch retries vanished keys then EINTR (5.10)
    max_map_type: int
    max_cmd: int


PROFILES: dict[str, BpfProfile] = {
    "5.10": BpfProfile(
        name="5.10", attr_line="5", rlimit=True, map_memcg="none", account=False,
        memlock="pages", nopre_alloc="kmalloc", nopre_gfp="atomic",
        default_memlock=64 * 1024, caps_central=False, htab_struct_area=False,
        htab_lock_term=False, map_extra=False, prog_alloc_enomem=True,
        lookup_and_delete_hash=False, percpu_value_limit=False, htab_max_2g=False,
        memalloc_prefill_split=False, unpriv_at_entry=True, batch_retry_eintr=True,
        max_map_type=28, max_cmd=35),
    "5.11": BpfProfile(
        name="5.11", attr_line="5", rlimit=False, map_memcg="memcg", account=True,
        memlock="footprint", nopre_alloc="kmalloc", nopre_gfp="atomic",
        default_memlock=64 * 1024, caps_central=False, htab_struct_area=False,
        htab_lock_term=True, map_extra=False, prog_alloc_enomem=True,
        lookup_and_delete_hash=False, percpu_value_limit=False, htab_max_2g=False,
        memalloc_prefill_split=False, unpriv_at_entry=True, batch_retry_eintr=True,
        max_map_type=29, max_cmd=35),
    "6.18": BpfProfile(
        name="6.18", attr_line="6", rlimit=False, map_memcg="objcg", account=True,
        memlock="usage", nopre_alloc="memalloc", nopre_gfp="nowait",
        default_memlock=8 * 1024 * 1024, caps_central=True, htab_struct_area=True,
        htab_lock_term=True, map_extra=True, prog_alloc_enomem=False,
        lookup_and_delete_hash=True, percpu_value_limit=True, htab_max_2g=True,
        memalloc_prefill_split=True, unpriv_at_entry=False, batch_retry_eintr=False,
        max_map_type=33, max_cmd=36),
}


def bpf_profile_for(system: Any) -> BpfProfile:
    name = getattr(system.profile, "name", str(system.profile))
    if name in PROFILES:
        return PROFILES[name]
    return PROFILES["6.18"] if name.split(".")[0] >= "6" else PROFILES["5.11"]


@dataclass(frozen=True)
class Gfp:
    """gfp values of the running profile (GFP_ATOMIC differs between releases)."""

    KERNEL: int
    USER: int
    ATOMIC: int
    NOWAIT: int
    ACCOUNT: int
    NOWARN: int
    ZERO: int
    NORETRY: int
    RETRY_MAYFAIL: int
    HIGH: int


def gfp_for(system: Any) -> Gfp:
    """Read the gfp set from the mm layer (`system.gfp`, per profile)."""
    g = system.gfp

    def get(name: str) -> int:
        return int(getattr(g, name))

    return Gfp(KERNEL=get("GFP_KERNEL"), USER=get("GFP_USER"), ATOMIC=get("GFP_ATOMIC"),
               NOWAIT=get("GFP_NOWAIT"), ACCOUNT=get("__GFP_ACCOUNT"),
               NOWARN=get("__GFP_NOWARN"), ZERO=get("__GFP_ZERO"),
               NORETRY=get("__GFP_NORETRY"), RETRY_MAYFAIL=get("__GFP_RETRY_MAYFAIL"),
               HIGH=get("__GFP_HIGH"))


# --- v5.10 RLIMIT_MEMLOCK ---------------------------------------------------

@dataclass
class UserStruct:
    """The per-uid `struct user_struct`; only locked_vm (pages) is modelled."""

    uid: int
    locked_vm: int = 0
    refs: int = 0


@dataclass
class MemlockCharge:
    """v5.10 `struct bpf_map_memory`: pages charged to a user."""

    pages: int = 0
    user: UserStruct | None = None


@dataclass
class RlimitState:
    """The System's uid -> user_struct table (the kernel's uidhash)."""

    users: dict[int, UserStruct] = field(default_factory=dict)

    def get_user(self, uid: int) -> UserStruct:
        """get_current_user(): the user_struct of the uid, reference taken."""
        u = self.users.get(uid)
        if u is None:
            u = self.users[uid] = UserStruct(uid)
        u.refs += 1
        return u

    def free_uid(self, user: UserStruct) -> None:
        """free_uid(): drop a reference; the struct stays while it counts pages."""
        user.refs -= 1
        if user.refs <= 0 and user.locked_vm == 0:
            self.users.pop(user.uid, None)


def rlimit_pages(soft: int, page_size: int) -> int:
    """rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT (RLIM_INFINITY shifts to a huge value)."""
    return soft // page_size


def charge_memlock(user: UserStruct, pages: int, soft_limit: int, page_size: int,
                   what: str) -> None:
    """Mirrors bpf_charge_memlock() / __bpf_prog_charge(), kernel/bpf/syscall.c (v5.10):
    add, compare with the caller's soft limit, back out and -EPERM if over."""
    limit = rlimit_pages(soft_limit, page_size)
    user.locked_vm += pages
    if user.locked_vm > limit:
        user.locked_vm -= pages
        lim = "unlimited" if soft_limit == RLIM_INFINITY else f"{soft_limit} bytes ({limit} pages)"
        raise BpfError(errno.EPERM,
                       f"{what}: bpf_charge_memlock: uid {user.uid}'s locked_vm "
                       f"{user.locked_vm} pages + {pages} pages charge exceeds "
                       f"RLIMIT_MEMLOCK {lim} (shared by every task of uid {user.uid})")


def uncharge_memlock(user: UserStruct | None, pages: int) -> None:
    """Mirrors bpf_uncharge_memlock(), kernel/bpf/syscall.c (v5.10)."""
    if user is not None:
        user.locked_vm -= pages


def map_charge_init(state: RlimitState, uid: int, size: int, soft_limit: int,
                    page_size: int, what: str) -> MemlockCharge:
    """Mirrors bpf_map_charge_init(), kernel/bpf/syscall.c (v5.10): round the cost to
    pages, E2BIG for cost >= U32_MAX - PAGE_SIZE, charge the current user."""
    pages = (size + page_size - 1) // page_size
    if size >= U32_MAX - page_size:
        raise BpfError(errno.E2BIG,
                       f"{what}: bpf_map_charge_init: cost {size} bytes >= "
                       f"U32_MAX - PAGE_SIZE ({U32_MAX - page_size})")
    user = state.get_user(uid)
    try:
        charge_memlock(user, pages, soft_limit, page_size, what)
    except BpfError:
        state.free_uid(user)
        raise
    return MemlockCharge(pages, user)


def map_charge_finish(state: RlimitState, mem: MemlockCharge) -> None:
    """Mirrors bpf_map_charge_finish(), kernel/bpf/syscall.c (v5.10)."""
    if mem.user is not None:
        uncharge_memlock(mem.user, mem.pages)
        state.free_uid(mem.user)
        mem.user = None
        mem.pages = 0

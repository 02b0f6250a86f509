"""The two accounting regimes of BPF memory, and the gfp values BPF code uses.

* Switch ``rlimit`` (v5.10): RLIMIT_MEMLOCK.  Each uid has one `user_struct`
  whose `locked_vm` counts pages charged by every task of that uid (mirrors
  bpf_charge_memlock() / bpf_map_charge_init() / __bpf_prog_charge(),
  kernel/bpf/syscall.c of v5.10).  The limit is the calling task's soft
  RLIMIT_MEMLOCK.
* Switches ``account``, ``map_memcg`` (v5.11), ``map_objcg`` (v6.0): memcg.
  The map keeps its creator's memcg (bpf_map_save_memcg(): map->memcg) or
  objcg (map->objcg) and runtime allocations run under set_active_memcg() of
  it (bpf_map_kmalloc_node() and friends, kernel/bpf/syscall.c); see map.py.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from .errors import BpfError
from .uapi import RLIM_INFINITY, U32_MAX


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
    """The gfp values of the System's profile (``system.gfp`` of the memory layer)."""
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

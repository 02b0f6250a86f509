"""Programs attached to cgroups (kernel/bpf/cgroup.c): attach, detach, and the
detach of everything when a cgroup is released."""

from __future__ import annotations

import errno
from typing import Any

from . import uapi as U
from .errors import BpfError
from .fd import obj_get, obj_put
from .local_storage import CgroupStorageMap
from .state import BpfState


def cgroup_attach(st: BpfState, task: Any, cg: Any, attach_type: int, prog: Any,
                  flags: int) -> None:
    """Mirrors cgroup_bpf_attach(): the program is linked (it takes a reference), and
    every cgroup-storage map it uses gets its (cgroup, attach type) instance,
    allocated by ``task`` (bpf_cgroup_storages_alloc(); rlimit: charged to the map's
    user's locked_vm).  A failure leaves nothing allocated.  (bpf_prog_attach() refused
    unknown flags before.)"""
    key = (cg.id, attach_type)
    attached = st.cgroup_progs.setdefault(key, [])
    if prog in attached:
        raise BpfError(errno.EEXIST, "BPF_PROG_ATTACH: the program is already attached "
                                     "to this cgroup and attach type")
    if attached and not flags & U.BPF_F_ALLOW_MULTI:
        raise BpfError(errno.EPERM, "BPF_PROG_ATTACH: a program is already attached and "
                                    "BPF_F_ALLOW_MULTI was not given")
    made = []
    try:
        for m in prog.used_maps:
            if isinstance(m, CgroupStorageMap) and key not in m._storages:
                m.attach_storage(cg, attach_type, task=task)
                made.append(m)
    except BaseException:
        for m in made:
            m.detach_storage(cg, attach_type)
        if not attached:
            del st.cgroup_progs[key]
        raise
    obj_get(prog)
    attached.append(prog)


def cgroup_detach(st: BpfState, cg: Any, attach_type: int, prog: Any) -> None:
    """Mirrors cgroup_bpf_detach(): unlink ``prog`` from (cg, attach_type) and free the
    cgroup-storage instances of its maps that no remaining program there uses
    (bpf_cgroup_storages_free())."""
    key = (cg.id, attach_type)
    attached = st.cgroup_progs[key]
    attached.remove(prog)
    still = {id(m) for p in attached for m in p.used_maps}
    for m in prog.used_maps:
        if isinstance(m, CgroupStorageMap) and id(m) not in still and key in m._storages:
            m.detach_storage(cg, attach_type)
    if not attached:
        del st.cgroup_progs[key]
    obj_put(st, prog)


def cgroup_release(st: BpfState, cg: Any) -> None:
    """cgroup_bpf_release(): every program attached to a released cgroup is detached
    (with its cgroup-storage instances).  The model does it at rmdir."""
    for (cid, atype) in [k for k in st.cgroup_progs if k[0] == cg.id]:
        for prog in list(st.cgroup_progs.get((cid, atype), [])):
            cgroup_detach(st, cg, atype, prog)

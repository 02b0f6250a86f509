"""Objects are bound to their System and cannot be copied (issue 15, items 3 and 4): a
foreign or wrong-kind object is a TypeError / ValueError at the boundary, a non-cgroup fd
where the kernel wants a cgroup is the kernel's errno, and copying or pickling an object
that owns a C handle is refused."""

from __future__ import annotations

import copy
import errno
import gc
import pickle

import pytest

import pybpfmem
from pybpfmem.bpf import (BPF_CGROUP_INET_INGRESS, BPF_F_NO_PREALLOC, BPF_MAP_TYPE_CGRP_STORAGE,
                          BPF_MAP_TYPE_HASH, BPF_PROG_TYPE_CGROUP_SKB)


@pytest.fixture
def system():
    return pybpfmem.System(nr_cpus=2, profile="6.18")


def _handles(system):
    cg = system.root.mkdir("h")
    task = system.spawn(cgroup=cg)
    fd = task.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 8, 16)
    return {"System": system, "MemCgroup": cg, "Task": task,
            "KmemCache": system.kmem_cache_create("c", 64),
            "BpfMap": system.bpf_map_by_id(int(task.fdinfo(fd)["map_id"])),
            "BpfProg": task.fd_object(task.bpf_prog_load(BPF_PROG_TYPE_CGROUP_SKB, 2)),
            "Socket": task.fd_object(task.create_socket()),
            "NetDevice": system.create_netdev("eth0")}


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_handle_owners_refuse_copies(system, how):
    """Issue 15 repro 3: copy.copy(System) made a second owner of the C system whose
    collection freed it under the original; every handle-owning object refuses."""
    for name, obj in _handles(system).items():
        with pytest.raises(TypeError, match="cannot be (copied|pickled)"):
            if how == "copy":
                copy.copy(obj)
            elif how == "deepcopy":
                copy.deepcopy(obj)
            else:
                pickle.dumps(obj)
    gc.collect()
    assert not system.closed
    system.root.mkdir("still-works")
    system.check()


def test_open_cgroup_takes_only_this_systems_cgroups(system):
    """Issue 15 repro 4: open_cgroup(None / "x" / 3 / another System's cgroup) made a
    cgroup fd of a non-cgroup."""
    task = system.spawn()
    fds = dict(task.bpf_task.fds.files)          # the standard fds 0-2
    other = pybpfmem.System(nr_cpus=2, profile="6.18")
    for bad in (None, "x", 3):
        with pytest.raises(TypeError, match="MemCgroup"):
            task.open_cgroup(bad)
    with pytest.raises(ValueError, match="another System"):
        task.open_cgroup(other.root.mkdir("foreign"))
    assert task.bpf_task.fds.files == fds        # no fd was made


def test_dup_fd_to_takes_only_this_systems_tasks(system):
    """Issue 15 repro 4: an fd passed to another System's task pinned the map there; the
    map and its charge stayed forever in the first System."""
    cg = system.root.mkdir("a")
    task = system.spawn(cgroup=cg)
    fd = task.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 8, 16)
    other = pybpfmem.System(nr_cpus=2, profile="6.18")
    with pytest.raises(ValueError, match="another System"):
        task.dup_fd_to(other.spawn(), fd)
    with pytest.raises(TypeError, match="Task"):
        task.dup_fd_to("task", fd)
    task.close(fd)
    assert system.bpf_maps() == [] and other.bpf_maps() == []
    system.drain_all_stock()
    # what is left is the task's kernel stack: THREAD_SIZE = 16 KiB, 4 pages
    assert cg.read("memory.current") == "16384\n"


def test_prog_attach_detach_need_a_cgroup_fd(system):
    """cgroup_bpf_prog_attach() / _detach(): cgroup_get_from_fd() of a file that is not a
    cgroup directory is EBADF (css_tryget_online_from_dir(), kernel/cgroup/cgroup.c)."""
    task = system.spawn()
    prog = task.bpf_prog_load(BPF_PROG_TYPE_CGROUP_SKB, 2)
    sock = task.create_socket()
    for call in (lambda: task.bpf_prog_attach(prog, sock, BPF_CGROUP_INET_INGRESS),
                 lambda: task.bpf_prog_detach(sock, BPF_CGROUP_INET_INGRESS, prog)):
        with pytest.raises(OSError) as e:
            call()
        assert e.value.errno == errno.EBADF


def test_cgrp_storage_needs_a_cgroup(system):
    """bpf_cgrp_storage_update_elem(): cgroup_v1v2_get_from_fd() of a non-cgroup fd is
    EBADF (kernel/bpf/bpf_cgrp_storage.c); the helper takes this System's cgroups only."""
    task = system.spawn()
    fd = task.bpf_map_create(BPF_MAP_TYPE_CGRP_STORAGE, 4, 8, 0, BPF_F_NO_PREALLOC,
                              btf_fd=3, btf_key_type_id=1, btf_value_type_id=2)
    map_id = int(task.fdinfo(fd)["map_id"])
    sock = task.create_socket()
    with pytest.raises(OSError) as e:
        task.bpf_map_update_elem(fd, sock.to_bytes(4, "little"), bytes(8))
    assert e.value.errno == errno.EBADF
    other = pybpfmem.System(nr_cpus=2, profile="6.18")
    with task.running(cpu=0):
        with pytest.raises(TypeError, match="MemCgroup"):
            system.helper_cgrp_storage_get(map_id, "cg", bytes(8), 1)
        with pytest.raises(ValueError, match="another System"):
            system.helper_cgrp_storage_get(map_id, other.root, bytes(8), 1)


def test_foreign_objects_at_the_memory_boundary(system):
    other = pybpfmem.System(nr_cpus=2, profile="6.18")
    task = system.spawn()
    foreign = other.root.mkdir("f")
    with pytest.raises(ValueError, match="another System"):
        system.spawn(cgroup=foreign)
    with pytest.raises(ValueError, match="another System"):
        task.migrate(foreign)
    with pytest.raises(ValueError, match="another System"):
        system.active_memcg(foreign)
    with pytest.raises(TypeError):
        system.drain_all_stock("root")

"""CPUMAP (kernel/bpf/cpumap.c).

Creation: struct bpf_cpu_map (kzalloc GFP_USER [| __GFP_ACCOUNT v5.11]; area
alloc v6.1+) and a pointer array of max_entries * 8 (bpf_map_area_alloc).  An
update with qsize != 0 allocates an entry (__cpu_map_entry_alloc(), GFP_KERNEL |
__GFP_NOWARN: through the map's memcg from v5.11, plain in v5.10): struct
bpf_cpu_map_entry, per-cpu bulk queues, the struct ptr_ring and its slot array
(ptr_ring_init(): kvmalloc_array without __GFP_ACCOUNT, unaccounted).  The
kthread each entry starts is not modelled (simplification).  Entries are freed
at once when replaced (the kernel defers to an RCU work item).
"""

from __future__ import annotations

import errno
import struct
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .kobjects import current_task, fd_object
from .map import NR_CPUS, BpfMap, register_map

QSIZE_MAX = 16384


@register_map
class CpuMap(BpfMap):
    """BPF_MAP_TYPE_CPUMAP (struct bpf_cpu_map)."""

    map_types: ClassVar[tuple[int, ...]] = (uapi.BPF_MAP_TYPE_CPUMAP,)

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """The checks of cpu_map_alloc()."""
        require_cap(ctx.task, "bpf", "CPUMAP")
        if (attr.max_entries == 0 or attr.key_size != 4 or attr.value_size not in (4, 8)
                or attr.map_flags & ~uapi.BPF_F_NUMA_NODE):
            raise BpfError(errno.EINVAL, f"CPUMAP: need max_entries > 0 (got {attr.max_entries}), "
                           f"key_size 4 (got {attr.key_size}), value_size 4 or 8 (got "
                           f"{attr.value_size}), flags within BPF_F_NUMA_NODE (got {attr.map_flags:#x})")
        if attr.max_entries > NR_CPUS:
            raise BpfError(errno.E2BIG, f"CPUMAP: max_entries {attr.max_entries} > NR_CPUS {NR_CPUS}")

    def legacy_cost(self) -> int:
        """v5.10 cpu_map_alloc(): the pointer array only."""
        return self.attr.max_entries * 8

    def alloc(self) -> None:
        """Mirrors cpu_map_alloc()."""
        self._entries: dict[int, tuple[list[tuple[str, int]], bytes]] = {}
        self.struct_alloc(self.sizes.bpf_cpu_map)
        self.area_alloc(self.attr.max_entries * 8)

    def free(self) -> None:
        """Mirrors cpu_map_free()."""
        for cpu in list(self._entries):
            self._drop(cpu)
        self.free_all()

    def mem_usage(self) -> int:
        """Mirrors cpu_map_mem_usage(): entries are not counted."""
        return self.sizes.bpf_cpu_map + self.attr.max_entries * 8

    def _idx(self, key: bytes | None) -> int:
        if key is None or len(key) != 4:
            raise BpfError(errno.EINVAL, "CPUMAP: key must be 4 bytes")
        return struct.unpack("<I", key)[0]

    def _drop(self, cpu: int) -> None:
        """__cpu_map_entry_free(): ring array, ring, bulk queues, entry."""
        self._free_entry(self._entries.pop(cpu)[0])

    def _free_entry(self, allocs: list[tuple[str, int]]) -> None:
        for kind, addr in reversed(allocs):
            if kind == "p":
                self.free_percpu(addr)
            elif kind == "ring":
                self.system.kvfree(addr)
            else:
                self.kfree(addr)

    def _entry_alloc(self, qsize: int) -> list[tuple[str, int]]:
        """Mirrors __cpu_map_entry_alloc(); any failure -> -ENOMEM, nothing kept."""
        g = self.gfp
        gfp = g.KERNEL | g.NOWARN
        done: list[tuple[str, int]] = []
        try:
            done.append(("k", self.map_kmalloc(self.sizes.bpf_cpu_map_entry, gfp | g.ZERO)))
            done.append(("p", self.map_alloc_percpu(self.sizes.xdp_bulk_queue, 8, gfp)))
            done.append(("k", self.map_kmalloc(self.sizes.ptr_ring, gfp)))
            # ptr_ring_init(): kvmalloc_array(qsize, 8, GFP_KERNEL | __GFP_NOWARN), no
            # __GFP_ACCOUNT and outside the map-memcg helper: not accounted
            done.append(("ring", self.system.kvmalloc(qsize * 8, gfp)))
        except OSError as exc:
            self._free_entry(done)
            raise BpfError(errno.ENOMEM, f"CPUMAP: entry allocation failed: {exc.strerror or exc}") from None
        return done

    def lookup_elem(self, key: bytes | None) -> bytes:
        """cpu_map_lookup_elem(): the stored bpf_cpumap_val."""
        cpu = self._idx(key)
        e = self._entries.get(cpu)
        if e is None:
            raise BpfError(errno.ENOENT, f"CPUMAP: no entry for cpu {cpu}")
        return e[1]

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Mirrors cpu_map_update_elem()."""
        cpu = self._idx(key)
        qsize = int.from_bytes(value[:4], "little")
        if flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"CPUMAP: flags {flags:#x} > BPF_EXIST")
        if cpu >= self.attr.max_entries:
            raise BpfError(errno.E2BIG, f"CPUMAP: key {cpu} >= max_entries {self.attr.max_entries}")
        if flags == uapi.BPF_NOEXIST:
            raise BpfError(errno.EEXIST, "CPUMAP: BPF_NOEXIST (every slot exists)")
        if qsize > QSIZE_MAX:
            raise BpfError(errno.EOVERFLOW, f"CPUMAP: qsize {qsize} > {QSIZE_MAX}")
        if cpu >= self.system.nr_cpus:
            raise BpfError(errno.ENODEV, f"CPUMAP: cpu {cpu} is not possible "
                           f"(nr_cpus {self.system.nr_cpus})")
        if qsize == 0:
            if cpu in self._entries:
                self._drop(cpu)
            return
        allocs = self._entry_alloc(qsize)
        prog_fd = int.from_bytes(value[4:8], "little", signed=True) if len(value) >= 8 else 0
        prog_id = 0
        if prog_fd > 0:
            prog_id = self._entry_prog(prog_fd)
            if prog_id is None:
                # __cpu_map_load_bpf_program() failed: __cpu_map_entry_alloc() frees the
                # entry and returns NULL, which the update reports as -ENOMEM
                self._free_entry(allocs)
                raise BpfError(errno.ENOMEM, f"CPUMAP: fd {prog_fd} is no XDP program for "
                                             f"cpumap (the entry allocation fails)")
        if cpu in self._entries:
            self._drop(cpu)                  # __cpu_map_entry_replace()
        # the entry's bpf_cpumap_val: qsize and the program's id (not the fd given)
        val = struct.pack("<I", qsize) + (struct.pack("<I", prog_id)
                                          if self.attr.value_size >= 8 else b"")
        self._entries[cpu] = (allocs, val)

    def _entry_prog(self, fd: int) -> int | None:
        """__cpu_map_load_bpf_program(): the id of the XDP program at ``fd`` with expected
        attach type BPF_XDP_CPUMAP, None when there is none (simplified: the program's
        kthread-side run is not modelled, nor a reference held)."""
        try:
            prog = fd_object(current_task(self.system), fd)
        except OSError:
            return None
        if (getattr(prog, "prog_type", None) != uapi.BPF_PROG_TYPE_XDP
                or getattr(prog, "expected_attach_type", None) != uapi.BPF_XDP_CPUMAP):
            return None
        return int(prog.id)

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors cpu_map_delete_elem()."""
        cpu = self._idx(key)
        if cpu >= self.attr.max_entries:
            raise BpfError(errno.EINVAL, f"CPUMAP: key {cpu} >= max_entries")
        if cpu in self._entries:
            self._drop(cpu)

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors cpu_map_get_next_key()."""
        if key is None or self._idx(key) >= self.attr.max_entries:
            return struct.pack("<I", 0)
        k = self._idx(key)
        if k == self.attr.max_entries - 1:
            raise BpfError(errno.ENOENT, "CPUMAP: last index")
        return struct.pack("<I", k + 1)

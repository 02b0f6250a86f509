"""QUEUE and STACK maps (kernel/bpf/queue_stack_maps.c).

One area of sizeof(struct bpf_queue_stack) + (max_entries + 1) * value_size is
allocated at creation (bpf_map_area_alloc, the creator's memcg); push/pop/peek
never allocate.  The ring has one spare slot, so "full" is head + 1 == tail.
"""

from __future__ import annotations

import errno
from typing import ClassVar

from . import uapi
from .caps import require_cap
from .errors import BpfError
from .map import KMALLOC_MAX_SIZE, BpfMap, flags_access_ok, register_map

_CREATE_FLAG_MASK = (uapi.BPF_F_NUMA_NODE | uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
                     | uapi.BPF_F_RDONLY_PROG | uapi.BPF_F_WRONLY_PROG)


class QueueStackMap(BpfMap):
    """Shared part of QUEUE and STACK (mirrors struct bpf_queue_stack)."""

    map_types: ClassVar[tuple[int, ...]] = ()
    null_key: ClassVar[bool] = True
    kind: ClassVar[str] = "queue/stack"

    @classmethod
    def alloc_check(cls, attr, ctx) -> None:
        """Mirrors queue_stack_map_alloc_check()."""
        require_cap(ctx.task, "bpf", cls.kind)
        if (attr.max_entries == 0 or attr.key_size != 0 or attr.value_size == 0
                or attr.map_flags & ~_CREATE_FLAG_MASK
                or not flags_access_ok(attr.map_flags)):
            raise BpfError(errno.EINVAL,
                           f"{cls.kind}: queue_stack_map_alloc_check: need max_entries > 0 "
                           f"(got {attr.max_entries}), key_size 0 (got {attr.key_size}), "
                           f"value_size > 0 (got {attr.value_size}), flags within "
                           f"{_CREATE_FLAG_MASK:#x} (got {attr.map_flags:#x})")
        if attr.value_size > KMALLOC_MAX_SIZE:
            raise BpfError(errno.E2BIG, f"{cls.kind}: value_size {attr.value_size} > "
                           f"KMALLOC_MAX_SIZE {KMALLOC_MAX_SIZE}")

    def _area_size(self) -> int:
        return (self.sizes.bpf_queue_stack
                + (self.attr.max_entries + 1) * self.attr.value_size)

    def legacy_cost(self) -> int:
        """v5.10 cost = the allocation (queue_stack_map_alloc)."""
        return self._area_size()

    def alloc(self) -> None:
        """Mirrors queue_stack_map_alloc(): one bpf_map_area_alloc."""
        self._area = self.area_alloc(self._area_size())
        self._size = self.attr.max_entries + 1
        # slots stored sparsely so host memory does not grow with max_entries
        self._slots: dict[int, bytes] = {}
        self._head = 0
        self._tail = 0

    def free(self) -> None:
        """Mirrors queue_stack_map_free()."""
        if getattr(self, "_area", None) is not None:
            self.area_free(self._area)
            self._area = None

    def mem_usage(self) -> int:
        """Mirrors queue_stack_map_mem_usage()."""
        return self._area_size()

    # -- ring state (queue_stack_map_is_empty / _is_full) --
    def _empty(self) -> bool:
        return self._head == self._tail

    def _full(self) -> bool:
        head = self._head + 1
        if head >= self._size:
            head = 0
        return head == self._tail

    def __len__(self) -> int:
        return (self._head - self._tail) % self._size

    # -- program and syscall side --
    def push_elem(self, value: bytes, flags: int = 0) -> None:
        """Mirrors queue_stack_map_push_elem(): BPF_EXIST overwrites the oldest when full."""
        if flags & uapi.BPF_NOEXIST or flags > uapi.BPF_EXIST:
            raise BpfError(errno.EINVAL, f"{self.kind} push: flags {flags:#x} not BPF_ANY/BPF_EXIST")
        if self._full():
            if not flags & uapi.BPF_EXIST:
                raise BpfError(errno.E2BIG, f"{self.kind} push: map full "
                               f"({self.attr.max_entries} of {self.attr.max_entries} elements)")
            self._slots.pop(self._tail, None)
            self._tail += 1
            if self._tail >= self._size:
                self._tail = 0
        self._slots[self._head] = bytes(value)
        self._head += 1
        if self._head >= self._size:
            self._head = 0

    def _get(self, delete: bool) -> bytes:
        raise NotImplementedError

    def peek_elem(self) -> bytes:
        return self._get(False)

    def pop_elem(self) -> bytes:
        return self._get(True)

    # helper names the system's helper_* wiring calls
    helper_push_elem = push_elem
    helper_pop_elem = pop_elem
    helper_peek_elem = peek_elem

    def _no_key(self, key: bytes | None, op: str) -> None:
        if key is not None:
            raise BpfError(errno.EINVAL, f"{self.kind} {op}: key must be NULL (key_size 0)")

    def lookup_elem(self, key: bytes | None) -> bytes:
        """Syscall lookup with a NULL key is a peek (bpf_map_copy_value())."""
        self._no_key(key, "lookup")
        return self.peek_elem()

    def update_elem(self, key: bytes | None, value: bytes, flags: int) -> None:
        """Syscall update with a NULL key is a push (bpf_map_update_value())."""
        self._no_key(key, "update")
        self.push_elem(value, flags)

    def helper_update_elem(self, key: bytes | None, value: bytes, flags: int = 0) -> None:
        """bpf_map_update_elem() from a program: queue_stack_map_update_elem() -> -EINVAL."""
        raise BpfError(errno.EINVAL, f"{self.kind}: map_update_elem is not supported, use push")

    def delete_elem(self, key: bytes | None) -> None:
        """Mirrors queue_stack_map_delete_elem()."""
        raise BpfError(errno.EINVAL, f"{self.kind}: delete is not supported (queue_stack_map_delete_elem)")

    def get_next_key(self, key: bytes | None) -> bytes:
        """Mirrors queue_stack_map_get_next_key()."""
        raise BpfError(errno.EINVAL, f"{self.kind}: get_next_key is not supported")

    def lookup_and_delete_elem(self, key: bytes | None) -> bytes:
        """Syscall LOOKUP_AND_DELETE on a queue/stack is a pop."""
        self._no_key(key, "lookup_and_delete")
        return self.pop_elem()


@register_map
class QueueMap(QueueStackMap):
    """BPF_MAP_TYPE_QUEUE: FIFO (queue_map_ops)."""
    map_types = (uapi.BPF_MAP_TYPE_QUEUE,)
    kind = "QUEUE"

    def _get(self, delete: bool) -> bytes:
        """Mirrors __queue_map_get(): oldest element at tail."""
        if self._empty():
            raise BpfError(errno.ENOENT, "QUEUE: empty")
        val = self._slots[self._tail]
        if delete:
            del self._slots[self._tail]
            self._tail += 1
            if self._tail >= self._size:
                self._tail = 0
        return val


@register_map
class StackMap(QueueStackMap):
    """BPF_MAP_TYPE_STACK: LIFO (stack_map_ops)."""
    map_types = (uapi.BPF_MAP_TYPE_STACK,)
    kind = "STACK"

    def _get(self, delete: bool) -> bytes:
        """Mirrors __stack_map_get(): newest element just below head."""
        if self._empty():
            raise BpfError(errno.ENOENT, "STACK: empty")
        index = self._head - 1
        if index < 0:
            index = self._size - 1
        val = self._slots[index]
        if delete:
            del self._slots[index]
            self._head = index
        return val

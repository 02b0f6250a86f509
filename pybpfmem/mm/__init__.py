"""The memory layer: a simulated machine's memory cgroups, tasks, contexts and
kernel allocators on top of the C core (csrc/, through pybpfmem._ffi).

It imports nothing from the layers above.  Its public API (the ``System``,
``MemCgroup``, ``Task`` methods and properties, ``System.hooks``) is what the
BPF layer builds on; ``pybpfmem/bpf/services.py`` lists the part it uses.
"""

from .cgroup import MemCgroup, page_counter_memparse
from .hooks import Hooks
from .system import OP_DTYPE, KmemCache, System, parse_size
from .task import Task

__all__ = ["System", "MemCgroup", "Task", "KmemCache", "Hooks", "OP_DTYPE", "page_counter_memparse",
           "parse_size"]

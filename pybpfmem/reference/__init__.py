"""An independent pure-Python model of the memcg accounting core.

Written from the kernel's rules (mm/memcontrol.c, mm/page_counter.c, mm/slab.h,
mm/percpu-internal.h), not from the C core: it is the oracle of the differential tests and
the performance baseline of the benchmarks.  ``System`` has the public API of
``pybpfmem.System`` for the mm layer.
"""

from .system import PROFILES, MemCgroup, RefProfile, System, Task, memparse

__all__ = ["PROFILES", "MemCgroup", "RefProfile", "System", "Task", "memparse"]

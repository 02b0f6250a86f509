"""Lifecycle hooks of a memory System: what the layers above run when a task
exits or a cgroup is removed.

The memory layer knows nothing of those layers; they register callbacks here
(``system.hooks.on_task_exit(fn)``), which the memory layer runs at the
matching point of the kernel's path:

- ``task_exit(task)``: do_exit(), after the task stopped running and before it
  drops its cgroup reference (exit_files() and free_task()'s frees run there);
- ``cgroup_offline(cgroup)``: cgroup_rmdir(), after mem_cgroup_css_offline()
  (the model frees what the kernel frees on the cgroup's release at this
  point: a simplification, the cgroup may still be dying).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .cgroup import MemCgroup
    from .task import Task


class Hooks:
    """The registered callbacks of one System, run in registration order."""

    __slots__ = ("task_exit", "cgroup_offline")

    def __init__(self) -> None:
        self.task_exit: list[Callable[[Task], None]] = []
        self.cgroup_offline: list[Callable[[MemCgroup], None]] = []

    def on_task_exit(self, fn: Callable[[Task], None]) -> None:
        self.task_exit.append(fn)

    def on_cgroup_offline(self, fn: Callable[[MemCgroup], None]) -> None:
        self.cgroup_offline.append(fn)

    def run_task_exit(self, task: Task) -> None:
        for fn in self.task_exit:
            fn(task)

    def run_cgroup_offline(self, cgroup: MemCgroup) -> None:
        for fn in self.cgroup_offline:
            fn(cgroup)

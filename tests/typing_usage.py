"""Not a test module: a user's script of the public API, type-checked by `make lint`
(mypy --strict) as a user's own mypy would check it with the py.typed package.  It
runs too (python tests/typing_usage.py), so it stays a real use of the API."""

from __future__ import annotations

import pybpfmem
from pybpfmem import GFP_KERNEL_ACCOUNT, BpfError
from pybpfmem.bpf import BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH, BPF_NOEXIST


def main() -> int:
    system = pybpfmem.System(nr_cpus=2, profile="6.18", cgroup="v2")
    cg: pybpfmem.MemCgroup = system.root.mkdir("agent")
    cg.write("memory.max", "64M")
    task = system.spawn(cgroup=cg)
    with task.running(cpu=0):
        addr: int = system.kmalloc(100, GFP_KERNEL_ACCOUNT)
        fd: int = task.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 64, 1000, BPF_F_NO_PREALLOC, map_name="flows")
        task.bpf_map_update_elem(fd, (1).to_bytes(4, "little"), bytes(64))
        try:
            task.bpf_map_update_elem(fd, (1).to_bytes(4, "little"), bytes(64), BPF_NOEXIST)
        except BpfError as exc:
            assert exc.errno == 17
        system.kfree(addr)
    memlock: str = task.fdinfo(fd)["memlock"]
    maps = system.bpf_maps()
    stat: dict[str, int] = cg.stat()
    current: str = cg.read("memory.current")
    print(pybpfmem.__version__, memlock, maps[0]["memcg"], stat["slab_unreclaimable"], current.strip(),
          pybpfmem.BPF_MAP_TYPE_ARRAY, system.locked_vm(0))
    task.close(fd)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A threaded stress test of the public API (issue 15, item 5): several Python threads,
each driving its own cpu with its own task and cgroup, make random valid calls at once --
charges and uncharges, kmalloc/kfree, vmalloc, percpu and kmem cache objects, updates
and deletes in a shared hash map from their task and from interrupt context, mkdir and
rmdir, spawn and exit, stock drains, frees with no context (a kworker on cpu 0, which
another thread drives), and reads of every file of every cgroup.  Every so often all
threads meet and ``check()`` runs; at the end every thread gives back what it took,
and every counter must be zero.

Scale: PYBPFMEM_STRESS_OPS operations per run (default 20,000; ``make test-stress``,
which CI runs, 100,000, also against the ThreadSanitizer build of the core)."""

from __future__ import annotations

import errno
import os
import random
import threading

import pytest

import pybpfmem
from pybpfmem import GFP_KERNEL, GFP_KERNEL_ACCOUNT, __GFP_NORETRY
from pybpfmem.bpf import BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH
from pybpfmem.profiles import get_profile

OPS = int(os.environ.get("PYBPFMEM_STRESS_OPS", "20000"))
NTHREADS = 4
CHECK_EVERY = 500        # operations of each thread between two meetings (check())
GFP_NORETRY = GFP_KERNEL | __GFP_NORETRY     # (a name without __: used inside a class)


class Worker:
    """One thread: its cpu, task, cgroup and what it holds."""

    def __init__(self, system, i, parent, map_fd, owner, seed):
        self.system, self.cpu = system, i
        self.rng = random.Random(seed)
        self.cg = parent.mkdir(f"t{i}")
        self.task = system.spawn(cgroup=self.cg)
        self.fd = owner.dup_fd_to(self.task, map_fd)
        self.map_id = int(owner.fdinfo(map_fd)["map_id"])
        self.cache = system.kmem_cache_create(f"stress{i}", 200, pybpfmem.SLAB_ACCOUNT)
        self.objs: list[tuple[str, int]] = []     # (kind, address)
        self.pages = 0                            # try_charge ledger
        self.keys: set[int] = set()
        self.ops = self.enomem = 0
        self.error: BaseException | None = None

    def key(self) -> int:
        return self.cpu * 1000 + self.rng.randrange(200)

    def op(self) -> None:
        s, r = self.system, self.rng
        n = r.randrange(20)
        if n < 4:
            size = r.choice((8, 64, 100, 512, 3000, 9000))
            self.objs.append(("k", s.kmalloc(size, GFP_KERNEL_ACCOUNT)))
        elif n == 4:
            self.objs.append(("v", s.vmalloc(r.randrange(1, 3 * 4096), GFP_KERNEL_ACCOUNT)))
        elif n == 5:
            self.objs.append(("p", s.alloc_percpu(r.choice((4, 16, 64)), 8, GFP_KERNEL_ACCOUNT)))
        elif n == 6:
            self.objs.append(("c", self.cache.alloc(GFP_KERNEL)))
        elif n < 9 and self.objs:
            self.free(self.objs.pop(r.randrange(len(self.objs))))
        elif n == 9:
            nr = r.randrange(1, 40)
            self.cg.try_charge(nr, GFP_NORETRY, self.cpu)
            self.pages += nr
        elif n == 10 and self.pages:
            nr = r.randrange(1, self.pages + 1)
            self.cg.uncharge(nr, self.cpu)
            self.pages -= nr
        elif n == 11:
            k = self.key()
            self.task.bpf_map_update_elem(self.fd, k.to_bytes(4, "little"), bytes(32))
            self.keys.add(k)
        elif n == 12 and self.keys:
            k = r.choice(sorted(self.keys))
            self.task.bpf_map_delete_elem(self.fd, k.to_bytes(4, "little"))
            self.keys.discard(k)
        elif n == 13:
            k = self.key()
            with s.in_interrupt(self.cpu):       # an interrupt on this cpu, over the task
                rc = s.helper_map_update_elem(self.map_id, k.to_bytes(4, "little"), bytes(32))
            if rc == 0:
                self.keys.add(k)
            elif rc != -errno.ENOMEM:
                raise OSError(-rc, "helper_map_update_elem")
        elif n == 14:
            child = self.cg.mkdir("scratch")    # its structures may be refused (ENOMEM)
            try:
                if r.random() < 0.5:
                    t = s.spawn(cgroup=child)    # and so may the task's kernel stack
                    t.exit()
            finally:
                child.rmdir()
        elif n == 15:
            if r.random() < 0.5:
                s.drain_local_stock(self.cpu)
            else:
                s.drain_all_stock()
        elif n < 18:
            cgs = [s.root] + [c for c in s.root.children] + [c for p in s.root.children
                                                              for c in p.children]
            cg = r.choice(cgs)
            for name in cg.files():
                if name != "memory.force_empty":
                    try:
                        cg.read(name)
                    except OSError as e:   # a cgroup another thread removed meanwhile
                        if e.errno != errno.ENOENT:
                            raise
            cg.stat()
            s.stock_info(r.randrange(s.nr_cpus))
        elif self.keys:
            k = r.choice(sorted(self.keys))
            assert self.task.bpf_map_lookup_elem(self.fd, k.to_bytes(4, "little")) == bytes(32)

    def free(self, obj: tuple[str, int]) -> None:
        kind, addr = obj
        s = self.system
        {"k": s.kfree, "v": s.vfree, "p": s.free_percpu, "c": self.cache.free}[kind](addr)

    def run(self, nops: int, barrier: threading.Barrier) -> None:
        try:
            done = 0
            while done < nops:
                with self.task.running(cpu=self.cpu):
                    for _ in range(min(CHECK_EVERY, nops - done)):
                        try:
                            self.op()
                        except OSError as e:
                            if e.errno != errno.ENOMEM:
                                raise
                            self.enomem += 1
                        done += 1
                    # frees outside any context: a kworker on cpu 0, driven by thread 0
                for _ in range(min(5, len(self.objs))):
                    self.free(self.objs.pop())
                if barrier.wait() == 0:
                    self.system.check()          # all threads between two operations
                barrier.wait()
            self.ops = done
            with self.task.running(cpu=self.cpu):
                while self.objs:
                    self.free(self.objs.pop())
                if self.pages:
                    self.cg.uncharge(self.pages, self.cpu)
                    self.pages = 0
                for k in sorted(self.keys):
                    self.task.bpf_map_delete_elem(self.fd, k.to_bytes(4, "little"))
                self.keys.clear()
        except BaseException as exc:
            self.error = exc
            barrier.abort()


# the memcg-accounting profiles (5.10 charges maps to RLIMIT_MEMLOCK, not a memcg)
@pytest.mark.parametrize("profile", pybpfmem.PROFILE_NAMES[1:])
def test_threads_on_their_cpus_keep_every_invariant(profile):
    # no OOM kills: a charge over the limit fails (ENOMEM) and the worker goes on
    system = pybpfmem.System(nr_cpus=NTHREADS, profile=profile, oom_kill=False)
    parent = system.root.mkdir("stress")
    # tight: charges fail, reclaim and drain_all_stock run from the failure path
    parent.write("memory.max", f"{NTHREADS * 4}M")
    owner = system.spawn(cgroup=parent)
    with owner.running(cpu=0):
        map_fd = owner.bpf_map_create(BPF_MAP_TYPE_HASH, 4, 32, NTHREADS * 1000,
                                      BPF_F_NO_PREALLOC)
    workers = [Worker(system, i, parent, map_fd, owner, seed=1000 * i + 7)
               for i in range(NTHREADS)]
    barrier = threading.Barrier(NTHREADS)
    threads = [threading.Thread(target=w.run, args=(OPS // NTHREADS, barrier)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [w.error for w in workers if w.error is not None]
    errors.sort(key=lambda exc: isinstance(exc, threading.BrokenBarrierError))
    if errors:
        raise errors[0]                 # the first failure, not the barrier it broke
    assert sum(w.ops for w in workers) >= OPS - NTHREADS
    print(f"{profile}: {NTHREADS} threads, {sum(w.ops for w in workers)} operations, "
          f"{sum(w.enomem for w in workers)} ENOMEM, {OPS // NTHREADS // CHECK_EVERY} checks")

    # everything given back: after the drains each cgroup holds at most the sub-page
    # remainder of its objcg (nr_charged_bytes: frees ran on other cpus than charges),
    # and the kernel stack of each live task in it (THREAD_SIZE = 16 KiB)
    system.drain_all_stock()
    system.check()
    with pytest.raises(OSError):
        owner.bpf_map_get_next_key(map_fd)              # the map is empty
    def given_back(cg):
        st = cg.stat()
        stacks = 16384 * sum(1 for t in system.tasks if t.cgroup is cg)
        assert st["kernel_stack"] == stacks, cg
        assert stacks <= int(cg.read("memory.current")) <= 4096 + stacks, cg
        assert (st["slab_unreclaimable"], st["percpu"], st.get("vmalloc", 0)) == (0, 0, 0), cg

    for w in workers:
        given_back(w.cg)

    # teardown: every fd, task and cgroup goes; every counter is zero
    for w in workers:
        w.task.close(w.fd)
        w.task.exit()
        w.cg.rmdir()
    owner.close(map_fd)
    owner.exit()
    system.run_deferred()
    system.drain_all_stock()
    given_back(parent)          # the map (charged here) is gone too
    parent.rmdir()
    system.drain_all_stock()
    system.check()
    assert system.bpf_maps() == []
    assert system.dying_cgroups == 0
    st = system.root.stat()
    assert (st["slab_unreclaimable"], st["percpu"], st.get("vmalloc", 0)) == (0, 0, 0)
    if not get_profile(profile).switch("kmem_uncharge_skips_root"):
        # before v6.15 the kmem pages uncharged through a reparented objcg leave root's
        # counter too (refill_stock(root), then the drain); 6.18 leaves them on it, as
        # the kernel does (kmem_uncharge_skips_root)
        assert system.root.info()["memory"]["usage"] == 0
    system.close()

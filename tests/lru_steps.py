"""Step scripts for LRU hash maps, run on the model and on the live kernel.

A script is a list of JSON-able steps on one map (4-byte keys, 8-byte values):

    ["create", "LRU_HASH", max_entries, map_flags]   first step; observes max_entries
    ["cpu", n]                      later steps run on cpu n (the live child re-pins itself)
    ["update", key, flags]          BPF_MAP_UPDATE_ELEM (syscall)
    ["update_batch", [keys], flags] BPF_MAP_UPDATE_BATCH
    ["lookup", [keys]]              a program's bpf_map_lookup_elem() of each key in turn:
                                    it marks an LRU element referenced
    ["sys_lookup", key]             BPF_MAP_LOOKUP_ELEM: marks nothing
    ["delete", key]                 BPF_MAP_DELETE_ELEM
    ["delete_batch", [keys]]        BPF_MAP_DELETE_BATCH
    ["lookup_and_delete", key]      BPF_MAP_LOOKUP_AND_DELETE_ELEM

Each step observes its errno (0 on success) and every element left, as sorted
(key, value hex) pairs read through get_next_key + BPF_MAP_LOOKUP_ELEM, which
touch no LRU state.  Values tell updates apart: key, step and cpu are in them.
"""
from __future__ import annotations

import json
import os
import random
from typing import Any

import pybpfmem
from pybpfmem.bpf import uapi

Step = list[Any]
PERCPU = ("LRU_PERCPU_HASH",)


def value(map_type: str, key: int, step: int, ncpus: int) -> bytes:
    """The value an update at ``step`` writes: per cpu for per-cpu maps."""
    n = ncpus if map_type in PERCPU else 1
    return b"".join(((key << 24) | (step << 4) | c).to_bytes(8, "little") for c in range(n))


def _obs(err: int, elems: list[tuple[bytes, bytes]], **extra: Any) -> dict[str, Any]:
    got = sorted([int.from_bytes(k, "little"), v.hex()] for k, v in elems)
    return {"err": err, "elems": got, **extra}


def keys_of(obs: dict[str, Any]) -> list[int]:
    return [k for k, _ in obs["elems"]]


# ------------------------------------------------------------------ the model
def run_model(steps: list[Step], profile: str = "6.18", nr_cpus: int = 2) -> list[dict[str, Any]]:
    system = pybpfmem.System(nr_cpus=nr_cpus, profile=profile)
    task = system.spawn(cgroup=system.root.mkdir("lru"))
    out: list[dict[str, Any]] = []
    cpu, fd, mt = 0, -1, ""

    def kb(k: int) -> bytes:
        return k.to_bytes(4, "little")

    for i, st in enumerate(steps):
        op, extra, err = st[0], {}, 0
        if op == "cpu":
            cpu = st[1]
        with task.running(cpu=cpu):
            try:
                if op == "create":
                    mt = st[1]
                    fd = task.bpf_map_create(getattr(uapi, "BPF_MAP_TYPE_" + mt), 4, 8, st[2],
                                             st[3])
                    extra["max_entries"] = task.fd_object(fd).max_entries
                elif op == "update":
                    task.bpf_map_update_elem(fd, kb(st[1]), value(mt, st[1], i, nr_cpus), st[2])
                elif op == "update_batch":
                    task.bpf_map_update_batch(fd, [kb(k) for k in st[1]],
                                              [value(mt, k, i, nr_cpus) for k in st[1]], st[2])
                elif op == "lookup":
                    mid = task.fd_object(fd).id
                    for k in st[1]:
                        system.helper_map_lookup_elem(mid, kb(k))
                elif op == "sys_lookup":
                    task.bpf_map_lookup_elem(fd, kb(st[1]))
                elif op == "delete":
                    task.bpf_map_delete_elem(fd, kb(st[1]))
                elif op == "delete_batch":
                    task.bpf_map_delete_batch(fd, [kb(k) for k in st[1]])
                elif op == "lookup_and_delete":
                    task.bpf_map_lookup_and_delete_elem(fd, kb(st[1]))
                elif op != "cpu":
                    raise ValueError(f"unknown step {st!r}")
            except OSError as e:
                err = e.errno
        out.append(_obs(err, task.fd_object(fd).items(), **extra))
    return out


# ------------------------------------------------------------------ the live kernel
def _live_steps(steps: list[Step]) -> list[dict[str, Any]]:
    """Runs in the forked child, pinned to one cpu at a time."""
    import ctypes

    from pybpfmem.live import bpf

    ncpus = bpf.possible_cpus()
    libc = ctypes.CDLL(None, use_errno=True)
    out: list[dict[str, Any]] = []
    m: Any = None
    mt = ""
    os.sched_setaffinity(0, {0})

    def kb(k: int) -> bytes:
        return k.to_bytes(4, "little")

    for i, st in enumerate(steps):
        op, extra, err = st[0], {}, 0
        try:
            if op == "create":
                mt = st[1]
                m = bpf.map_create(mt, 4, 8, st[2], st[3])
                extra["max_entries"] = m.info().max_entries
            elif op == "cpu":
                os.sched_setaffinity(0, {st[1]})
                extra["on"] = libc.sched_getcpu()
            elif op == "update":
                m.update(kb(st[1]), value(mt, st[1], i, ncpus), st[2])
            elif op == "update_batch":
                m.update_batch([kb(k) for k in st[1]], [value(mt, k, i, ncpus) for k in st[1]],
                               st[2])
            elif op == "lookup":
                prog = bpf.prog_load(uapi.BPF_PROG_TYPE_SOCKET_FILTER,
                                     bpf.lookup_program(m.fd, list(st[1])))
                try:
                    bpf.prog_test_run(prog)
                finally:
                    os.close(prog)
            elif op == "sys_lookup":
                m.lookup(kb(st[1]))
            elif op == "delete":
                m.delete(kb(st[1]))
            elif op == "delete_batch":
                m.delete_batch([kb(k) for k in st[1]])
            elif op == "lookup_and_delete":
                m.lookup_and_delete(kb(st[1]))
            else:
                raise ValueError(f"unknown step {st!r}")
        except OSError as e:
            err = e.errno
        # the whole map in one batch: no LRU state is touched
        out.append(_obs(err, m.lookup_batch(chunk=4096), **extra))
    m.close()
    return out


def run_live(steps: list[Step]) -> list[dict[str, Any]]:
    """The steps on the live kernel: a forked child in its own scratch memory cgroup
    (below ours, removed afterwards), pinned to the cpu of each step."""
    from pybpfmem.live.session import LiveSession

    with LiveSession() as session:
        case = session.case()
        r, w = os.pipe()
        pid = session.fork()
        if pid == 0:   # pragma: no cover - the child
            code = 0
            try:
                os.close(r)
                case.move(os.getpid())
                res: Any = _live_steps(steps)
            except BaseException as e:
                res, code = {"error": repr(e)}, 1
            with os.fdopen(w, "w") as f:
                json.dump(res, f)
            os._exit(code)
        os.close(w)
        with os.fdopen(r) as f:
            data = f.read()
        session.reap(pid)
    res = json.loads(data)
    if isinstance(res, dict):
        raise RuntimeError(f"live child failed: {res['error']}")
    return res


# ------------------------------------------------------------------ random scripts
def random_steps(seed: int, map_type: str, max_entries: int, flags: int, n: int,
                 key_space: int, ncpus: int = 2) -> list[Step]:
    """A replayable random script: mostly updates (every flag), program lookups,
    deletes, a few batches, cpu switches."""
    rnd = random.Random(seed)
    steps: list[Step] = [["create", map_type, max_entries, flags]]

    def key() -> int:
        return rnd.randrange(key_space)

    for _ in range(n):
        r = rnd.random()
        if r < 0.04:
            steps.append(["cpu", rnd.randrange(ncpus)])
        elif r < 0.56:
            steps.append(["update", key(), rnd.choice((0, 0, 0, 1, 2))])
        elif r < 0.76:
            steps.append(["lookup", [key() for _ in range(rnd.randint(1, 4))]])
        elif r < 0.86:
            steps.append(["delete", key()])
        elif r < 0.89:
            steps.append(["lookup_and_delete", key()])
        elif r < 0.92:
            steps.append(["sys_lookup", key()])
        elif r < 0.97:
            # elem_flags other than 0 / BPF_F_LOCK: EINVAL (generic_map_update_batch())
            steps.append(["update_batch", [key() for _ in range(rnd.randint(1, 6))],
                          rnd.choice((0, 0, 0, 0, 2))])
        else:
            steps.append(["delete_batch", [key() for _ in range(rnd.randint(1, 3))]])
    return steps

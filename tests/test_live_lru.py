"""LRU victims on the live kernel against the model, step by step.

Each script (tests/lru_steps.py) runs in a forked child in its own scratch memory
cgroup, pinned to one cpu at a time: there the kernel's LRU is deterministic (every
list belongs to the map and only our syscalls touch it), so the model must agree
exactly -- errno, every surviving key and its value after every step.  The fixed
scripts are the hand derivations of tests/test_bpf_lru.py, so their survivors are
also pinned to the kernel's answer here.  Random scripts are replayable by seed;
PYBPFMEM_LRU_LIVE_SEEDS=n runs n seeds per map kind (default 1).

Steal paths (a cpu taking nodes from another cpu's local lists) are not reached on
the live 6.18 kernel with 2 possible cpus: with lru_target_free_clamp a cpu holds at
most max_entries / 4 nodes, so the common lists never run dry; test_bpf_lru.py
covers them for the pre-6.16 target.
"""
from __future__ import annotations

import errno
import os

import pytest

from pybpfmem.bpf import uapi
from pybpfmem.live import bpf
from pybpfmem.live.runner import refusal_reason

from lru_steps import keys_of, random_steps, run_live, run_model

REASON = refusal_reason()
pytestmark = [pytest.mark.live, pytest.mark.skipif(REASON is not None, reason=str(REASON))]

PROFILE = "6.18"       # the live kernel's profile (docs/fidelity.md)
NO_COMMON = uapi.BPF_F_NO_COMMON_LRU
EXIST, NOEXIST = uapi.BPF_EXIST, uapi.BPF_NOEXIST


def _fill(n: int) -> list[list]:
    return [["update", i, 0] for i in range(n)]


# (name, steps, {step index: (errno, surviving keys)}) -- derivations in test_bpf_lru.py
SCRIPTS = [
    ("refs_protect", [["create", "LRU_HASH", 8, 0], *_fill(8), ["lookup", [0, 1]],
                      ["update", 8, 0], ["update", 9, 0], ["update", 10, 0]],
     {10: (0, [0, 1, 4, 5, 6, 7, 8]), 12: (0, [0, 1, 6, 7, 8, 9, 10])}),
    ("failed_exist_evicts", [["create", "LRU_HASH", 4, 0], *_fill(5), ["update", 100, EXIST],
                             ["update", 2, NOEXIST], ["update", 200, EXIST]],
     {5: (0, [1, 2, 3, 4]), 6: (errno.ENOENT, [2, 3, 4]), 7: (errno.EEXIST, [2, 3, 4]),
      8: (errno.ENOENT, [2, 3, 4])}),
    ("replace_is_referenced", [["create", "LRU_HASH", 8, 0], *_fill(8), ["update", 0, 0],
                               ["update", 2, 0], ["update", 8, 0]],
     {9: (0, [0, 2, 3, 4, 5, 6, 7]), 11: (0, [0, 2, 4, 5, 6, 7, 8])}),
    ("force_shrink_active_rotation", [["create", "LRU_HASH", 4, 0], *_fill(4),
                                      ["lookup", [0, 1, 2, 3]], ["update", 4, 0],
                                      ["update", 5, 0]],
     {6: (0, [0, 1, 2, 4]), 7: (0, [0, 1, 2, 5])}),
    ("deletes", [["create", "LRU_HASH", 8, 0], *_fill(8), ["delete", 7], ["delete", 0],
                 ["delete", 0], ["update", 8, 0], ["update", 9, 0]],
     {11: (errno.ENOENT, [1, 2, 3, 4, 5, 6]), 13: (0, [2, 3, 4, 5, 6, 8, 9])}),
    ("no_common_lru", [["create", "LRU_HASH", 8, NO_COMMON], *_fill(4), ["lookup", [1]],
                       ["update", 4, 0], ["cpu", 1], ["update", 5, 0], ["update", 6, 0],
                       ["cpu", 0], ["delete", 1]],
     {0: (0, []), 6: (0, [1, 4]), 9: (0, [1, 4, 5, 6]), 11: (0, [4, 5, 6])}),
    ("percpu_values", [["create", "LRU_PERCPU_HASH", 4, 0], *_fill(4), ["update", 1, 0],
                       ["update", 2, EXIST], ["update", 9, 0], ["update", 10, 0]],
     {5: (0, [1, 2, 3]), 8: (0, [1, 2, 9, 10])}),
    ("cpus_own_lists", [["create", "LRU_HASH", 4, NO_COMMON], *_fill(2), ["cpu", 1],
                        ["update", 10, 0], ["update", 11, 0], ["cpu", 0], ["update", 2, 0]],
     {7: (0, [2, 10, 11])}),
]


def _diff(steps: list, live: list, model: list) -> str | None:
    for i, (a, b) in enumerate(zip(live, model)):
        if (a["err"], a["elems"], a.get("max_entries")) != \
                (b["err"], b["elems"], b.get("max_entries")):
            return (f"step {i} {steps[i]}: live errno {a['err']} keys {keys_of(a)}, "
                    f"model errno {b['err']} keys {keys_of(b)}")
    return None if len(live) == len(model) == len(steps) else "different step counts"


@pytest.mark.parametrize("name, steps, expect", SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_hand_derived_scripts(name, steps, expect):
    live = run_live(steps)
    assert _diff(steps, live, run_model(steps, PROFILE, bpf.possible_cpus())) is None
    for i, (err, survivors) in expect.items():
        assert (live[i]["err"], keys_of(live[i])) == (err, survivors), f"step {i} {steps[i]}"
    cpus = [o["on"] for o in live if "on" in o]
    assert cpus == [s[1] for s in steps if s[0] == "cpu"]       # the child really moved


def test_no_common_lru_rounds_max_entries_up():
    # htab_map_alloc(): roundup(5, 2 possible cpus) = 6 (bpf_map_info.max_entries)
    ncpus = bpf.possible_cpus()
    steps = [["create", "LRU_HASH", 5, NO_COMMON]]
    live = run_live(steps)
    assert live[0]["max_entries"] == (5 + ncpus - 1) // ncpus * ncpus
    assert _diff(steps, live, run_model(steps, PROFILE, ncpus)) is None


KINDS = [   # (map type, max_entries, map_flags, key space): small maps evict often
    ("LRU_HASH", 16, 0, 40),
    ("LRU_HASH", 17, NO_COMMON, 40),          # rounded to 18
    ("LRU_PERCPU_HASH", 16, 0, 40),
    ("LRU_PERCPU_HASH", 12, NO_COMMON, 30),
    ("LRU_HASH", 600, 0, 1500),               # target_free clamped at 128 (600 / 2 / 2)
]
SEEDS = int(os.environ.get("PYBPFMEM_LRU_LIVE_SEEDS", "1"))


@pytest.mark.parametrize("kind", KINDS, ids=[f"{k[0]}-{k[1]}-{k[2]}" for k in KINDS])
@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_scripts_agree_at_every_step(kind, seed):
    mt, max_entries, flags, key_space = kind
    ncpus = bpf.possible_cpus()
    n = 400 if max_entries > 100 else 1000
    steps = random_steps(seed * 100 + KINDS.index(kind), mt, max_entries, flags, n, key_space,
                         ncpus)
    live = run_live(steps)
    assert _diff(steps, live, run_model(steps, PROFILE, ncpus)) is None

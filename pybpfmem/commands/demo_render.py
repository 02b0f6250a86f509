"""Tables for ``pybpfmem demo`` (rich: colour only on a terminal; fits 80 columns:
names wrap, never cut).  Every act has a title, shows memory.stat next to
memory.current, and ends with a caption saying what the numbers show."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

INTRO = (
    "One BPF workload, three kernels. 5.10 charges an estimate of each map to the creating "
    "user's locked_vm against RLIMIT_MEMLOCK; 5.11 (the seed series) charges the memory really "
    "allocated to the creator's memory cgroup; 6.18 is today's kernel. memory.stat shows where "
    "the charge went: slab (kmalloc'ed objects, with their 8-byte objcg slot), percpu, vmalloc "
    "and kernel (the kernels that have these entries)."
)
#: memory.stat entries as the tables name them
SHORT = {"slab_unreclaimable": "slab", "percpu": "percpu", "vmalloc": "vmalloc", "kernel": "kernel"}


def _kib(n: Any) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:,.1f}K"


def _size(n: int) -> str:
    """Bytes as the tables print them: 80B, 1.0K, 1,040.0K."""
    return f"{n}B" if abs(n) < 1024 else _kib(n)


def _stat(stat: dict[str, int]) -> str:
    """The non-zero memory.stat entries, one per line ("-" when all are zero)."""
    lines = [f"{SHORT.get(k, k)} {_size(v)}" for k, v in stat.items() if v]
    return "\n".join(lines) or "-"


def _outcome(err: dict[str, Any] | None) -> str:
    return "ok" if err is None else f"[red]{err['name']}[/red]"


def _table(title: str, *columns: tuple[str, str]) -> Table:
    t = Table(title=title, title_justify="left")
    for name, justify in columns:
        t.add_column(name, justify=justify, overflow="fold")   # type: ignore[arg-type]
    return t


def render(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=min(Console().width, 100))
    profiles = result["profiles"]
    acts = result["acts"]

    def caption(text: str) -> None:
        console.print(text + "\n", highlight=False)

    console.print(f"[bold]pybpfmem demo[/bold]\n{INTRO}\n", highlight=False)

    t = _table("1. Two root daemons in two cgroups (memory.max 8M each, RLIMIT_MEMLOCK 1M)",
               ("step", "left"), *((p, "center") for p in profiles))
    for i, row in enumerate(acts[profiles[0]]["shared_budget"]["rows"]):
        t.add_row(f"{row['who']}: {row['map']}",
                  *(_outcome(acts[p]["shared_budget"]["rows"][i]["error"]) for p in profiles))
    console.print(t)
    t = _table("   after act 1: uid 0's locked_vm, each cgroup's memory.current and memory.stat",
               ("profile", "left"), ("locked_vm", "right"), ("agent-a", "right"), ("agent-a stat", "left"),
               ("agent-b", "right"), ("agent-b stat", "left"))
    for p in profiles:
        a = acts[p]["shared_budget"]
        t.add_row(p, f"{a['locked_vm_uid0']} pages", _kib(a["memory.current"]["agent-a"]),
                  _stat(a["memory.stat"]["agent-a"]), _kib(a["memory.current"]["agent-b"]),
                  _stat(a["memory.stat"]["agent-b"]))
    console.print(t)
    caption("5.10: every root process shares uid 0's locked_vm, so agent-b fails because of agent-a, "
            "and memory.stat shows none of the maps. 5.11+: each cgroup has its own limit; only the "
            "16 MiB map fails, at agent-b's own memory.max, and each cgroup's memory.stat holds its "
            "own maps.")

    t = _table("2. Estimate vs memory really charged: fdinfo memlock, the memory.current delta, "
               "and where memory.stat shows it", ("map", "left"), *((p, "left") for p in profiles))
    for i, row in enumerate(acts[profiles[0]]["estimate_vs_real"]):
        cells = []
        for p in profiles:
            r = acts[p]["estimate_vs_real"][i]
            if r["error"]:
                cells.append(_outcome(r["error"]))
                continue
            cells.append(f"memlock {_kib(r['memlock'])}\ncharged {_kib(r['charged'])}\n{_stat(r['memory.stat'])}")
        t.add_row(row["map"], *cells)
    console.print(t)
    caption("5.10 charges the estimate to the rlimit and memcg sees none of it; 5.11+ charge what the "
            "allocators really hand out (slab objects, vmalloc pages, per-cpu areas, elements), in "
            "whole pages to memory.current (5.11 has no vmalloc or kernel entry in memory.stat: those "
            "pages show in memory.current only). 6.18 charges no per-cpu values of a PERCPU_ARRAY: "
            "they are allocated before the map's obj_cgroup is saved (bpf_map_alloc_percpu during "
            "map_alloc), as the live kernel shows.")

    first = acts[profiles[0]]["half_way_failure"]
    t = _table(f"3. A map creation failing half-way: {first['map']} in a cgroup with memory.max 512K",
               ("", "left"), *((p, "right") for p in profiles))
    half = [acts[p]["half_way_failure"] for p in profiles]
    t.add_row("bpf(BPF_MAP_CREATE)", *(_outcome(r["error"]) for r in half))
    t.add_row("memory.current before", *(_kib(r["memory.current before"]) for r in half))
    t.add_row("memory.peak (during)", *(_kib(r["memory.peak"]) for r in half))
    t.add_row("memory.current after", *(_kib(r["memory.current after"]) for r in half))
    t.add_row("memory.stat after", *(_stat(r["memory.stat after"]) for r in half))
    t.add_row("memory.events max", *(str(r["events"].get("max", 0)) for r in half))
    t.add_row("locked_vm pages before / after", *(f"{r['locked_vm before']} / {r['locked_vm after']}" for r in half))
    console.print(t)
    caption("5.11+: the buckets fit, the element area does not: the creation charged up to "
            "memory.peak, hit memory.max (memory.events max counts the refused charges), failed with "
            "ENOMEM and gave every page back: memory.current and memory.stat are where they were. "
            "5.10: memcg charges nothing and RLIMIT_MEMLOCK is unlimited here, so the map is created "
            "and its estimate stays in locked_vm.")

    t = _table("4. The errors of act 1, explained by the model", ("profile", "left"),
               ("what failed and why", "left"))
    for p in profiles:
        for row in acts[p]["shared_budget"]["rows"]:
            if row["error"]:
                t.add_row(p, f"{row['who']} {row['map']}: {row['error']['name']} — {row['error']['message']}")
    console.print(t)
    caption("5.10's EPERM comes from bpf_charge_memlock: the budget of the user, shared by every task of "
            "uid 0. 5.11+'s ENOMEM comes from the charge of the map's memory: the cgroup is at its "
            "memory.max.")

    t = _table("5. 2000 updates of a no-prealloc hash from another cgroup, then 2000 from interrupts: "
               "memory.current and memory.stat slab of the map owner's cgroup and of the updater's",
               ("updates from", "left"), *((p, "right") for p in profiles))
    for i, row in enumerate(acts[profiles[0]]["remote_charging"]["rows"]):
        cells = []
        for p in profiles:
            r = acts[p]["remote_charging"]["rows"][i]
            cells.append(f"owner +{_kib(r['owner charged'])}\n(slab +{_size(r['owner slab_unreclaimable'])})\n"
                         f"updater +{_kib(r['other charged'])}\n(slab {_size(r['other slab_unreclaimable'])})")
        t.add_row(row["updates from"], *cells)
    console.print(t)
    caption("5.11+: every element is charged to the map's cgroup (the map's memcg is made active for "
            "the allocation), whoever updates it: a task in another cgroup or a program run from an "
            "interrupt; the updater's cgroup is charged nothing. 5.10: memcg sees none of it.")

    t = _table("6. A pinned map keeps a removed cgroup's memory charged", ("profile", "left"),
               ("step", "left"), ("/svc memory.current", "right"), ("/svc slab", "right"),
               ("dying cgroups", "right"))
    for p in profiles:
        for s in acts[p]["pinned_dying"]["states"]:
            t.add_row(p, s["step"], _kib(s["svc"]), _size(s["svc slab_unreclaimable"]), str(s["dying"]))
    console.print(t)
    caption("5.11 keeps the map's memcg pinned (map->memcg) so the removed cgroup lingers dying; "
            "6.0+ saves an obj_cgroup that is reparented, so the removed cgroup can go and later "
            "charges and uncharges land on /svc.")

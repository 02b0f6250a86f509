"""Tables for ``pybpfmem demo`` (rich: colour only on a terminal, 80 columns)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

INTRO = (
    "One BPF workload, three kernels. 5.10 charges an estimate of each map to the creating "
    "user's locked_vm against RLIMIT_MEMLOCK; 5.11 (the seed series) charges the memory really "
    "allocated to the creator's memory cgroup; 6.18 is today's kernel."
)


def _kib(n: Any) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:,.1f}K"


def _outcome(err: dict[str, Any] | None) -> str:
    return "ok" if err is None else f"[red]{err['name']}[/red]"


def render(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=min(Console().width, 100))
    profiles = result["profiles"]
    acts = result["acts"]
    console.print(f"[bold]pybpfmem demo[/bold]\n{INTRO}\n")

    t = Table(title="1. Two root daemons in two cgroups (memory.max 8M each, RLIMIT_MEMLOCK 1M)")
    t.add_column("step")
    for p in profiles:
        t.add_column(p, justify="center")
    rows = acts[profiles[0]]["shared_budget"]["rows"]
    for i, row in enumerate(rows):
        t.add_row(f"{row['who']}: {row['map']}", *(_outcome(acts[p]["shared_budget"]["rows"][i]["error"]) for p in profiles))
    console.print(t)
    console.print(
        "5.10: every root process shares uid 0's locked_vm, so agent-b fails because of agent-a. "
        "5.11+: each cgroup has its own limit; only the 16 MiB map fails, at agent-b's own memory.max.\n"
    )

    t = Table(title="2. Estimate vs memory really charged (fdinfo memlock / memory.current delta)")
    t.add_column("map")
    for p in profiles:
        t.add_column(f"{p} memlock", justify="right")
        t.add_column(f"{p} charged", justify="right")
    for i, row in enumerate(acts[profiles[0]]["estimate_vs_real"]):
        cells = []
        for p in profiles:
            r = acts[p]["estimate_vs_real"][i]
            cells += [_kib(r.get("memlock")), _kib(r.get("charged"))]
        t.add_row(row["map"], *cells)
    console.print(t)
    console.print(
        "5.10 charges the estimate to the rlimit and memcg sees none of it; 5.11+ charge what the "
        "allocators really hand out (slab objects, vmalloc pages, per-cpu areas, elements). "
        "6.18 charges no per-cpu values of a PERCPU_ARRAY: they are allocated before the map's "
        "obj_cgroup is saved (bpf_map_alloc_percpu during map_alloc), as the live kernel shows.\n"
    )

    t = Table(title="3. A map creation failing half-way (memory.max 512K): what is left charged")
    t.add_column("profile")
    t.add_column("errno")
    t.add_column("memory.current before/after", justify="right")
    t.add_column("locked_vm pages before/after", justify="right")
    for p in profiles:
        r = acts[p]["half_way_failure"]
        t.add_row(
            p,
            _outcome(r["error"]),
            f"{_kib(r['memory.current before'])} / {_kib(r['memory.current after'])}",
            f"{r['locked_vm before']} / {r['locked_vm after']}",
        )
    console.print(t)

    t = Table(title="4/5. The errors, explained")
    t.add_column("profile")
    t.add_column("what failed and why", overflow="fold")
    for p in profiles:
        for row in acts[p]["shared_budget"]["rows"]:
            if row["error"]:
                t.add_row(p, f"{row['who']} {row['map']}: {row['error']['name']} — {row['error']['message']}")
    console.print(t)

    t = Table(title="6. Updates from another cgroup and from interrupts (no-prealloc hash)")
    t.add_column("profile")
    t.add_column("updates from")
    t.add_column("map owner's cgroup", justify="right")
    t.add_column("updater's cgroup", justify="right")
    for p in profiles:
        for row in acts[p]["remote_charging"]["rows"]:
            t.add_row(p, row["updates from"], _kib(row["owner charged"]), _kib(row["other charged"]))
    console.print(t)

    t = Table(title="7. A pinned map keeps a removed cgroup's memory charged")
    t.add_column("profile")
    t.add_column("step")
    t.add_column("/svc memory.current", justify="right")
    t.add_column("dying cgroups", justify="right")
    for p in profiles:
        for s in acts[p]["pinned_dying"]["states"]:
            t.add_row(p, s["step"], _kib(s["svc"]), str(s["dying"]))
    console.print(t)
    console.print(
        "5.11 keeps the map's memcg pinned (map->memcg) so the removed cgroup lingers dying; "
        "6.0+ saves an obj_cgroup that is reparented, so the removed cgroup can go and later "
        "charges and uncharges land on /svc.\n"
    )

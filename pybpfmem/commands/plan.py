"""``pybpfmem plan``: capacity planning of memory.max for a set of BPF maps.

Each map is created on a fresh simulated machine of the chosen kernel and
size (``--profile``, ``--cpus``), in a cgroup of its own, and measured the way
memory.current would show it: at creation, and when full (every entry
written; for maps above ``FULL_INSERT_CAP`` entries the per-entry cost is
measured on that many inserts and extrapolated linearly, which is said in
the output).  The recommended memory.max of a cgroup adds the per-cpu stock
slack: every possible cpu may hold up to MEMCG_CHARGE_BATCH pre-charged pages
in its page stock and up to a page of bytes in its object stock.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pybpfmem
from pybpfmem.bpf import uapi
from pybpfmem.profiles import CURRENT_PROFILE, PROFILE_NAMES, Profile, get_profile
from pybpfmem.commands.btfopt import add_btf_argument, sized_profiles
from pybpfmem.commands.scenario import flag_value, map_type_by_name

FULL_INSERT_CAP = 65536
EXIT_BAD_INPUT = 2
# map types whose entries allocate memory when written (the rest allocate at creation)
GROWING = {
    uapi.BPF_MAP_TYPE_HASH, uapi.BPF_MAP_TYPE_PERCPU_HASH, uapi.BPF_MAP_TYPE_LPM_TRIE,
    uapi.BPF_MAP_TYPE_HASH_OF_MAPS,
}


@dataclass
class MapSpec:
    type: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    name: str = ""
    id: int | None = None
    memcg: str | None = None
    input_memlock: int | None = None   # bytes_memlock of the input (another kernel's figure)


@dataclass
class MapPlan:
    id: int | None
    type: str
    name: str
    bytes_memlock: int | None
    input_bytes_memlock: int | None
    charged_at_creation: int | None
    charged_when_full: int | None
    extrapolated: bool
    memcg: str | None
    error: str | None = None


def _bpftool_specs(path: str) -> list[MapSpec]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError("bpftool -j map show output must be a JSON list")
    specs = []
    for i, m in enumerate(data):
        try:
            specs.append(MapSpec(
                type=str(m["type"]), key_size=int(m["bytes_key"]), value_size=int(m["bytes_value"]),
                max_entries=int(m["max_entries"]), flags=int(str(m.get("flags", 0)), 0),
                name=str(m.get("name", "")), id=int(m["id"]) if "id" in m else None,
                memcg=m.get("memcg"), input_memlock=int(m["bytes_memlock"]) if "bytes_memlock" in m else None,
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: map #{i}: {exc!r}") from exc
    return specs


def _toml_specs(path: str) -> list[MapSpec]:
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    specs = []
    for i, m in enumerate(doc.get("map", [])):
        try:
            specs.append(MapSpec(
                type=str(m["type"]), key_size=int(m.get("key_size", 4)), value_size=int(m.get("value_size", 8)),
                max_entries=int(m["max_entries"]), flags=flag_value(m.get("flags", 0)), name=str(m.get("name", "")),
                memcg=m.get("cgroup"),
            ))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: [[map]] #{i + 1}: {exc!r}") from exc
    return specs


def _host_specs() -> list[MapSpec]:
    """The maps of the running machine, read-only: every map id, its shape and fdinfo
    memlock, and the memory cgroup of a process holding an fd on it (needs CAP_SYS_ADMIN
    for BPF_MAP_GET_FD_BY_ID)."""
    from pybpfmem.live import bpf as live

    holders = live.map_holders()
    specs = []
    for mid in live.map_ids():
        try:
            fd = live.map_get_fd_by_id(mid)
        except OSError as exc:
            if exc.errno == errno.ENOENT:      # freed since it was listed
                continue
            raise
        try:
            info = live.obj_get_info_by_fd(fd)
            memlock = int(live.fdinfo(fd).get("memlock", "0"))
        finally:
            live.close(fd)
        pids = [p for p in holders.get(mid, []) if p != os.getpid()] or holders.get(mid, [])
        specs.append(MapSpec(
            type=uapi.MAP_TYPE_NAMES[info.type].lower(), key_size=info.key_size,
            value_size=info.value_size, max_entries=info.max_entries, flags=info.map_flags,
            name=info.name, id=mid, memcg=live.memory_cgroup_of(pids[0]) if pids else None,
            input_memlock=memlock))
    return specs


def _cli_spec(text: str) -> MapSpec:
    """TYPE:KEY:VALUE:MAX[:FLAG,FLAG] e.g. hash:4:64:1000:no_prealloc"""
    parts = text.split(":")
    if len(parts) not in (4, 5):
        raise ValueError(f"--map {text!r}: expected TYPE:KEY:VALUE:MAX[:FLAGS]")
    flags = flag_value(parts[4].split(",")) if len(parts) == 5 and parts[4] else 0
    return MapSpec(parts[0], int(parts[1]), int(parts[2]), int(parts[3]), flags)


def plan_map(spec: MapSpec, profile: str | Profile, cpus: int) -> MapPlan:
    """Create one map on a fresh System and measure what memory.current shows."""
    system = pybpfmem.System(nr_cpus=cpus, profile=profile, cgroup="v2", ram="64G")
    cg = system.root.mkdir("plan")
    task = system.spawn(cgroup=cg)
    task.setrlimit(pybpfmem.RLIMIT_MEMLOCK, 1 << 62, 1 << 62)
    result = MapPlan(spec.id, spec.type, spec.name, None, spec.input_memlock, None, None, False, spec.memcg)
    mtype = map_type_by_name(spec.type)

    def usage() -> int:
        system.run_deferred()
        system.drain_all_stock()
        return cg.usage_pages * system.page_size

    try:
        base = usage()
        with task.running(cpu=0):
            fd = task.bpf_map_create(mtype, spec.key_size, spec.value_size, spec.max_entries, spec.flags,
                                     map_name=spec.name[:15])
        created = usage()
        result.charged_at_creation = created - base
        result.charged_when_full = result.charged_at_creation
        if mtype in GROWING:
            n = min(spec.max_entries, FULL_INSERT_CAP)
            result.extrapolated = n < spec.max_entries
            value = bytes(spec.value_size if mtype not in (uapi.BPF_MAP_TYPE_PERCPU_HASH,) else
                          ((spec.value_size + 7) // 8 * 8) * cpus)
            with task.running(cpu=0):
                for i in range(n):
                    key = _key(mtype, spec.key_size, i)
                    task.bpf_map_update_elem(fd, key, value)
            per_entry = (usage() - created) / n if n else 0
            result.charged_when_full = created - base + math.ceil(per_entry * spec.max_entries)
        result.bytes_memlock = int(task.fdinfo(fd)["memlock"])
    except OSError as exc:
        result.error = f"{exc.strerror}"
    return result


def _key(mtype: int, key_size: int, i: int) -> bytes:
    if mtype == uapi.BPF_MAP_TYPE_LPM_TRIE:
        # full-length prefixes: every key is a distinct leaf
        data_len = key_size - 4
        return (8 * data_len).to_bytes(4, "little") + i.to_bytes(data_len, "big")
    return i.to_bytes(key_size, "little")


def recommend(total_full: int, cpus: int, profile: str | Profile, page_size: int = 4096) -> int:
    """memory.max headroom: the full charge plus the per-cpu stock slack, rounded up to a MiB."""
    batch = (profile if isinstance(profile, Profile) else get_profile(profile)).charge_batch
    slack = cpus * (batch * page_size + page_size)
    mib = 1 << 20
    return -(-(total_full + slack) // mib) * mib


def plan(specs: list[MapSpec], profile: str | Profile, cpus: int, progress: bool = False) -> dict[str, Any]:
    from rich.progress import Progress

    name = profile.name if isinstance(profile, Profile) else profile
    with Progress(transient=True, disable=not (progress and sys.stderr.isatty())) as bar:
        task = bar.add_task(f"planning on {name}", total=len(specs))
        maps = []
        for s in specs:
            maps.append(plan_map(s, profile, cpus))
            bar.advance(task)
    cgroups: dict[str, dict[str, int]] = {}
    for m in maps:
        key = m.memcg or "/"
        c = cgroups.setdefault(key, {"charged_at_creation": 0, "charged_when_full": 0})
        c["charged_at_creation"] += m.charged_at_creation or 0
        c["charged_when_full"] += m.charged_when_full or 0
    for c in cgroups.values():
        c["recommended_memory_max"] = recommend(c["charged_when_full"], cpus, profile)
    total = sum(c["charged_when_full"] for c in cgroups.values())
    return {
        "profile": name, "cpus": cpus,
        "maps": [asdict(m) | {"bytes_memlock_input": m.input_bytes_memlock} for m in maps],
        "cgroups": cgroups,
        "recommended_memory_max": recommend(total, cpus, profile),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pybpfmem plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--map", action="append", default=[], metavar="TYPE:KEY:VALUE:MAX[:FLAGS]")
    parser.add_argument("--file", help="TOML file with [[map]] tables")
    parser.add_argument("--bpftool", metavar="FILE", help="JSON output of `bpftool -j map show`")
    parser.add_argument("--host", action="store_true",
                        help="the maps of this machine (read-only, needs root), with their holders' cgroups")
    parser.add_argument("--profile", choices=PROFILE_NAMES, default=CURRENT_PROFILE)
    parser.add_argument("--cpus", type=int, default=2, help="possible CPUs of the machine to plan for")
    parser.add_argument("--compare-profiles", action="store_true")
    parser.add_argument("--json", action="store_true")
    add_btf_argument(parser)
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.cpus <= 1024:
        print("pybpfmem plan: --cpus must be 1..1024", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        specs = [_cli_spec(m) for m in args.map]
        if args.file:
            specs += _toml_specs(args.file)
        if args.bpftool:
            specs += _bpftool_specs(args.bpftool)
        if args.host:
            from pybpfmem.live.session import LiveSession   # SIGINT/SIGTERM: clean exit
            with LiveSession(exit_on_signal=True, name="pybpfmem plan"):
                specs += _host_specs()
        for s in specs:
            map_type_by_name(s.type)
        profiles = PROFILE_NAMES if args.compare_profiles else (args.profile,)
        sized = sized_profiles(profiles, args.btf, "pybpfmem plan")
    except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
        print(f"pybpfmem plan: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not specs:
        print("pybpfmem plan: no maps given (use --map, --file or --bpftool)", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = {p: plan(specs, sized[p], args.cpus, progress=not args.json) for p in profiles}
    if args.json:
        json.dump(results if args.compare_profiles else results[args.profile], sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for p, res in results.items():
        t = Table(title=f"profile {p}, {args.cpus} possible cpus")
        for col in ("map", "memlock", "input memlock", "at creation", "when full", "memcg"):
            t.add_column(col, justify="left" if col in ("map", "memcg") else "right")
        for m in res["maps"]:
            full = f"{m['charged_when_full']:,}" + ("*" if m["extrapolated"] else "") if m["charged_when_full"] is not None else m["error"]
            t.add_row(f"{m['type']} {m['name']}".strip(), f"{m['bytes_memlock']:,}" if m["bytes_memlock"] is not None else "-",
                      f"{m['input_bytes_memlock']:,}" if m["input_bytes_memlock"] is not None else "-",
                      f"{m['charged_at_creation']:,}" if m["charged_at_creation"] is not None else "-", full, m["memcg"] or "-")
        console.print(t)
        for path, c in res["cgroups"].items():
            console.print(f"cgroup {path}: full {c['charged_when_full']:,} bytes -> memory.max >= {c['recommended_memory_max']:,}")
        console.print(f"recommended memory.max for all maps: {res['recommended_memory_max']:,} bytes"
                      + ("  (* = extrapolated from the first 65536 inserts)" if any(m["extrapolated"] for m in res["maps"]) else ""))
    return 0

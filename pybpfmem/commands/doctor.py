"""``pybpfmem doctor``: which rule charges BPF memory on this host, and what a limit returns.

Read-only.  It reads /proc and /sys, and probes the accounting rule the way bpftool and
libbpf do (``probe_memcg_account()``): in a forked child, RLIMIT_MEMLOCK is set to 0 and a
tiny ARRAY map is created.  Success means map memory is charged to memory cgroups (v5.11+);
EPERM means it is still charged to the user's locked_vm against RLIMIT_MEMLOCK (v5.10 and
kernels with its rule).  The child exits at once, so the map goes with it.

Reported: the kernel release and the profile of its line (a lookup by ``major.minor``,
``pybpfmem.profiles.profile_for_release``); the probe's answer; ``cgroup.memory=nobpf`` /
``nokmem`` / ``nosocket`` on the kernel command line; cgroup v1, v2 or both, and where the
memory controller is; the caller's memory cgroup and whether it is the root (maps created
there are charged to no limit); its limit; RLIMIT_MEMLOCK; ``perf_event_mlock_kb`` (perf
buffers); ``unprivileged_bpf_disabled``; and the error a BPF user would see at the limit
(ENOMEM under memcg accounting, EPERM under the rlimit).

    pybpfmem doctor [--json]

Everything it reads comes through ``gather()``'s arguments (a root directory for the files,
the probe, the release, getrlimit), so other hosts' answers can be replayed in tests.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pybpfmem.profiles import PROFILE_NAMES, get_profile, profile_for_release

#: probe(): None when the map was created with RLIMIT_MEMLOCK 0, else the errno
Probe = Callable[[], "int | None"]


def probe_regime() -> int | None:
    """bpftool's / libbpf's probe_memcg_account(): in a forked child with RLIMIT_MEMLOCK
    0, create an ARRAY map (key 4, value 4, 1 entry).  None if that worked, else its
    errno (the child's exit status carries it)."""
    from pybpfmem.bpf import uapi as U
    from pybpfmem.live.bpf import pack_map_create, sys_bpf
    attr = pack_map_create(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name="doctor_probe")
    pid = os.fork()
    if pid == 0:                                   # the child: exit code = errno
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))
            sys_bpf(U.BPF_MAP_CREATE, attr)
        except OSError as e:
            code = e.errno if e.errno and 0 < e.errno < 256 else 255
        except BaseException:                      # pragma: no cover - never leave the child
            code = 255
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return None if code == 0 else code
    return errno.EINTR                             # killed by a signal: no answer


@dataclass
class Report:
    release: str
    profile: str | None                 # the profile of the release's line, if the project has one
    regime: str                         # "memcg", "rlimit" or "unknown"
    probe: str                          # what the probe saw
    cmdline: dict[str, bool]            # cgroup.memory= options: nobpf, nokmem, nosocket
    cgroup: str                         # "v1", "v2", "v1+v2" or "none"
    memory_controller: str | None       # "v1 at /sys/fs/cgroup/memory", "v2 at /sys/fs/cgroup"
    memcg: str | None                   # the caller's memory cgroup, relative to its hierarchy
    memcg_is_root: bool | None
    memcg_limit: int | None             # its memory.max / memory.limit_in_bytes (None: none)
    rlimit_memlock: tuple[int | None, int | None]   # soft, hard (None: unlimited)
    perf_event_mlock_kb: int | None
    unprivileged_bpf_disabled: int | None
    at_the_limit: str                   # the error a BPF user sees at the limit, and when
    notes: list[str] = field(default_factory=list)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def kernel_cmdline_memory(cmdline: str) -> dict[str, bool]:
    """The cgroup.memory= options of the kernel command line (the part before "--")."""
    opts: set[str] = set()
    for tok in cmdline.split(" -- ")[0].split():
        if tok.startswith("cgroup.memory="):
            opts.update(tok.split("=", 1)[1].split(","))
    return {o: o in opts for o in ("nobpf", "nokmem", "nosocket")}


def _mounts(mountinfo: str) -> tuple[str | None, str | None]:
    """(v1 memory hierarchy mount point, cgroup2 mount point) from /proc/self/mountinfo."""
    v1 = v2 = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        if rf[0] == "cgroup" and "memory" in rf[2].split(",") and v1 is None:
            v1 = lf[4]
        elif rf[0] == "cgroup2" and v2 is None:
            v2 = lf[4]
    return v1, v2


def _own_memcg(proc_cgroup: str) -> tuple[int, str] | None:
    """(1, path) for a v1 memory line, else (2, path) for the "0::" line."""
    v2 = None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, ctrls, path = parts
        if "memory" in ctrls.split(","):
            return 1, path
        if hid == "0" and ctrls == "":
            v2 = path
    return (2, v2) if v2 is not None else None


def _limit(text: str | None) -> int | None:
    """A cgroup limit file in bytes; None for no limit ("max", v1's ~LONG_MAX) or no file."""
    t = (text or "").strip()
    if not t.isdigit() or int(t) >= (1 << 62):
        return None
    return int(t)


def _bytes(v: int | None, none: str) -> str:
    return none if v is None else f"{v:,} bytes"


def _rlim(v: int) -> int | None:
    return None if v == resource.RLIM_INFINITY else v


def gather(root: str | Path = "/", probe: Probe = probe_regime, release: str | None = None,
           getrlimit: Callable[[int], tuple[int, int]] = resource.getrlimit) -> Report:
    """The report for the host whose /proc and /sys are under ``root``."""
    root = Path(root)
    rel = release if release is not None else os.uname().release
    prof_name = profile_for_release(rel)
    prof = get_profile(prof_name) if prof_name else None
    notes: list[str] = []

    err = probe()
    if err is None:
        regime, probe_txt = "memcg", "a map was created with RLIMIT_MEMLOCK 0: memcg accounting"
    elif err == errno.EPERM:
        regime, probe_txt = "rlimit", "EPERM with RLIMIT_MEMLOCK 0: locked_vm accounting"
    else:
        regime, probe_txt = "unknown", f"map creation failed: {errno.errorcode.get(err, err)}"
    unpriv = _int(_read(root, "/proc/sys/kernel/unprivileged_bpf_disabled"))
    if err == errno.EPERM and os.geteuid() != 0 and unpriv:
        regime = "unknown"
        probe_txt += (f" -- but this user has no CAP_BPF and unprivileged_bpf_disabled is "
                      f"{unpriv}: run as root for an answer")

    cmd = kernel_cmdline_memory(_read(root, "/proc/cmdline") or "")
    v1, v2 = _mounts(_read(root, "/proc/self/mountinfo") or "")
    cgroup = "+".join(v for v, m in (("v1", v1), ("v2", v2)) if m) or "none"
    own = _own_memcg(_read(root, "/proc/self/cgroup") or "")
    controller = memcg = limit = None
    is_root: bool | None = None
    if own is not None and own[0] == 1 and v1:
        controller, memcg = f"v1 at {v1}", own[1]
        limit = _limit(_read(root, f"{v1}/{memcg}/memory.limit_in_bytes"))
    elif own is not None and own[0] == 2 and v2:
        ctrls = (_read(root, f"{v2}/cgroup.controllers") or "").split()
        if "memory" in ctrls:
            controller, memcg = f"v2 at {v2}", own[1]
            if memcg != "/":
                limit = _limit(_read(root, f"{v2}/{memcg}/memory.max"))
    if memcg is not None:
        is_root = memcg == "/"
    soft, hard = getrlimit(resource.RLIMIT_MEMLOCK)
    perf = _int(_read(root, "/proc/sys/kernel/perf_event_mlock_kb"))

    if prof is None:
        notes.append(f"no profile for kernel {rel}: the project models {', '.join(PROFILE_NAMES)}")
    elif regime == "memcg" and prof.rlimit:
        notes.append(f"the kernel charges memcg although profile {prof.name} follows the rlimit "
                     f"rule: a backport of the v5.11 memcg accounting; plan with a memcg profile")
    elif regime == "rlimit" and not prof.rlimit:
        notes.append(f"the kernel refuses maps over RLIMIT_MEMLOCK although profile {prof.name} "
                     f"charges memcg: its BPF accounting differs from its line")
    if cmd["nobpf"]:
        if prof is not None and not prof.memcg_nobpf:
            notes.append(f"cgroup.memory=nobpf is given, but kernels of profile {prof.name} do "
                         f"not know it (v6.3+): ignored")
        else:
            notes.append("cgroup.memory=nobpf: BPF maps and programs are charged to no memory "
                         "cgroup")
    if cmd["nokmem"]:
        notes.append("cgroup.memory=nokmem: no kernel memory, BPF maps included, is charged to "
                     "any memory cgroup")
    if regime == "memcg" and is_root:
        notes.append("this process is in the root memory cgroup: maps it creates are charged "
                     "to no limit")

    if regime == "memcg":
        where = memcg if memcg is not None else "the creator's memory cgroup"
        at_limit = (f"ENOMEM: map creation and element allocation fail when {where} (or an "
                    f"ancestor) reaches its limit ({_bytes(limit, 'none set here')})")
    elif regime == "rlimit":
        at_limit = (f"EPERM: map creation fails when the user's locked_vm would exceed "
                    f"RLIMIT_MEMLOCK (soft limit {_bytes(_rlim(soft), 'unlimited')}), shared by "
                    f"every process of the uid")
    else:
        at_limit = "unknown (the probe gave no answer)"
    return Report(release=rel, profile=prof_name, regime=regime, probe=probe_txt,
                  cmdline=cmd, cgroup=cgroup, memory_controller=controller, memcg=memcg,
                  memcg_is_root=is_root, memcg_limit=limit,
                  rlimit_memlock=(_rlim(soft), _rlim(hard)), perf_event_mlock_kb=perf,
                  unprivileged_bpf_disabled=unpriv, at_the_limit=at_limit, notes=notes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pybpfmem doctor",
        description="Which rule charges BPF memory on this host (memcg accounting or "
                    "RLIMIT_MEMLOCK), what a limit returns, and the profile that matches the "
                    "kernel.  Read-only.")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    return parser


def render(r: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="pybpfmem doctor", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("this host", overflow="fold")
    rows = [
        ("kernel", f"{r.release} (profile {r.profile})" if r.profile else f"{r.release} (no profile)"),
        ("BPF memory charged to", {"memcg": "memory cgroups (memcg accounting)",
                                   "rlimit": "the user's locked_vm, against RLIMIT_MEMLOCK",
                                   "unknown": "unknown"}[r.regime]),
        ("probe", r.probe),
        ("at the limit", r.at_the_limit),
        ("cgroup.memory=", ", ".join(k for k, v in r.cmdline.items() if v) or "-"),
        ("cgroup hierarchies", r.cgroup),
        ("memory controller", r.memory_controller or "not mounted"),
        ("this process's memory cgroup", "-" if r.memcg is None else
         r.memcg + ("  (the root: no limit)" if r.memcg_is_root else "")),
        ("its limit", "-" if r.memcg is None else _bytes(r.memcg_limit, "none")),
        ("RLIMIT_MEMLOCK (soft, hard)", ", ".join(_bytes(v, "unlimited") for v in r.rlimit_memlock)),
        ("perf_event_mlock_kb", "-" if r.perf_event_mlock_kb is None else f"{r.perf_event_mlock_kb} KiB"),
        ("unprivileged_bpf_disabled", "-" if r.unprivileged_bpf_disabled is None
         else str(r.unprivileged_bpf_disabled)),
    ]
    for k, v in rows:
        t.add_row(k, v)
    c = Console()
    c.print(t)
    for n in r.notes:
        c.print(f"note: {n}")


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = gather()
    except OSError as exc:
        print(f"pybpfmem doctor: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(asdict(report), sys.stdout, indent=2)
        print()
    else:
        render(report)
    return 0

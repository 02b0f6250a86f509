#!/usr/bin/env python3
"""Boot a real Debian kernel package in QEMU and run one command inside it.

    tools/kernel-vm/vm.py --kernel 6.1 --cgroup v2 [--save results/NAME] -- CMD ...

--kernel is a .deb path or a version ("5.10", "6.18.15", "6.1.192"): the newest
linux-image .deb of that version in build/kernel-vm/debs/ or /tmp/btfapt/deb/,
else fetched with apt-get download (private apt config, Debian suites only).
CMD runs as root in the guest from a copy of this source tree, inside the
memory cgroup set up for --cgroup (see init.sh); its exit code is ours.

Everything is cached under build/kernel-vm/ (gitignored, never committed):
  wheels/             the project's runtime and test deps (pip download on the host)
  rootfs-bookworm/    debootstrap rootfs with /opt/venv (rootfs.sh)
  debs/, apt/         kernel packages fetched by apt-get download
  kernels/<deb>/      vmlinuz, initrd.img, config, release (kernel.sh)
  rootfs.img          ext4 image of the rootfs, booted read-only (-snapshot)
  core/<hash>/        the C core, built in the rootfs by chroot
  runs/<name>/        the 9p share of one run: src.tar, cmd, out/
"""
from __future__ import annotations

import argparse
import ctypes
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent.parent
CACHE = TREE / "build" / "kernel-vm"
ROOTFS = CACHE / "rootfs-bookworm"
IMAGE = CACHE / "rootfs.img"
DEB_DIRS = [CACHE / "debs", Path("/tmp/btfapt/deb")]
APT_SUITES = [("debian", s) for s in ("bullseye", "bookworm", "bookworm-backports",
                                      "trixie", "trixie-backports")]
EXCLUDE = (".git", ".venv", "build", "__pycache__", "*.so", ".pytest_cache", ".hypothesis",
           ".benchmarks")


class Error(Exception):
    """A clean failure: printed as one message, exit code 2."""


def log(msg: str) -> None:
    print(f"kernel-vm: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, check=True, **kw)
    except subprocess.CalledProcessError as e:
        raise Error(f"{shlex.join(cmd)} failed with exit code {e.returncode}") from None


# ------------------------------------------------------------------ cached pieces
def _deps() -> list[str]:
    """The runtime deps and the test extra (the live tests run in the guest too)."""
    project = tomllib.loads((TREE / "pyproject.toml").read_text())["project"]
    return sorted(set(project["dependencies"]) | set(project["optional-dependencies"]["test"]))


def ensure_wheels() -> Path:
    wheels = CACHE / "wheels"
    req = wheels / "requirements.txt"
    deps = _deps()
    if not req.exists() or req.read_text().split() != deps:
        log(f"downloading wheels for {deps}")
        run([sys.executable, "-m", "pip", "download", "-q", "--dest", str(wheels),
             "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
             "--abi", "cp311", "--platform", "manylinux_2_28_x86_64",
             "--platform", "manylinux2014_x86_64", *deps])
        req.write_text(" ".join(deps) + "\n")
    return wheels


def ensure_rootfs() -> None:
    wheels = ensure_wheels()
    if not (ROOTFS / "opt/venv/bin/python").exists():
        log(f"building the rootfs in {ROOTFS} (debootstrap, a few minutes)")
        run(["sh", str(HERE / "rootfs.sh"), str(ROOTFS), str(wheels)])
    stamp = ROOTFS / "opt/venv/requirements.txt"
    want = (wheels / "requirements.txt").read_text()
    if not stamp.exists() or stamp.read_text() != want:
        log("installing the wheelhouse into the rootfs's /opt/venv")
        shutil.rmtree(ROOTFS / "opt/wheels", ignore_errors=True)
        shutil.copytree(wheels, ROOTFS / "opt/wheels")
        try:
            run(["chroot", str(ROOTFS), "/opt/venv/bin/pip", "install", "-q", "--no-index",
                 "--find-links", "/opt/wheels", *want.split()])
        finally:
            shutil.rmtree(ROOTFS / "opt/wheels", ignore_errors=True)
        stamp.write_text(want)


def _version_key(v: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", v)]


def _deb_version(name: str) -> str:
    """linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb -> 6.1.192-3"""
    return name.split("_")[1] if name.count("_") == 2 else ""


def _matches(version: str, spec: str) -> bool:
    return version == spec or version.startswith((spec + ".", spec + "-"))


def find_deb(spec: str) -> Path:
    if spec.endswith(".deb"):
        if not Path(spec).is_file():
            raise Error(f"{spec}: no such file")
        return Path(spec).resolve()
    found = [p for d in DEB_DIRS if d.is_dir() for p in d.glob("linux-image-*_amd64.deb")
             if "-dbg" not in p.name and _matches(_deb_version(p.name), spec)]
    if found:
        return max(found, key=lambda p: _version_key(_deb_version(p.name)))
    return apt_download(spec)


def apt_download(spec: str) -> Path:
    """apt-get download the newest Debian linux-image-*-amd64 of version ``spec``."""
    apt = CACHE / "apt"
    (apt / "lists/partial").mkdir(parents=True, exist_ok=True)
    (apt / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    (apt / "sources.list").write_text("".join(
        f"deb [signed-by={keyring}] http://deb.debian.org/{repo} {suite} main\n"
        for repo, suite in APT_SUITES))
    opts = [f"-oDir::Etc::SourceList={apt / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={apt / 'lists'}", f"-oDir::Cache={apt / 'cache'}",
            "-oAcquire::Check-Valid-Until=false"]
    log(f"no local package for {spec}: asking Debian's archive")
    run(["apt-get", "-q", *opts, "update"], stdout=subprocess.DEVNULL)
    names = run(["apt-cache", *opts, "search", "--names-only", r"^linux-image-[0-9.]+.*-amd64$"],
                capture_output=True, text=True).stdout
    best = None
    for line in names.splitlines():
        name = line.split(" ", 1)[0]
        show = run(["apt-cache", *opts, "show", "--no-all-versions", name],
                   capture_output=True, text=True).stdout
        m = re.search(r"^Version: (\S+)", show, re.M)
        if m and _matches(m.group(1), spec) and (
                best is None or _version_key(m.group(1)) > _version_key(best[1])):
            best = (name, m.group(1))
    if best is None:
        raise Error(f"no Debian linux-image-*-amd64 package of version {spec} in {APT_SUITES}")
    dest = CACHE / "debs"
    dest.mkdir(parents=True, exist_ok=True)
    log(f"downloading {best[0]} {best[1]}")
    run(["apt-get", "-q", *opts, "download", f"{best[0]}={best[1]}"], cwd=dest)
    return max(dest.glob(f"{best[0]}_*.deb"), key=lambda p: p.stat().st_mtime)


def ensure_kernel(deb: Path) -> tuple[Path, str]:
    kdir = CACHE / "kernels" / deb.stem
    if not (kdir / "release").exists():
        log(f"installing {deb.name} into the rootfs")
        release = run(["sh", str(HERE / "kernel.sh"), str(ROOTFS), str(deb), str(kdir)],
                      capture_output=True, text=True).stdout.strip()
        (kdir / "release").write_text(release + "\n")
    return kdir, (kdir / "release").read_text().strip()


def ensure_image() -> None:
    """The ext4 image of the rootfs, rebuilt when init.sh or the set of kernels changes."""
    init = (HERE / "init.sh").read_bytes()
    kernels = sorted(p.name for p in (ROOTFS / "usr/lib/modules").iterdir())
    venv = (ROOTFS / "opt/venv/requirements.txt").read_bytes()
    key = hashlib.sha256(init + repr(kernels).encode() + venv).hexdigest()
    keyfile = IMAGE.with_suffix(".key")
    if IMAGE.exists() and keyfile.exists() and keyfile.read_text() == key:
        return
    target = ROOTFS / "sbin/pybpfmem-init"
    target.write_bytes(init)
    target.chmod(0o755)
    used = run(["du", "-sm", str(ROOTFS)], capture_output=True, text=True).stdout.split()[0]
    size_mb = int(used) * 5 // 4 + 512
    log(f"making {IMAGE.name} ({size_mb} MiB, kernels {kernels})")
    IMAGE.unlink(missing_ok=True)
    run(["mkfs.ext4", "-q", "-F", "-L", "pbmroot", "-d", str(ROOTFS), str(IMAGE), f"{size_mb}M"])
    keyfile.write_text(key)


def ensure_core(tree: Path) -> Path:
    """The C core (pybpfmem/_core*.so) built by the rootfs's own compiler and Python."""
    inputs = sorted((tree / "csrc").glob("*")) + [tree / "CMakeLists.txt",
                                                   tree / "pybpfmem/_build_core.py"]
    h = hashlib.sha256()
    for p in inputs:
        h.update(p.name.encode() + p.read_bytes())
    out = CACHE / "core" / h.hexdigest()[:16]
    built = list(out.glob("_core*.so"))
    if built:
        return built[0]
    log("building the C core in the rootfs")
    work = ROOTFS / "tmp/pbm-core"
    shutil.rmtree(work, ignore_errors=True)
    try:
        (work / "pybpfmem").mkdir(parents=True)
        shutil.copytree(tree / "csrc", work / "csrc")
        shutil.copy(tree / "CMakeLists.txt", work)
        shutil.copy(tree / "pybpfmem/_build_core.py", work / "pybpfmem")
        chroot = ["chroot", str(ROOTFS)]
        run([*chroot, "cmake", "-S", "/tmp/pbm-core", "-B", "/tmp/pbm-core/build", "-G", "Ninja",
             "-DPython_EXECUTABLE=/opt/venv/bin/python"], stdout=subprocess.DEVNULL)
        run([*chroot, "cmake", "--build", "/tmp/pbm-core/build", "--target", "_core"],
            stdout=subprocess.DEVNULL)
        out.mkdir(parents=True, exist_ok=True)
        so = next((work / "build").glob("_core*.so"))
        shutil.copy(so, out)
        return out / so.name
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ one run
def accel_args(accel: str) -> tuple[str, list[str]]:
    """KVM only with a hardware-virtualization backend (kvm_intel / kvm_amd): other
    KVM providers (e.g. kvm_pvm, which runs only PVM-aware guests) hang a stock
    Debian kernel right after its decompressor, so "auto" takes TCG there."""
    if accel == "auto":
        hw = any(Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd"))
        accel = "kvm" if hw and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"
    if accel == "kvm":
        return accel, ["-accel", "kvm", "-cpu", "host"]
    return accel, ["-accel", "tcg,thread=multi", "-cpu", "max"]


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: qemu gets SIGKILL if this script dies without cleaning up
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def boot(kdir: Path, share: Path, mode: str, accel: list[str], timeout: float,
         mem: str, cpus: int) -> float:
    """Run the VM until it powers off; returns the wall time."""
    append = (f"console=ttyS0 root=/dev/vda rw fsck.mode=skip init=/sbin/pybpfmem-init "
              f"panic=-1 pbm.cgroup={mode}")
    cmd = ["qemu-system-x86_64", *accel, "-m", mem, "-smp", str(cpus), "-no-reboot",
           "-display", "none", "-monitor", "none", "-nic", "none",
           "-serial", f"file:{share / 'out/console.log'}",
           "-kernel", str(kdir / "vmlinuz"), "-initrd", str(kdir / "initrd.img"),
           "-append", append,
           "-drive", f"file={IMAGE},format=raw,if=virtio,snapshot=on",
           "-virtfs", f"local,path={share},mount_tag=host,security_model=none,id=host"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_die_with_parent)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Error(f"timed out after {timeout:.0f} s; console tail:\n"
                    + _tail(share / "out/console.log")) from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise Error(f"qemu exited with {proc.returncode}")
    return time.monotonic() - t0


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no console output)"


def stage(share: Path, tree: Path, command: list[str], core: Path) -> None:
    """The share: src.tar (the tree without caches and builds, plus the C core), cmd, out/."""
    shutil.rmtree(share, ignore_errors=True)
    (share / "out").mkdir(parents=True)

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if any(fnmatch.fnmatch(p, pat) for p in parts for pat in EXCLUDE) else info
    with tarfile.open(share / "src.tar", "w") as tar:
        tar.add(tree, arcname=".", filter=keep)
        tar.add(core, arcname=f"pybpfmem/{core.name}")
    # one exec: no shell stays behind in the command's cgroup (init.sh)
    (share / "cmd").write_text("exec " + shlex.join(command) + "\n")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", required=True, help="a linux-image .deb or a version")
    ap.add_argument("--cgroup", choices=("v1", "v2", "v2-root"), default="v1")
    ap.add_argument("--timeout", type=float, default=2400, help="seconds for boot + command")
    ap.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    ap.add_argument("--mem", default="2G")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--tree", type=Path, default=TREE,
                    help="the source tree copied into the guest (default: this one)")
    ap.add_argument("--save", metavar="PREFIX",
                    help="keep PREFIX.out (stdout), .err, .console.log and .meta.json")
    ap.add_argument("command", nargs="+", help="the command to run in the guest (after --)")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so qemu and the share are cleaned up
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        deb = find_deb(args.kernel)
        ensure_rootfs()
        kdir, release = ensure_kernel(deb)
        ensure_image()
        core = ensure_core(args.tree.resolve())
        accel, accel_argv = accel_args(args.accel)
        share = CACHE / "runs" / f"{release}-{args.cgroup}"
        stage(share, args.tree.resolve(), args.command, core)
        log(f"booting {release} ({deb.name}), cgroup {args.cgroup}, {accel}, "
            f"{args.cpus} vCPUs, {args.mem}")
        wall = boot(kdir, share, args.cgroup, accel_argv, args.timeout, args.mem, args.cpus)
    except Error as e:
        log(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        log("interrupted; the VM is stopped")
        return 130
    out = share / "out"
    times = dict(ln.split() for ln in _read(out / "times").splitlines() if ln.strip())
    rc_text = _read(out / "rc").strip()
    meta = {"kernel": release, "deb": deb.name, "cgroup": args.cgroup, "accel": accel,
            "cpus": args.cpus, "mem": args.mem, "wall_s": round(wall, 1),
            "guest_times_s": {k: float(v) for k, v in times.items()},
            "rc": int(rc_text) if rc_text else None,
            "setup_error": _read(out / "setup_error").strip() or None}
    if args.save:
        prefix = Path(args.save)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for name, suffix in (("stdout", ".out"), ("stderr", ".err"), ("console.log", ".console.log")):
            if (out / name).exists():
                shutil.copy(out / name, f"{prefix}{suffix}")
        Path(f"{prefix}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    else:
        sys.stdout.write(_read(out / "stdout"))
        sys.stderr.write(_read(out / "stderr"))
    log(f"{release} {args.cgroup}: exit {meta['rc']}, wall {wall:.0f} s, "
        f"guest boot {meta['guest_times_s'].get('boot_s', '?')} s")
    if meta["rc"] is None:
        log("the guest reported no exit code; console tail:\n" + _tail(out / "console.log"))
        return 2
    if meta["setup_error"]:
        log(f"guest setup failed: {meta['setup_error']}")
    return meta["rc"]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

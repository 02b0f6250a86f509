"""The cgroup v2 driver's placement rules on a fake cgroup2 tree that enforces the
kernel's: a cgroup's memory.* files exist only when its parent enables +memory in
its own cgroup.subtree_control (cgroup_apply_control()), and a non-root cgroup that
enables a controller for its children may hold no process, nor get one (the
no-internal-process rule: cgroup_vet_subtree_control_enable(),
cgroup_migrate_vet_dst(), kernel/cgroup/cgroup.c).  Runs anywhere (no kernel)."""
import errno
import os

import pytest

from pybpfmem.live import cgroupfs, session as S

ME = os.getpid()


class FakeCgroup2:
    """A cgroup2 hierarchy in a directory: control files are plain files, every
    write goes through ``write`` (the kernel's rules), processes are pids in
    cgroup.procs, and /proc/self/cgroup follows where this process is."""

    def __init__(self, root: str, own: str, others: tuple[int, ...] = ()) -> None:
        self.root = root
        self.where = {ME: own}
        os.mkdir(root)
        self._populate(root, parent_memory=True)
        self._put(root, "cgroup.subtree_control", "memory")
        path = root
        for part in own.strip("/").split("/") if own != "/" else []:
            path = os.path.join(path, part)
            self.mkdir(path)
            self._put(os.path.dirname(path), "cgroup.subtree_control", "memory")
        # own's parent delegates memory; own itself does not (yet), unless it is the root
        if own != "/":
            self._put(self.path(own), "cgroup.subtree_control", "")
        self._put(self.path(own), "cgroup.procs", " ".join(map(str, (ME,) + others)))
        for pid in others:
            self.where[pid] = own

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel.lstrip("/"))

    def rel(self, path: str) -> str:
        return "/" + os.path.relpath(path, self.root).replace(".", "") if path != self.root else "/"

    @staticmethod
    def _get(d: str, name: str) -> str:
        with open(os.path.join(d, name)) as f:
            return f.read()

    @staticmethod
    def _put(d: str, name: str, text: str) -> None:
        with open(os.path.join(d, name), "w") as f:
            f.write(text)

    def _populate(self, d: str, parent_memory: bool) -> None:
        self._put(d, "cgroup.procs", "")
        self._put(d, "cgroup.subtree_control", "")
        self._put(d, "cgroup.controllers", "memory" if parent_memory else "")
        if parent_memory:
            self._put(d, "memory.current", "0\n")
            self._put(d, "memory.high", "max\n")
            self._put(d, "memory.stat", "anon 0\nkernel 0\npgfault 0\n")

    def memory_files(self, d: str) -> bool:
        return os.path.exists(os.path.join(d, "memory.current"))

    def delegates(self, d: str) -> bool:
        return "memory" in self._get(d, "cgroup.subtree_control").split()

    def procs(self, d: str) -> list[int]:
        return [int(x) for x in self._get(d, "cgroup.procs").split()]

    # -- the kernel's side ------------------------------------------------------------
    def mkdir(self, path: str, mode: int = 0o777) -> None:
        if not path.startswith(self.root):
            return REAL_MKDIR(path, mode)
        REAL_MKDIR(path)
        self._populate(path, self.delegates(os.path.dirname(path)))

    def rmdir(self, path: str) -> None:
        if not path.startswith(self.root):
            return REAL_RMDIR(path)
        if self.procs(path):
            raise OSError(errno.EBUSY, "has tasks", path)
        if any(os.path.isdir(os.path.join(path, x)) for x in os.listdir(path)):
            raise OSError(errno.ENOTEMPTY, "not empty", path)
        for x in os.listdir(path):
            os.unlink(os.path.join(path, x))
        REAL_RMDIR(path)

    def write(self, path: str, value: str) -> None:
        d, name = os.path.split(path)
        if name == "cgroup.subtree_control":
            if value == "+memory":
                if "memory" not in self._get(d, "cgroup.controllers").split():
                    raise OSError(errno.ENOENT, "controller not available")
                if d != self.root and self.procs(d):
                    raise OSError(errno.EBUSY, "no internal process")
                self._put(d, name, "memory")
                for x in os.listdir(d):
                    c = os.path.join(d, x)
                    if os.path.isdir(c):
                        self._populate(c, True)
            elif value == "-memory":
                for x in os.listdir(d):
                    c = os.path.join(d, x)
                    if os.path.isdir(c) and self.delegates(c):
                        raise OSError(errno.EBUSY, "a child delegates memory")
                self._put(d, name, "")
            return
        if name == "cgroup.procs":
            pid = int(value)
            if d != self.root and self.delegates(d):
                raise OSError(errno.EBUSY, "no internal process")
            old = self.path(self.where[pid])
            self._put(old, name, " ".join(str(p) for p in self.procs(old) if p != pid))
            self._put(d, name, " ".join(map(str, self.procs(d) + [pid])))
            self.where[pid] = self.rel(d)
            return
        if not os.path.exists(path):
            raise OSError(errno.ENOENT, "no such control file", path)
        self._put(d, name, value)

    def own_memory_cgroup(self, proc_cgroup: str = "") -> tuple[int, str]:
        return 2, self.where[ME]


REAL_MKDIR, REAL_RMDIR = os.mkdir, os.rmdir
#: taken at import, before conftest's guard replaces it: on the fake tree making a
#: scratch cgroup does not reach the live kernel, so the guard is lifted there
REAL_CREATE_CASE = cgroupfs.CgroupDriver.create_case


@pytest.fixture
def fake(tmp_path, monkeypatch):
    def make(own: str = "/vm", others: tuple[int, ...] = ()) -> FakeCgroup2:
        f = FakeCgroup2(str(tmp_path / "cg"), own, others)
        monkeypatch.setattr(cgroupfs, "_write", f.write)
        monkeypatch.setattr(cgroupfs, "own_memory_cgroup", f.own_memory_cgroup)
        monkeypatch.setattr(cgroupfs, "find_mount", lambda version: f.root)
        monkeypatch.setattr(os, "mkdir", f.mkdir)
        monkeypatch.setattr(os, "rmdir", f.rmdir)
        monkeypatch.setattr(cgroupfs.CgroupDriver, "create_case", REAL_CREATE_CASE)
        return f
    return make


def test_alone_in_own_cgroup_moves_into_a_leaf_and_delegates(fake):
    f = fake("/vm")
    d = cgroupfs.detect()
    assert d.own == f.path("/vm") and d.delegation_problem() is None
    case = d.create_case()
    a = case.mkchild("A")
    home = case.mkchild("_home")
    # own delegates memory, this process left it for its own leaf
    assert f.delegates(d.own) and f.procs(d.own) == []
    assert f.where[ME] == f"/vm/pybpfmem-{ME}-self" and d.parking() == d.self_leaf
    # the case root delegates (it has children) and holds no process; leaves do not
    assert f.memory_files(case.path) and f.delegates(case.path)
    for leaf in (a, home):
        assert f.memory_files(leaf.path) and not f.delegates(leaf.path)
    # a second driver of this process finds the same own cgroup (the leaf's parent)
    assert cgroupfs.detect().own == d.own
    # a process can enter a leaf (no-internal-process rule holds), not the case root
    a.move(ME)
    assert f.procs(a.path) == [ME]
    with pytest.raises(OSError) as ei:
        case.move(ME)
    assert ei.value.errno == errno.EBUSY
    # clean-up: every case cgroup goes (this process moved back out), then the
    # delegation is undone: -memory, back into own, the leaf removed
    d.cleanup()
    assert sorted(os.listdir(d.own)) == ["cgroup.controllers", "cgroup.procs",
                                         "cgroup.subtree_control", "memory.current",
                                         "memory.high", "memory.stat"]
    assert not f.delegates(d.own) and f.where[ME] == "/vm" and f.procs(d.own) == [ME]


def test_other_processes_in_own_cgroup_refuse_with_the_reason(fake):
    f = fake("/vm", others=(4242,))
    d = cgroupfs.detect()
    why = d.delegation_problem()
    assert why is not None and "4242" in why and "no-internal-process" in why
    with pytest.raises(OSError) as ei:
        d.create_case()
    assert ei.value.errno == errno.EBUSY and "4242" in str(ei.value)
    # nothing was changed: no leaf, no delegation, this process where it was
    assert not f.delegates(d.own) and f.where[ME] == "/vm" and d.leftovers() == []


def test_own_cgroup_that_already_delegates_is_used_as_it_is(fake):
    f = fake("/vm")
    # an empty delegated cgroup (this process elsewhere would be the usual case; here
    # the rule only needs +memory already there)
    f.write(f.path("/vm/cgroup.procs"), str(ME))   # no-op move
    f._put(f.path("/vm"), "cgroup.procs", "")
    f._put(f.path("/vm"), "cgroup.subtree_control", "memory")
    d = cgroupfs.detect()
    c = d.create_case()
    assert f.memory_files(c.path) and not os.path.exists(d.self_leaf)
    d.cleanup()
    assert f.delegates(d.own)     # not ours to undo


def test_root_cgroup_without_memory_delegated_is_refused_not_changed(fake):
    f = fake("/")
    f._put(f.root, "cgroup.subtree_control", "")
    d = cgroupfs.detect()
    assert "root" in d.delegation_problem()
    with pytest.raises(OSError):
        d.create_case()
    assert not f.delegates(f.root)


def test_root_cgroup_with_memory_holds_processes_and_cases(fake):
    f = fake("/")     # the root is exempt from the no-internal-process rule
    d = cgroupfs.detect()
    assert d.delegation_problem() is None
    c = d.create_case()
    a = c.mkchild("A")
    assert f.memory_files(a.path) and f.where[ME] == "/"
    d.cleanup()
    assert not os.path.exists(c.path)


def test_kmem_is_the_kernel_stat_and_refused_without_it(fake):
    f = fake("/vm")
    d = cgroupfs.detect()
    a = d.create_case().mkchild("A")
    f._put(a.path, "memory.stat", "anon 0\nkernel 73728\n")
    assert a.kmem() == 73728 and a.counters() == {"usage": 0, "kmem": 73728}
    # v2 before 5.18 (memory_stats[] of 5.10: no "kernel")
    f._put(a.path, "memory.stat", "anon 0\nfile 0\nkernel_stack 0\nslab 0\n")
    with pytest.raises(cgroupfs.KmemUnavailable) as ei:
        a.kmem()
    assert ei.value.errno == errno.ENOENT and "5.18" in str(ei.value)
    assert a.counters() == {"usage": 0, "kmem": None} and not a.has_kmem()
    d.cleanup()


def test_v2_drain_writes_memory_high_zero_then_puts_it_back(fake, monkeypatch):
    f = fake("/vm")
    d = cgroupfs.detect()
    a = d.create_case().mkchild("A")
    f._put(a.path, "memory.high", "1048576\n")
    writes = []
    real = f.write

    def spy(path, value):
        if path.endswith("memory.high"):
            writes.append(value)
        real(path, value)
    monkeypatch.setattr(cgroupfs, "_write", spy)
    a.drain(pause=0)
    assert writes == ["0", "1048576"] * 2
    assert a.read("memory.high") == "1048576"
    d.cleanup()


def test_sweep_takes_a_dead_run_s_self_leaf(fake):
    fake("/vm")
    d = cgroupfs.detect()
    dead = 999_999_999          # no such pid
    for name in (f"pybpfmem-{dead}-self", f"pybpfmem-{dead}-3", f"pybpfmem-{ME}-self"):
        os.mkdir(os.path.join(d.own, name))
    assert sorted(os.path.basename(p) for p in S.stale_scratch(d)) == [
        f"pybpfmem-{dead}-3", f"pybpfmem-{dead}-self"]

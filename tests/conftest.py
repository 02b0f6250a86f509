"""The `live` marker: a test that uses the running kernel (bpf(), cgroupfs, its BTF)
carries @pytest.mark.live, so `pytest -m live` runs exactly those and `-m "not live"`
none of them.  Where the kernel refuses (not root, no memory controller, no bpf():
pybpfmem.live.runner.refusal_reason), every live test is skipped with that reason;
``@pytest.mark.live(privileged=False)`` marks one that only reads the kernel and
runs anyway.  A test without the marker that calls bpf() or makes a scratch cgroup
fails, naming the marker, so none can be forgotten.  (Opening a LiveSession as root
sweeps the scratch cgroups of dead runs: a clean-up, not a use of the kernel.)"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    privileged = [i for i in items if (m := i.get_closest_marker("live")) and m.kwargs.get("privileged", True)]
    if not privileged:
        return
    from pybpfmem.live.runner import refusal_reason

    reason = refusal_reason()
    if reason is not None:
        for item in privileged:
            item.add_marker(pytest.mark.skip(reason=f"the live kernel refuses: {reason}"))


@pytest.fixture(autouse=True)
def _live_kernel_needs_the_marker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("live"):
        return
    from pybpfmem.live import bpf, cgroupfs

    def refuse(what: str):  # type: ignore[no-untyped-def]
        def call(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError(f"{request.node.nodeid} uses the live kernel ({what}) without "
                               "@pytest.mark.live")
        return call

    monkeypatch.setattr(bpf, "sys_bpf", refuse("the bpf() syscall"))
    monkeypatch.setattr(bpf, "_sys_bpf_buf", refuse("the bpf() syscall"))
    monkeypatch.setattr(cgroupfs.CgroupDriver, "create_case", refuse("a scratch cgroup"))

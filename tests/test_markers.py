"""The `live` marker (tests/conftest.py): a test without it cannot reach the live
kernel, so every test that does must carry it, and `pytest -m live` runs them all."""

from __future__ import annotations

import pytest


def test_an_unmarked_test_cannot_call_bpf():
    from pybpfmem.live import bpf

    with pytest.raises(RuntimeError, match=r"test_an_unmarked_test_cannot_call_bpf uses the live kernel "
                                           r"\(the bpf\(\) syscall\) without @pytest.mark.live"):
        bpf.map_create("ARRAY", 4, 4, 1)


def test_an_unmarked_test_cannot_make_a_scratch_cgroup():
    from pybpfmem.live import cgroupfs

    with pytest.raises(RuntimeError, match="a scratch cgroup"):
        cgroupfs.CgroupDriver.create_case(None)  # type: ignore[arg-type]


@pytest.mark.live
def test_a_live_test_reaches_bpf():
    # the refusal (not root, no bpf()) skips it before it runs; here the call is real
    from pybpfmem.live import bpf

    bpf.map_create("ARRAY", 4, 4, 1).close()

"""pybpfmem.live: the ground truth — the running kernel's bpf() and memory cgroups.

Modules: ``bpf`` (bpf(2) via ctypes), ``cgroupfs`` (v1/v2 memory-cgroup drivers),
``runner`` (scenarios in a forked child inside a case cgroup) and ``verify`` (model vs
kernel).  Host struct sizes come from BTF through ``pybpfmem.btf``.
"""

"""pybpfmem.live: the ground truth — the running kernel's bpf() and memory cgroups.

Modules: ``bpf`` (bpf(2) via ctypes), ``cgroupfs`` (v1/v2 memory-cgroup drivers),
``btf`` (pure-Python BTF parser for host struct sizes), ``runner`` (scenarios in a
forked child inside a case cgroup) and ``verify`` (model vs kernel).
"""

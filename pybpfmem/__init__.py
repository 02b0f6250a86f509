"""pybpfmem: a userspace model of memcg accounting of BPF maps and programs."""

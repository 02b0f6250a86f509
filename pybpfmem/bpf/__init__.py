"""The BPF model: bpf() commands, map families, programs and both accounting regimes."""

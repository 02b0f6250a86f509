"""bpf() syscall surface of a Task (placeholder, filled by the BPF model work)."""


class BpfTaskMixin:
    """Methods a Task gets for the bpf() syscall surface."""

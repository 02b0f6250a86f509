"""BPF state and program-side helpers of a System (placeholder, filled by the BPF model work)."""


class BpfSystemMixin:
    """Methods a System gets for BPF objects and helpers."""

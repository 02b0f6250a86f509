"""Hierarchical page counter: the reference model of mm/page_counter.c.

Plain Python ints, no atomics: the reference runs one operation at a time,
so the racy parts of the kernel (watermark, failcnt) are exact here.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(eq=False)
class PageCounter:
    """One level of a hierarchical counter (struct page_counter)."""

    max: int
    parent: PageCounter | None = None
    protection_support: bool = True   # only memcg->memory tracks min/low (current kernel)
    track_failcnt: bool = True        # current kernel: failcnt only for cgroup v1
    clamp_underflow: bool = True      # v5.13+: a negative result is clamped to 0
    usage: int = 0
    min: int = 0
    low: int = 0
    high: int = 0
    min_usage: int = 0
    low_usage: int = 0
    children_min_usage: int = 0
    children_low_usage: int = 0
    watermark: int = 0
    local_watermark: int = 0
    failcnt: int = 0
    underflows: list[int] = field(default_factory=list)  # every negative result seen (a bug)

    def chain(self) -> list[PageCounter]:
        """This counter and its ancestors, leaf first."""
        out: list[PageCounter] = []
        c: PageCounter | None = self
        while c is not None:
            out.append(c)
            c = c.parent
        return out

    # mirrors propagate_protected_usage(), mm/page_counter.c
    def _propagate(self, usage: int) -> None:
        if self.parent is None:
            return
        prot = min(usage, self.min)
        if prot != self.min_usage:
            self.parent.children_min_usage += prot - self.min_usage
            self.min_usage = prot
        prot = min(usage, self.low)
        if prot != self.low_usage:
            self.parent.children_low_usage += prot - self.low_usage
            self.low_usage = prot

    def _after_add(self, leaf: PageCounter) -> None:
        if leaf.protection_support:
            self._propagate(self.usage)
        # mirrors the watermark update of page_counter_charge()
        if self.usage > self.local_watermark:
            self.local_watermark = self.usage
        if self.usage > self.watermark:
            self.watermark = self.usage

    # mirrors page_counter_charge(): unconditional, may exceed max
    def charge(self, nr: int) -> None:
        for c in self.chain():
            c.usage += nr
            c._after_add(self)

    # mirrors page_counter_try_charge(): returns the first level (leaf to root) that
    # would go above its max, having undone the lower levels; None on success
    def try_charge(self, nr: int) -> PageCounter | None:
        done: list[PageCounter] = []
        for c in self.chain():
            if c.usage + nr > c.max:
                if self.track_failcnt:
                    c.failcnt += 1
                for d in done:
                    d.cancel(nr)
                return c
            c.usage += nr
            c._after_add(self)
            done.append(c)
        return None

    # mirrors page_counter_cancel(): one level
    def cancel(self, nr: int) -> None:
        new = self.usage - nr
        if new < 0:
            self.underflows.append(new)
            if self.clamp_underflow:
                new = 0
        self.usage = new
        if self.protection_support:
            self._propagate(new)

    # mirrors page_counter_uncharge(): every level up to the root
    def uncharge(self, nr: int) -> None:
        for c in self.chain():
            c.cancel(nr)

    # mirrors page_counter_set_max(): -EBUSY (returned as False) when usage > new max
    def set_max(self, nr: int) -> bool:
        if self.usage > nr:
            return False
        self.max = nr
        return True

    # mirrors page_counter_set_min() / page_counter_set_low()
    def set_min(self, nr: int) -> None:
        self.min = nr
        for c in self.chain():
            c._propagate(c.usage)

    def set_low(self, nr: int) -> None:
        self.low = nr
        for c in self.chain():
            c._propagate(c.usage)

    # mirrors page_counter_reset_watermark()
    def reset_watermark(self) -> None:
        self.watermark = self.usage
        self.local_watermark = self.usage

/*
 * page_counter.c - hierarchical page counters, after mm/page_counter.c.
 *
 * All values are pages.  Counters are C11 atomics so charge paths running on
 * different threads (simulated cpus) can share them.  The racy plain stores
 * the kernel does for failcnt / watermarks are relaxed atomic stores here.
 *
 * Simplifications:
 *  - v5.11's try_charge also propagated the protected usage of the failing
 *    level with the over-limit value (removed ~v5.17); we never do that.
 *  - local_watermark (v6.12) is always kept; on older profiles nothing reads it.
 */
#include <limits.h>

#include "internal.h"

/* PAGE_COUNTER_MAX = LONG_MAX / PAGE_SIZE (include/linux/page_counter.h) */
long page_counter_max_pages(unsigned page_size)
{
    if (page_size == 0)
        return 0;
    return LONG_MAX / (long)page_size;
}

/* mirrors page_counter_init(), include/linux/page_counter.h */
void page_counter_init(struct page_counter *c, struct page_counter *parent, long max,
                       bool protection_support, bool track_failcnt)
{
    atomic_init(&c->usage, 0);
    atomic_init(&c->failcnt, 0);
    atomic_init(&c->emin, 0);
    atomic_init(&c->min_usage, 0);
    atomic_init(&c->children_min_usage, 0);
    atomic_init(&c->elow, 0);
    atomic_init(&c->low_usage, 0);
    atomic_init(&c->children_low_usage, 0);
    atomic_init(&c->watermark, 0);
    atomic_init(&c->local_watermark, 0);
    atomic_init(&c->min, 0);
    atomic_init(&c->low, 0);
    atomic_init(&c->high, 0);
    atomic_init(&c->max, max);
    atomic_init(&c->nr_underflows, 0);
    c->protection_support = protection_support;
    c->track_failcnt = track_failcnt;
    c->parent = parent;
}

static inline long min_long(long a, long b) { return a < b ? a : b; }

/* mirrors propagate_protected_usage(), mm/page_counter.c (current: exchange only on change) */
static void propagate_protected_usage(struct page_counter *c, long usage)
{
    long protected, old, delta;

    if (!c->parent)
        return;

    protected = min_long(usage, atomic_load_explicit(&c->min, memory_order_relaxed));
    old = atomic_load(&c->min_usage);
    if (protected != old) {
        old = atomic_exchange(&c->min_usage, protected);
        delta = protected - old;
        if (delta)
            atomic_fetch_add(&c->parent->children_min_usage, delta);
    }

    protected = min_long(usage, atomic_load_explicit(&c->low, memory_order_relaxed));
    old = atomic_load(&c->low_usage);
    if (protected != old) {
        old = atomic_exchange(&c->low_usage, protected);
        delta = protected - old;
        if (delta)
            atomic_fetch_add(&c->parent->children_low_usage, delta);
    }
}

/* the racy peak update of page_counter_charge()/try_charge() */
static inline void update_watermarks(struct page_counter *c, long new)
{
    if (new > atomic_load_explicit(&c->local_watermark, memory_order_relaxed)) {
        atomic_store_explicit(&c->local_watermark, new, memory_order_relaxed);
        if (new > atomic_load_explicit(&c->watermark, memory_order_relaxed))
            atomic_store_explicit(&c->watermark, new, memory_order_relaxed);
    }
}

/* mirrors page_counter_cancel(), mm/page_counter.c.  clamp: v5.13+ resets a
   negative usage to 0 after the underflow warning; v5.11 leaves it negative. */
static void page_counter_cancel(struct page_counter *c, unsigned long nr_pages, bool clamp)
{
    long new = atomic_fetch_sub(&c->usage, (long)nr_pages) - (long)nr_pages;

    if (new < 0) {
        atomic_fetch_add(&c->nr_underflows, 1);   /* the WARN_ONCE */
        if (clamp) {
            new = 0;
            atomic_store(&c->usage, new);
        }
    }
    if (c->protection_support)
        propagate_protected_usage(c, new);
}

/* mirrors page_counter_charge(): unconditional, ignores max */
void page_counter_charge(struct page_counter *counter, unsigned long nr_pages)
{
    bool protection = counter->protection_support;

    for (struct page_counter *c = counter; c; c = c->parent) {
        long new = atomic_fetch_add(&c->usage, (long)nr_pages) + (long)nr_pages;

        if (protection)
            propagate_protected_usage(c, new);
        update_watermarks(c, new);
    }
}

/* mirrors page_counter_try_charge(): optimistic add at each level, back out
   at the first level over its max, then cancel the levels below it.  failcnt
   is counted only at the failing level and only if the leaf tracks it. */
bool page_counter_try_charge(struct page_counter *counter, unsigned long nr_pages,
                             struct page_counter **fail)
{
    bool protection = counter->protection_support;
    bool track_failcnt = counter->track_failcnt;
    struct page_counter *c;

    for (c = counter; c; c = c->parent) {
        long new = atomic_fetch_add(&c->usage, (long)nr_pages) + (long)nr_pages;

        if (new > atomic_load(&c->max)) {
            atomic_fetch_sub(&c->usage, (long)nr_pages);
            if (track_failcnt)
                atomic_fetch_add_explicit(&c->failcnt, 1, memory_order_relaxed);
            *fail = c;
            goto failed;
        }
        if (protection)
            propagate_protected_usage(c, new);
        update_watermarks(c, new);
    }
    return true;

failed:
    for (struct page_counter *l = counter; l != *fail; l = l->parent)
        page_counter_cancel(l, nr_pages, false);
    return false;
}

/* mirrors page_counter_uncharge(): cancel at every level up to the root */
void page_counter_uncharge(struct page_counter *counter, unsigned long nr_pages, bool clamp)
{
    for (struct page_counter *c = counter; c; c = c->parent)
        page_counter_cancel(c, nr_pages, clamp);
}

/* mirrors page_counter_set_max(): -EBUSY if usage is above the new limit; the
   xchg + re-read loop catches a racing charge (current: raising always wins). */
int page_counter_set_max(struct page_counter *c, unsigned long nr_pages)
{
    for (;;) {
        long usage = atomic_load(&c->usage);
        long old;

        if (usage > (long)nr_pages)
            return -EBUSY;
        old = atomic_exchange(&c->max, (long)nr_pages);
        if (atomic_load(&c->usage) <= usage || (long)nr_pages >= old)
            return 0;
        atomic_store(&c->max, old);
    }
}

/* mirrors page_counter_set_min(): store, then propagate up the tree */
void page_counter_set_min(struct page_counter *counter, unsigned long nr_pages)
{
    atomic_store(&counter->min, (long)nr_pages);
    for (struct page_counter *c = counter; c; c = c->parent)
        propagate_protected_usage(c, atomic_load(&c->usage));
}

/* mirrors page_counter_set_low() */
void page_counter_set_low(struct page_counter *counter, unsigned long nr_pages)
{
    atomic_store(&counter->low, (long)nr_pages);
    for (struct page_counter *c = counter; c; c = c->parent)
        propagate_protected_usage(c, atomic_load(&c->usage));
}

/* mirrors page_counter_set_high(): a plain store */
void page_counter_set_high(struct page_counter *c, unsigned long nr_pages)
{
    atomic_store(&c->high, (long)nr_pages);
}

/* mirrors page_counter_reset_watermark(): both peaks restart at usage */
void page_counter_reset_watermark(struct page_counter *c)
{
    long usage = atomic_load(&c->usage);

    atomic_store(&c->watermark, usage);
    atomic_store(&c->local_watermark, usage);
}

/* mirrors effective_protection(), mm/page_counter.c (v5.11: mm/memcontrol.c):
   a child's share of the protection its parent affords.  Claimed and used
   protection (min(usage, setting)) is scaled down when the siblings together
   claim more than the parent's effective value; with recursive protection
   (the memory_recursiveprot mount option) the parent's unclaimed protection
   is also handed out in proportion to each child's unprotected usage. */
static unsigned long effective_protection(unsigned long usage, unsigned long parent_usage,
                                          unsigned long setting, unsigned long parent_effective,
                                          unsigned long siblings_protected, bool recursive)
{
    unsigned long protected = usage < setting ? usage : setting;
    unsigned long ep;

    if (siblings_protected > parent_effective)
        return protected * parent_effective / siblings_protected;
    ep = protected;
    if (!recursive)
        return ep;
    if (parent_effective > siblings_protected && parent_usage > siblings_protected && usage > protected) {
        unsigned long unclaimed = parent_effective - siblings_protected;
        unclaimed *= usage - protected;      /* unsigned long, wrapping as the kernel's */
        unclaimed /= parent_usage - siblings_protected;
        ep += unclaimed;
    }
    return ep;
}

/* mirrors page_counter_calculate_protection() (v5.11:
   mem_cgroup_calculate_protection()): emin / elow of counter for a reclaim
   of root's subtree, from its parent's effective values.  Stateful: the walk
   is top-down, so the parent's were computed first.  The reclaim target
   itself keeps stale values (its protection is not applied to itself), an
   empty counter keeps its old ones, and a child of the target takes its own
   settings as they are. */
void page_counter_calculate_protection(struct page_counter *root, struct page_counter *counter,
                                       bool recursive)
{
    struct page_counter *parent = counter->parent;
    unsigned long usage, parent_usage;

    if (root == counter)
        return;
    usage = (unsigned long)atomic_load(&counter->usage);
    if (!usage || !parent)
        return;
    if (parent == root) {
        atomic_store(&counter->emin, atomic_load(&counter->min));
        atomic_store(&counter->elow, atomic_load(&counter->low));
        return;
    }
    parent_usage = (unsigned long)atomic_load(&parent->usage);
    atomic_store(&counter->emin,
                 (long)effective_protection(usage, parent_usage, (unsigned long)atomic_load(&counter->min),
                                            (unsigned long)atomic_load(&parent->emin),
                                            (unsigned long)atomic_load(&parent->children_min_usage),
                                            recursive));
    atomic_store(&counter->elow,
                 (long)effective_protection(usage, parent_usage, (unsigned long)atomic_load(&counter->low),
                                            (unsigned long)atomic_load(&parent->elow),
                                            (unsigned long)atomic_load(&parent->children_low_usage),
                                            recursive));
}

"""Bob Jenkins' lookup3 hash as the kernel has it (include/linux/jhash.h).

The hash maps pick a key's bucket with it (htab_map_hash(), kernel/bpf/hashtab.c)
and the bloom filter its bits (hash(), kernel/bpf/bloom_filter.c); both seed it
with a random u32 unless the map was created with BPF_F_ZERO_SEED, so with that
flag the model lands every key in the kernel's bucket and sets the kernel's bits.
"""

from __future__ import annotations

JHASH_INITVAL = 0xDEADBEEF
_M = 0xFFFFFFFF


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    """__jhash_mix()."""
    a = (a - c) & _M; a ^= _rol(c, 4); c = (c + b) & _M
    b = (b - a) & _M; b ^= _rol(a, 6); a = (a + c) & _M
    c = (c - b) & _M; c ^= _rol(b, 8); b = (b + a) & _M
    a = (a - c) & _M; a ^= _rol(c, 16); c = (c + b) & _M
    b = (b - a) & _M; b ^= _rol(a, 19); a = (a + c) & _M
    c = (c - b) & _M; c ^= _rol(b, 4); b = (b + a) & _M
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    """__jhash_final(): returns c."""
    c ^= b; c = (c - _rol(b, 14)) & _M
    a ^= c; a = (a - _rol(c, 11)) & _M
    b ^= a; b = (b - _rol(a, 25)) & _M
    c ^= b; c = (c - _rol(b, 16)) & _M
    a ^= c; a = (a - _rol(c, 4)) & _M
    b ^= a; b = (b - _rol(a, 14)) & _M
    c ^= b; c = (c - _rol(b, 24)) & _M
    return c


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def jhash(key: bytes, initval: int = 0) -> int:
    """jhash(): any byte string (little-endian word loads, as on x86)."""
    n = len(key)
    a = b = c = (JHASH_INITVAL + n + initval) & _M
    i = 0
    while n > 12:
        w0, w1, w2 = _words(key[i:i + 12])
        a, b, c = _mix((a + w0) & _M, (b + w1) & _M, (c + w2) & _M)
        n -= 12
        i += 12
    if n == 0:
        return c
    tail = key[i:i + n].ljust(12, b"\0")
    w0, w1, w2 = _words(tail)
    return _final((a + w0) & _M, (b + w1) & _M, (c + w2) & _M)


def jhash2(key: bytes, initval: int = 0) -> int:
    """jhash2(): a key of whole u32 words (len(key) % 4 == 0)."""
    words = _words(key)
    n = len(words)
    a = b = c = (JHASH_INITVAL + (n << 2) + initval) & _M
    i = 0
    while n > 3:
        a, b, c = _mix((a + words[i]) & _M, (b + words[i + 1]) & _M, (c + words[i + 2]) & _M)
        n -= 3
        i += 3
    if n == 0:
        return c
    rest = words[i:i + n] + [0] * (3 - n)
    return _final((a + rest[0]) & _M, (b + rest[1]) & _M, (c + rest[2]) & _M)


def jhash_any(key: bytes, initval: int = 0) -> int:
    """jhash2() for keys of whole words, jhash() otherwise: the choice both
    htab_map_hash() and the bloom filter's hash() make."""
    return jhash2(key, initval) if len(key) % 4 == 0 else jhash(key, initval)

"""Guest side of tools/kernel-vm: ``pybpfmem verify`` with the running kernel's profile.

    PYTHONPATH=. python tools/kernel-vm/guest_verify.py [--fallback 6.18] VERIFY-ARGS...

``verify`` builds its model with host_system()'s default profile (6.18) and has
no --profile option yet.  Until it has, this wrapper binds that profile to the
one named after the running kernel (uname -r "5.10.0-46-amd64" -> "5.10") or,
when the project has no profile of that version, to --fallback.  The choice is
printed to stderr as "kernel-vm: profile NAME".
"""
from __future__ import annotations

import functools
import platform
import sys

from pybpfmem.live import host, verify
from pybpfmem.profiles import profile_for_release


def profile_for(release: str, fallback: str) -> str:
    """The profile of the release's line (the registry's lookup table), else ``fallback``."""
    return profile_for_release(release) or fallback


def main(argv: list[str]) -> int:
    fallback = "6.18"
    if argv[:1] == ["--fallback"]:
        fallback, argv = argv[1], argv[2:]
    name = profile_for(platform.release(), fallback)
    print(f"kernel-vm: profile {name} (kernel {platform.release()})", file=sys.stderr)
    host.host_facts = functools.partial(host.host_facts, profile=name)
    host.host_system = functools.partial(host.host_system, profile=name)
    return verify.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Will a dataset fit in memory? Estimated before decoding, so a split too large for this machine is
one clear error naming the dataset, the estimate and what is available, not a killed process."""
from __future__ import annotations

import os
from pathlib import Path

from augbench.data.errors import DataError


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_available() -> int | None:
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            n, size = os.sysconf(pages), os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            continue
        if n > 0 and size > 0:
            return n * size
    return None


def _cgroup_available() -> int | None:
    """What this process's memory cgroup (a container, a SLURM job) still allows; None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:
                return None
            return max(0, int(limit) - int(Path(usage_file).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_bytes() -> int | None:
    """Memory this process can still use: /proc/meminfo MemAvailable (else sysconf's free or
    physical pages), capped by a cgroup limit; None when nothing can tell."""
    found = [v for v in (_meminfo_available() or _sysconf_available(), _cgroup_available()) if v is not None]
    return min(found) if found else None


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**27 else f"{n / 2**20:.1f} MiB"


def check_fits(what: str, need: int, detail: str) -> None:
    """DataError when `need` bytes (`detail`: how that was estimated) exceed the available memory."""
    avail = available_bytes()
    if avail is not None and need > avail:
        raise DataError(f"{what}: loading it needs about {_gib(need)} of memory ({detail}) but only "
                        f"{_gib(avail)} is available on this machine; free memory, use a machine (or a job) "
                        f"with more, or a smaller split (subset= shrinks STL-10 before it is read; other data "
                        f"sets are loaded whole first)")

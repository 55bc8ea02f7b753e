"""How many CPUs this process may really use: the container's CPU limit, not the node's core count.

``os.cpu_count()`` counts the node's cores: a pod on a 64-core node with a 2-CPU limit would start 64
extraction workers and have them throttled (and, under a 1 GiB memory limit, killed). What limits a process:

* its CPU affinity (``os.sched_getaffinity``: ``taskset``, Kubernetes' static CPU manager, cpusets);
* its cgroup's CPU quota: cgroup v2 ``cpu.max`` (``"200000 100000"``: 2 CPUs; ``"max 100000"``: none) of
  its cgroup and every ancestor, or cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``. Kubernetes
  turns ``resources.limits.cpu`` into that quota; a fractional limit rounds up (1.5 CPUs: 2 workers).

The result is the smallest of these, at least 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def usable_cpus(*, cgroup_root: Path | str = "/sys/fs/cgroup", proc_cgroup: Path | str = "/proc/self/cgroup") -> int:
    """CPUs this process may use: affinity and cgroup quota, whichever is smaller; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    quota = cgroup_cpu_limit(Path(cgroup_root), Path(proc_cgroup))
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def cgroup_cpu_limit(root: Path, proc_cgroup: Path) -> float | None:
    """The CPU quota of this process's cgroups, in CPUs (1.5 for 150 ms per 100 ms); None when unlimited."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: <root>/<path>/cpu.max, and each ancestor's
            limits += [_v2_limit(folder / "cpu.max") for folder in _with_ancestors(root, path)]
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's own mount
            for mount in (root / controllers, root / "cpu", root / "cpu,cpuacct"):
                if mount.is_dir():
                    limits += [_v1_limit(folder) for folder in _with_ancestors(mount, path)]
                    break
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _with_ancestors(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder under ``mount`` and its ancestors up to ``mount``; in a container, whose cgroup
    namespace puts its own cgroup at the mount's root, the host path may not exist: then the mount alone."""
    parts = [part for part in path.split("/") if part]
    folders = [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    return [folder for folder in folders if folder.is_dir()] or [mount]


def _v2_limit(path: Path) -> float | None:
    try:
        quota, _, period = path.read_text().strip().partition(" ")
    except OSError:
        return None
    if quota == "max" or not quota:
        return None
    try:
        return int(quota) / int(period or 100_000)
    except ValueError:
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None

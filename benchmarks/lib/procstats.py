"""Per-process figures from /proc for benchmarks/serving/serve.py: CPU seconds, memory, child processes."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    """The resident memory of a process and of its children (the workers)."""
    return sum(memory_mb(p)["rss"] for p in [pid, *child_pids(pid)])


def memory_mb(pid: int) -> dict[str, float]:
    """RSS (every resident page, shared ones included), PSS (shared pages split among the processes
    that map them) and private memory (pages no other process maps: what this process adds)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0]) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"], "private": fields["Private_Clean"] + fields["Private_Dirty"]}


def child_pids(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return sorted(found)


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in [pid, *child_pids(pid)])

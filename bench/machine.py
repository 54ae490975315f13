"""What the benchmarks report about the machine they ran on."""

from __future__ import annotations

import os
from pathlib import Path


def steal_seconds() -> float:
    """CPU time the hypervisor took from this machine so far (/proc/stat, all CPUs), 0 where
    unknown: on a shared virtual machine it, not the scenario, moves single runs by 20-30 %."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0

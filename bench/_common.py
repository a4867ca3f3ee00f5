"""Shared helpers for the benchmarks: result lines and peak memory."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def report(name: str, value: float, unit: str, ratio: float | None = None) -> None:
    """Print `name  value  unit  ratio-to-limit` (ratio blank when there is no limit)."""
    ratio_text = f"{ratio:.2f}" if ratio is not None else "-"
    print(f"{name:<44} {value:>14.2f}  {unit:<10} {ratio_text}", flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_home() -> Path:
    home = Path(os.environ.get("SYNC_ASSETS_HOME", Path.cwd() / ".sync_assets" / "bench"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["SYNC_ASSETS_HOME"] = str(home)
    return home

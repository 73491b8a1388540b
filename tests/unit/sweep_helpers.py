"""Small inputs shared by the sweep and what-if unit tests (fast: a few jobs, 4 nodes)."""

from __future__ import annotations

from pathlib import Path

TINY_CLUSTER = Path(__file__).resolve().parent.parent / "fixtures" / "clusters" / "tiny.yaml"


def tiny_philly(path: Path, jobs: int = 40) -> Path:
    """A Philly-format trace that queues on the 32-GPU tiny cluster: sizes 1..16 GPUs, one
    arrival a minute, run times 10 min .. 3 h; no limits, so the seed draws them."""
    sizes = (1, 2, 4, 8, 16, 1, 3, 8)
    lines = ["timestamp,duration,num_gpus,gpu_time,cluster"]
    for i in range(jobs):
        minute = i
        duration = 600 + (i * 1297) % 10200
        gpus = sizes[i % len(sizes)]
        lines.append(f"2017-10-16 {minute // 60:02d}:{minute % 60:02d}:00,{duration},{gpus},"
                     f"{duration * gpus},vc{i % 3}")
    path.write_text("\n".join(lines) + "\n")
    return path


def grid_text(trace: Path, extra: str = "") -> str:
    return (f"name: tiny\npolicies: [slurm, kant]\nseeds: [0, 1]\ntraces: [{trace}]\n"
            f"clusters: [{TINY_CLUSTER}]\noverrides:\n  backfill.reservations: [1, 8]\n" + extra)

"""A toy training job for the ``training`` template: pure Python, no GPU.

It fits y = a*x + b to seeded synthetic data by stochastic gradient descent, one sample per
step, and sleeps ``--step-seconds`` per step to stand in for the work of a real step. Rank 0
(``NODE_RANK``, set by the template on each node) writes the checkpoint, a JSON file in
``--checkpoint-dir``: the step reached, the weights and the loss. A start with a checkpoint
there resumes from it, so a job requeued by the template's warning (or by kant's preemption)
goes on where it saved instead of starting over. Every ``--checkpoint-every`` steps it saves
(default: as often as ``KANT_CHECKPOINT_INTERVAL`` seconds, which the template exports from
its ``checkpoint_interval``, else every 50 steps). On the checkpoint signal (SIGUSR2, the
template's default ``checkpoint_signal``) or SIGTERM it saves and exits: 0 after USR2, 143
after TERM. It exits 0 when ``--steps`` are done.

    python3 -m kant_slurm.examples.toy_train --steps 600 --checkpoint-dir ckpt
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

TRUE_A, TRUE_B = 3.0, 2.0  # what the fit should find
CHECKPOINT = "toy-train.json"


def sample(step: int, seed: int) -> tuple[float, float]:
    """The training sample of ``step``: the same for every rank and every restart."""
    rng = random.Random(seed * 1_000_003 + step)
    x = rng.uniform(-1.0, 1.0)
    return x, TRUE_A * x + TRUE_B + rng.gauss(0.0, 0.1)


def load_checkpoint(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return {
            "step": int(state["step"]),
            "a": float(state["a"]),
            "b": float(state["b"]),
            "loss": None if state["loss"] is None else float(state["loss"]),
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"toy_train: checkpoint {path}: unreadable ({exc}); expected the JSON "
            f"this program writes (delete it to start over)"
        ) from None


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` whole or not at all (a temporary file renamed over the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m kant_slurm.examples.toy_train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--steps", type=int, default=600, help="steps in all (default 600)")
    parser.add_argument(
        "--step-seconds", type=float, default=0.1, help="seconds each step takes (default 0.1)"
    )
    parser.add_argument(
        "--checkpoint-dir",
        default=os.environ.get("KANT_CHECKPOINT_DIR", "ckpt"),
        help="where the checkpoint is (default $KANT_CHECKPOINT_DIR, else ckpt)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints (default: KANT_CHECKPOINT_INTERVAL "
        "seconds' worth, else 50)",
    )
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.step_seconds < 0 or args.lr <= 0:
        parser.error("--steps must be at least 1, --step-seconds at least 0, --lr above 0")
    every = args.checkpoint_every
    if every is None:
        interval = float(os.environ.get("KANT_CHECKPOINT_INTERVAL") or 0)
        every = (
            max(1, round(interval / args.step_seconds)) if interval and args.step_seconds else 50
        )
    if every < 1:
        parser.error("--checkpoint-every must be at least 1")

    rank = int(os.environ.get("NODE_RANK") or 0)
    job = os.environ.get("SLURM_JOB_ID", "-")
    path = Path(args.checkpoint_dir) / CHECKPOINT
    state = load_checkpoint(path)
    if state is None:
        state = {"step": 0, "a": 0.0, "b": 0.0, "loss": None}
        print(f"toy_train[job {job} rank {rank}]: starting at step 0 of {args.steps}", flush=True)
    else:
        print(
            f"toy_train[job {job} rank {rank}]: resumed from step {state['step']} of "
            f"{args.steps} ({path})",
            flush=True,
        )

    stop: list[int] = []
    signal.signal(signal.SIGUSR2, lambda signum, frame: stop.append(0))
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(143))

    def save(why: str) -> None:
        if rank == 0:
            save_checkpoint(path, state)
            loss = "-" if state["loss"] is None else f"{state['loss']:.4f}"
            print(
                f"toy_train[job {job} rank {rank}]: checkpoint at step {state['step']} "
                f"({why}), loss {loss}",
                flush=True,
            )

    while state["step"] < args.steps:
        if stop:
            save("signal")
            return stop[0]
        x, y = sample(state["step"], args.seed)
        error = state["a"] * x + state["b"] - y
        state["a"] -= args.lr * error * x
        state["b"] -= args.lr * error
        state["loss"] = error * error
        state["step"] += 1
        if state["step"] % every == 0 or state["step"] == args.steps:
            save(f"every {every} steps" if state["step"] < args.steps else "done")
        time.sleep(args.step_seconds)
    print(
        f"toy_train[job {job} rank {rank}]: done, {args.steps} steps: a={state['a']:.3f} "
        f"b={state['b']:.3f} (true {TRUE_A}, {TRUE_B})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

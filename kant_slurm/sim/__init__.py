"""Trace-driven simulator: replays real job traces through the real engine on a virtual cluster.

- :mod:`.traces`: Philly, SWF, openb, sacct and Alibaba DLRM inference readers -> a workload
  table
- :mod:`.mixed`: a training trace plus inference services, aligned in time (issue 8)
- :mod:`.timelimit`: seeded time-limit models for traces without limits
- :mod:`.cluster`: the strict YAML cluster spec -> Inventory
- :mod:`.simulator`: the discrete-event loop (no placement or ordering logic of its own;
  carries out preemptions with requeue, allocates CPUs)
- :mod:`.run`: replay under several policies and measure each (``kant-slurm simulate``)
"""

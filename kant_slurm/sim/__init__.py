"""Trace-driven simulator: replays real job traces through the real engine on a virtual cluster.

- the trace readers (Philly, SWF, openb, sacct, Alibaba DLRM inference -> a workload table) are
  :mod:`kant_slurm.formats.traces`
- :mod:`.mixed`: a training trace plus inference services, aligned in time (issue 8)
- :mod:`.timelimit`: seeded time-limit models for traces without limits
- :mod:`.cluster`: the strict YAML cluster spec -> Inventory
- :mod:`.workload`: a trace prepared for one cluster (job shapes, jobs no pool can hold dropped)
- :mod:`.simulator`: the discrete-event loop (no placement or ordering logic of its own;
  carries out preemptions with requeue, allocates CPUs)
- :mod:`.run`: replay under several policies and measure each (``kant-slurm simulate``)
"""

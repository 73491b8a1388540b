"""Trace-driven simulator: replays real job traces through the real engine on a virtual cluster.

- :mod:`.traces`: Philly, SWF, openb and sacct readers -> a workload table
- :mod:`.timelimit`: seeded time-limit models for traces without limits
- :mod:`.cluster`: the strict YAML cluster spec -> Inventory
- :mod:`.simulator`: the discrete-event loop (no placement or ordering logic of its own)
- :mod:`.run`: replay under several policies and measure each (``kant-slurm simulate``)
"""

"""Pure parsers and writers of the formats kant-slurm reads: Slurm's output and config files,
sacct's accounting, the job traces, and the job-record table the metrics take.

Nothing here runs a command or talks to Slurm; a module of this package imports only
:mod:`kant_slurm.model`, :mod:`kant_slurm.errors`, :mod:`kant_slurm.hostlist`, its siblings and
the standard library, numpy and pandas. The reader (:mod:`kant_slurm.slurm`) runs Slurm's
commands and turns their output into a snapshot with these parsers; the simulator reads its
traces with them; neither is imported here.

- :mod:`.slurm_values`: numbers, node states, GRES, durations, timestamps, ``scontrol`` records
- :mod:`.slurm_nodes`: nodes, advance reservations, partitions, the switch tree
- :mod:`.slurm_jobs`: jobs (``squeue --json``, ``scontrol show job``), ``sprio``
- :mod:`.snapshot`: the parsed pieces -> a frozen :class:`kant_slurm.model.ClusterSnapshot`
- :mod:`.tags`: the ``kant:`` tag of a job's admin comment
- :mod:`.slurm_conf`: ``slurm.conf`` + ``gres.conf`` + ``topology.conf`` -> Inventory
- :mod:`.sacct`: ``sacct -P`` and ``sacct --json`` -> job records
- :mod:`.records`: the job-record table (the metrics' one input)
- :mod:`.traces`: Philly, SWF, openb, sacct and Alibaba DLRM inference traces -> a workload table
"""

"""What-if on a site's own history (``kant-slurm whatif``) and grids of simulations
(``kant-slurm sweep``), run here in a process pool or as one Slurm job array (issue 18).

Pure logic: :mod:`.grid` (the grid file and its cells), :mod:`.stats` (means, 95% intervals,
the merged table), :mod:`.schedparams` (the SchedulerParameters the ``slurm`` model reads),
:mod:`.recommend` (what the what-if says). I/O: :mod:`.runner` (a sweep's directory, one cell),
:mod:`.local` and :mod:`.slurmarray` (the backends), :mod:`.history` (the live cluster's sacct
and shape), :mod:`.html` (the pages).
"""

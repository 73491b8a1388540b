"""``python -m kant_slurm``: the same command as the ``kant-slurm`` console script."""

from .cli import main

main()

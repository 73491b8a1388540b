"""``python -m kant_slurm``: the ``kant-slurm`` command, from this tree (no install needed)."""

from .cli import main

if __name__ == "__main__":
    main()

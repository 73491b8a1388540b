"""kant-slurm: Kant-style GPU scheduling for Slurm (arXiv 2510.01256 ideas on stock Slurm)."""

__version__ = "0.1.0"

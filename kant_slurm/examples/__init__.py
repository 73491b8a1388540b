"""Small programs for the job-script templates' examples: pure Python, no GPU, nothing to
install beyond kant-slurm. They run on any Slurm node (the dev cluster's too) and behave as the
templates expect of a real program.

- ``python3 -m kant_slurm.examples.toy_train``: a training loop that checkpoints, saves and
  exits on the template's checkpoint signal, and resumes from its checkpoint when the job
  starts again after a requeue.
- ``python3 -m kant_slurm.examples.toy_server``: an HTTP inference server with ``/health``.
"""

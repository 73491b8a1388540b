"""The one exception hierarchy of kant-slurm.

Library code raises these; only the CLI turns them into a one-line message and an exit code.
Every message names the place (file, line, field, key, command) and says what was expected or
what to do next.
"""

from __future__ import annotations


class KantError(Exception):
    """Base of every error kant-slurm raises on purpose."""

    exit_code = 1


class ConfigError(KantError):
    """A config file or cluster spec has an unknown key, a wrong type or an out-of-range value."""


class InputError(KantError):
    """A trace, dump or other input file is malformed (the message names file, line and field)."""


class SlurmError(KantError):
    """A Slurm command failed or answered something we could not parse."""


class SlurmUnreachable(SlurmError):
    """slurmctld (or slurmdbd) does not answer: nothing was read or changed."""

    exit_code = 2


class DevClusterError(KantError):
    """The local development cluster could not be set up, started or stopped."""


class TemplateError(KantError):
    """A job-script template or its values are invalid."""


class SimulationError(KantError):
    """A policy's plan cannot be carried out in the simulator (a job or node it names is wrong)."""

"""The one exception hierarchy of kant-slurm.

Library code raises these; only the CLI turns them into a one-line message and an exit code.
Every message names the place (file, line, field, key, command) and says what was expected or
what to do next.
"""

from __future__ import annotations

# The exit codes of every kant-slurm command (documented in `kant-slurm --help` and the README).
EXIT_OK = 0
EXIT_ERROR = 1  # a KantError: bad input file, failed Slurm command, incomplete reset ...
EXIT_USAGE = 2  # bad option or argument (click's own code for usage errors)
# slurmctld/slurmdbd did not answer, or another steering instance holds the lock: nothing was
# read or changed, and the same command later may succeed (cron and systemd treat it so).
EXIT_UNREACHABLE = 3
EXIT_PARTIAL = 4  # schedule applied some changes and some failed

EXIT_CODES_HELP = """\b
Exit codes:
  0  success
  1  error (bad input file, failed Slurm command, reset incomplete)
  2  usage (unknown option, bad option value)
  3  Slurm not answering (slurmctld/slurmdbd down), or another kant-slurm steering
     process holds the lock: nothing was read or changed; retry later
  4  partial apply (schedule: some scontrol changes failed, the others were applied)
"""


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

    exit_code = EXIT_UNREACHABLE


class UsageError(KantError):
    """Options that contradict each other or name something that does not exist."""

    exit_code = EXIT_USAGE


class DevClusterError(KantError):
    """The local development cluster could not be set up, started or stopped."""


class TemplateError(KantError):
    """A job-script template or its values are invalid."""


class SimulationError(KantError):
    """A policy's plan cannot be carried out in the simulator (a job or node it names is wrong)."""

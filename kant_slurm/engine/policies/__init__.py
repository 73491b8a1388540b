"""The built-in policies, one module each, over one queue walk (:mod:`.base`).

======================  =================================================================
``fifo`` (:mod:`.fifo`)   strict arrival order, first fit, no backfill
``slurm`` (:mod:`.slurm`) a model of stock Slurm's backfill and cons_tres/topology choice
``kant`` (:mod:`.kant`)   Kant: tiers, EASY backfill with K reservations, E-Binpack/E-Spread
======================  =================================================================

All walk an ordered queue through :class:`~kant_slurm.engine.cycle.Cycle`; they differ in the
order, in backfill (none, Slurm's, EASY with K reservations), in runtime estimates and in node
choice. ``kant-steered`` (stock Slurm steered by kant's daemon) is a simulator policy and lives
in :mod:`kant_slurm.sim.steered`.

Adding a policy: a module here with a :class:`~.base.QueuePolicy` subclass decorated with
``@register("name")``, and its import below (CONTRIBUTING.md, "Adding a policy").
"""

from .base import QueuePolicy
from .fifo import FifoPolicy
from .kant import KantPolicy
from .slurm import SlurmPolicy

__all__ = ["FifoPolicy", "KantPolicy", "QueuePolicy", "SlurmPolicy"]

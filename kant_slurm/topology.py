"""The switch tree as Slurm's topology/tree plugin sees it: :class:`Switch` and :class:`Topology`.

Part of the cluster model (:mod:`kant_slurm.model` re-exports both): an
:class:`~kant_slurm.model.Inventory` carries one. Nothing here talks to Slurm or reads files;
the parsers of ``topology.conf`` build it with :meth:`Topology.from_links`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from .errors import InputError


@dataclass(frozen=True, slots=True)
class Switch:
    """One switch of the topology tree: a leaf group (level 0) or a higher group."""

    name: str
    level: int
    parent: str | None
    children: tuple[str, ...]  # child switch names (empty for a leaf)
    nodes: tuple[str, ...]  # every node below this switch, in inventory order


@dataclass(frozen=True)
class Topology:
    """A switch tree as Slurm's topology/tree plugin sees it.

    Levels follow Slurm: a switch holding only nodes is level 0 (a leaf group); a switch above
    others is one more than the highest of its children. Nodes under no switch have no group.
    """

    switches: Mapping[str, Switch]

    @staticmethod
    def empty() -> Topology:
        return Topology(MappingProxyType({}))

    @staticmethod
    def from_links(
        leaf_nodes: Mapping[str, Sequence[str]],
        switch_children: Mapping[str, Sequence[str]] | None = None,
        node_order: Sequence[str] | None = None,
    ) -> Topology:
        """Build from ``leaf -> nodes`` and ``switch -> child switches`` (as in topology.conf).

        Raises :class:`InputError` on a cycle, a child with two parents or an unknown child.
        """
        switch_children = dict(switch_children or {})
        names = list(dict.fromkeys(list(leaf_nodes) + list(switch_children)))
        parent: dict[str, str] = {}
        for sw, kids in switch_children.items():
            for kid in kids:
                if kid not in leaf_nodes and kid not in switch_children:
                    raise InputError(f"topology: switch {sw!r} names unknown child switch {kid!r}")
                if kid in parent and parent[kid] != sw:
                    raise InputError(
                        f"topology: switch {kid!r} has two parents ({parent[kid]!r} and {sw!r})"
                    )
                parent[kid] = sw
        level: dict[str, int] = {}

        def level_of(sw: str, path: tuple[str, ...]) -> int:
            if sw in path:
                raise InputError(f"topology: switch cycle {' -> '.join(path + (sw,))}")
            if sw in level:
                return level[sw]
            kids = switch_children.get(sw, ())
            lv = 0 if not kids else 1 + max(level_of(k, path + (sw,)) for k in kids)
            level[sw] = lv
            return lv

        below: dict[str, list[str]] = {}

        def nodes_below(sw: str) -> list[str]:
            if sw not in below:
                acc = list(leaf_nodes.get(sw, ()))
                for kid in switch_children.get(sw, ()):
                    acc.extend(nodes_below(kid))
                below[sw] = list(dict.fromkeys(acc))
            return below[sw]

        for sw in names:  # levels first: this is where a cycle is found
            level_of(sw, ())
        rank = {n: i for i, n in enumerate(node_order)} if node_order is not None else None
        switches = {}
        for sw in names:
            nodes = nodes_below(sw)
            if rank is not None:
                nodes = sorted((n for n in nodes if n in rank), key=rank.__getitem__)
            switches[sw] = Switch(
                name=sw,
                level=level_of(sw, ()),
                parent=parent.get(sw),
                children=tuple(switch_children.get(sw, ())),
                nodes=tuple(nodes),
            )
        return Topology(MappingProxyType(switches))

    @cached_property
    def leaf_of(self) -> Mapping[str, str]:
        """node name -> the leaf group (lowest switch) holding it."""
        out: dict[str, str] = {}
        for sw in sorted(self.switches.values(), key=lambda s: s.level):
            for node in sw.nodes:
                out.setdefault(node, sw.name)
        return MappingProxyType(out)

    def chain(self, node: str) -> tuple[str, ...]:
        """The switches above ``node``, from its leaf group up to the root."""
        leaf = self.leaf_of.get(node)
        out: list[str] = []
        while leaf is not None:
            out.append(leaf)
            leaf = self.switches[leaf].parent
        return tuple(out)

    @cached_property
    def leaf_groups(self) -> tuple[Switch, ...]:
        """Switches that directly hold nodes, in name order."""
        return tuple(
            sorted(
                (s for s in self.switches.values() if s.name in set(self.leaf_of.values())),
                key=lambda s: s.name,
            )
        )

    @cached_property
    def max_level(self) -> int:
        return max((s.level for s in self.switches.values()), default=-1)

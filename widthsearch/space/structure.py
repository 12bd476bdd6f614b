"""From a channel trace to a width space's structure: groups, layers and their base costs.

:meth:`widthsearch.space.width_space.WidthSpace.from_module` builds a space from the trace of
its model; :func:`widthsearch.space.realize.check_realizes` traces the model again at other
widths and compares the two structures.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from widthsearch.space.groups import Group, Layer, SizeAttr

if TYPE_CHECKING:
    from widthsearch.space._records import TraceResult


def structure(
    result: TraceResult,
) -> tuple[tuple[Group, ...], tuple[Layer, ...], tuple[SizeAttr, ...]]:
    """Groups, layers (with their base costs) and split-size attributes of a traced model."""
    uf = result.uf
    ids = {root: i for i, root in enumerate(result.group_roots())}
    members: dict[int, list[str]] = {i: [] for i in ids.values()}
    producers: dict[int, str] = {}

    def gid(node: int) -> int:
        return ids[uf.find(node)]

    layers = []
    for raw in result.layers:
        ins = tuple(gid(s) for s in raw.in_segs)
        outs = tuple(gid(s) for s in raw.out_segs)
        for g in ins:
            producers.setdefault(g, "input")
        for g in outs:
            producers.setdefault(g, raw.name)
        for g in dict.fromkeys(ins + outs):
            members[g].append(raw.name)
        layers.append(
            Layer(
                name=raw.name,
                kind=raw.kind,  # type: ignore[arg-type]
                in_groups=ins,
                out_groups=outs,
                kernel=raw.kernel,
                groups=raw.groups,
                channels_per_group=raw.channels_per_group,
                out_size=raw.out_size,
                positions=raw.positions,
                per_channel=raw.per_channel,
                param_dim=raw.param_dim,
                constant=raw.constant,
                param_attrs=tuple(raw.params.items()),
                train_only=raw.train_only,
            )
        )
    base = [uf.width[root] for root in ids]  # ids were handed out in this order
    layers = [
        replace(lay, params=lay.param_cost()(base), macs=lay.mac_cost()(base)) for lay in layers
    ]
    attrs = tuple(
        SizeAttr(
            module=a.module,
            attr=a.attr,
            container=a.container,
            parts=tuple(tuple(gid(s) for s in part) for part in a.parts),
        )
        for a in result.attrs
    )
    groups = tuple(
        Group(
            id=i,
            width=uf.width[root],
            fixed=uf.fixed[root],
            multiple_of=uf.multiple_of[root],
            layers=tuple(members[i]),
            producer=producers.get(i, "input"),
            note="; ".join(uf.notes.get(root, [])),
        )
        for root, i in ids.items()
    )
    return groups, tuple(layers), attrs


__all__ = ["structure"]

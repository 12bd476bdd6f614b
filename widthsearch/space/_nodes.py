"""Channel nodes: a union-find over the channel segments the tracer labels tensors with.

Every channel tensor's channels are a list of *segments*, each a node here. Ops that combine
channels one by one unite nodes, splits refine them into consecutive children, and constraints
(a width kept, a multiple of some count) attach to the finest segments, the *leaves*. Once the
forward pass is over, the roots of the leaves are the width space's channel groups.
"""

from __future__ import annotations

import math


class UnionFind:
    """Union-find over channel nodes; every node has a channel count that unions must respect.

    A node can be *refined* into consecutive child nodes (a split of its channels: one conv
    output that a ``torch.split`` cuts in two). Expanding a node gives its *leaves*, the
    finest segments, and every union or constraint acts on leaves, so a refinement made late in
    the pass reaches every tensor and layer that holds the node. Two unions of different
    segmentations (``x + y`` where ``x`` is a concatenation and ``y`` a single conv output)
    refine both to their common boundaries first.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.width: list[int] = []
        self.fixed: list[bool] = []
        self.multiple_of: list[int] = []
        self.children: dict[int, tuple[int, ...]] = {}
        self.notes: dict[int, list[str]] = {}
        self.constraints: list[tuple[tuple[int, ...], int, str]] = []

    def add(self, width: int, *, fixed: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.width.append(width)
        self.fixed.append(fixed)
        self.multiple_of.append(1)
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    # ------------------------------------------------------------------ segments
    def leaves(self, node: int) -> list[int]:
        """The finest segments of ``node``, in channel order (roots of leaf nodes)."""
        root = self.find(node)
        kids = self.children.get(root)
        if kids is None:
            return [root]
        return [leaf for k in kids for leaf in self.leaves(k)]

    def expand(self, segs: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        return tuple(leaf for s in segs for leaf in self.leaves(s))

    def total(self, segs: tuple[int, ...] | list[int]) -> int:
        return sum(self.width[self.find(s)] for s in segs)

    def refine(self, node: int, offsets: list[int]) -> None:
        """Make every offset in ``offsets`` (inside ``node``'s channels) a segment boundary."""
        if not offsets:
            return
        root = self.find(node)
        kids = self.children.get(root)
        if kids is None:
            cuts = sorted(set(offsets))
            sizes = [b - a for a, b in zip([0, *cuts], [*cuts, self.width[root]], strict=True)]
            kids = tuple(self.add(s, fixed=self.fixed[root]) for s in sizes)
            self.children[root] = kids
            for k in kids:
                self.notes[k] = list(self.notes.get(root, []))
            return
        pos = 0
        for k in kids:
            w = self.width[self.find(k)]
            self.refine(k, [o - pos for o in offsets if pos < o < pos + w])
            pos += w

    def cut(self, segs: tuple[int, ...], sizes: list[int]) -> list[tuple[int, ...]]:
        """Refine ``segs`` so that consecutive pieces of ``sizes`` channels fall on segment
        boundaries; the leaves of each piece."""
        bounds, acc = [], 0
        for s in sizes[:-1]:
            acc += s
            bounds.append(acc)
        pos = 0
        for s in segs:
            w = self.width[self.find(s)]
            self.refine(s, [b - pos for b in bounds if pos < b < pos + w])
            pos += w
        leaves = self.expand(segs)
        pieces: list[tuple[int, ...]] = []
        j = 0
        for size in sizes:
            piece, acc = [], 0
            while acc < size:
                piece.append(leaves[j])
                acc += self.width[leaves[j]]
                j += 1
            pieces.append(tuple(piece))
        return pieces

    def _bounds(self, segs: tuple[int, ...]) -> list[int]:
        out, acc = [], 0
        for leaf in self.expand(segs):
            acc += self.width[leaf]
            out.append(acc)
        return out

    def align(self, a: tuple[int, ...], b: tuple[int, ...]) -> None:
        """Union two segment lists of equal total width, channel by channel: both are refined
        to their common boundaries, then their leaves are united pairwise."""
        while True:
            ba, bb = self._bounds(a), self._bounds(b)
            if ba == bb:
                break
            every = sorted(set(ba) | set(bb))
            for segs in (a, b):
                pos = 0
                for s in segs:
                    w = self.width[self.find(s)]
                    self.refine(s, [x - pos for x in every if pos < x < pos + w])
                    pos += w
        for x, y in zip(self.expand(a), self.expand(b), strict=True):
            self._union_leaves(x, y)

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.width[ra] != self.width[rb]:  # pragma: no cover - guarded by shape checks
            raise AssertionError(f"union of {self.width[ra]} and {self.width[rb]} channels")
        if ra in self.children or rb in self.children:
            self.align((ra,), (rb,))
            return self.find(a)
        return self._union_leaves(ra, rb)

    def _union_leaves(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb]
        self.multiple_of[ra] = math.lcm(self.multiple_of[ra], self.multiple_of[rb])
        notes = self.notes.setdefault(ra, [])
        notes += [n for n in self.notes.pop(rb, []) if n not in notes]
        return ra

    # ------------------------------------------------------------------ constraints
    def note(self, segs: tuple[int, ...] | list[int], text: str) -> None:
        for leaf in self.expand(segs):
            notes = self.notes.setdefault(leaf, [])
            if text not in notes:
                notes.append(text)

    def fix(self, segs: tuple[int, ...] | list[int], why: str = "") -> None:
        """Keep the width of every leaf of ``segs``."""
        for s in segs:
            self.fixed[self.find(s)] = True
        for leaf in self.expand(segs):
            self.fixed[leaf] = True
        if why:
            self.note(segs, why)

    def require_multiple(self, segs: tuple[int, ...] | list[int], m: int, what: str) -> None:
        """The total width of ``segs`` must stay a multiple of ``m`` (see :meth:`resolve`)."""
        if m > 1:
            self.constraints.append((tuple(segs), m, what))

    def resolve(self) -> None:
        """Turn the multiple-of constraints into per-group grids, once the segments are final.

        A total ``Σ_g n_g·w_g`` (group ``g`` appearing ``n_g`` times) stays a multiple of ``m``
        when each ``w_g`` is a multiple of ``m / gcd(m, n_g)``; where the base widths are not
        (a split cut the channels of a grouped conv off its grid), the groups are fixed.
        """
        for segs, m, what in self.constraints:
            counts: dict[int, int] = {}
            for leaf in self.expand(segs):
                counts[leaf] = counts.get(leaf, 0) + 1
            need = {leaf: m // math.gcd(m, n) for leaf, n in counts.items()}
            if all(self.width[leaf] % k == 0 for leaf, k in need.items()):
                for leaf, k in need.items():
                    self.multiple_of[leaf] = math.lcm(self.multiple_of[leaf], k)
            else:
                self.fix(segs, f"fixed: {what} needs a multiple of {m} channels across groups")
        self.constraints = []

"""The exact cost model: parameters and MACs as posynomials of group widths.

A layer's cost is a sum of terms ``c · Π_g w_g^e`` with integer (grouped convs: rational) ``c``
and integer widths ``w``, so evaluating it at any valid width vector is exact (no floating
point), and dividing each width by its base width gives the posynomial in multipliers ``x_g``
that the geometric program (:mod:`widthsearch.solve`) constrains.

MACs count what ``torch.utils.flop_counter.FlopCounterMode`` counts, halved: multiply-accumulates
of convolutions and linear layers (bias additions, normalization and activations are not MACs).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

Monomial = tuple[tuple[int, int], ...]
"""Sorted ``(group id, exponent)`` pairs; the empty tuple is the constant monomial."""


def monomial(*groups: int) -> Monomial:
    """The product of the given group widths (a group may repeat: ``monomial(3, 3)`` = w_3²)."""
    exps: dict[int, int] = defaultdict(int)
    for g in groups:
        exps[g] += 1
    return tuple(sorted(exps.items()))


@dataclass(frozen=True)
class Posynomial:
    """``Σ_k c_k Π_g w_g^{e_kg}`` over integer widths, with positive rational coefficients."""

    terms: tuple[tuple[Monomial, int | Fraction], ...] = ()

    @classmethod
    def from_terms(cls, terms: Iterable[tuple[int | Fraction, Monomial]]) -> Posynomial:
        """Build a posynomial from ``(coefficient, monomial)`` pairs, merging equal monomials."""
        acc: dict[Monomial, int | Fraction] = defaultdict(int)
        for coef, mono in terms:
            if coef:
                acc[mono] += coef
        return cls(tuple(sorted(acc.items())))

    def __add__(self, other: Posynomial) -> Posynomial:
        return Posynomial.from_terms((c, m) for m, c in (*self.terms, *other.terms))

    def __call__(self, widths: Sequence[int]) -> int:
        """Evaluate at integer widths (indexed by group id); exact.

        Coefficients of grouped convs are fractions (``k/groups``); at widths that are multiples
        of the groups count the total is an integer, and it is returned as one.
        """
        total = sum(c * math.prod(widths[g] ** e for g, e in mono) for mono, c in self.terms)
        return int(total) if isinstance(total, Fraction) and total.denominator == 1 else total

    def involving(self, group: int) -> Posynomial:
        """The terms that grow with ``group``'s width."""
        return Posynomial(tuple((m, c) for m, c in self.terms if any(g == group for g, _ in m)))

    def in_multipliers(self, base: Sequence[int]) -> list[tuple[float, Mapping[int, int]]]:
        """Terms as ``(coefficient, {group: exponent})`` over multipliers ``x_g = w_g / base_g``."""
        return [
            (float(c * math.prod(base[g] ** e for g, e in mono)), dict(mono))
            for mono, c in self.terms
        ]


@dataclass(frozen=True)
class MaxPosynomial:
    """The largest of several posynomials: a cost that peaks over moments (the activation
    memory alive at once, op by op). A budget on it is a budget on every part, so the
    geometric program, rounding and the lattice search hold one constraint per part."""

    parts: tuple[Posynomial, ...]

    def __call__(self, widths: Sequence[int]) -> int:
        """The largest part at integer widths; exact."""
        return max(p(widths) for p in self.parts)

    def argmax(self, widths: Sequence[int]) -> int:
        """The index of the largest part at ``widths`` (the first of equals)."""
        values = [p(widths) for p in self.parts]
        return values.index(max(values))


Cost = Posynomial | MaxPosynomial
"""A budgetable cost: one posynomial, or the peak of several."""


def parts(cost: Cost) -> tuple[Posynomial, ...]:
    """The posynomials a budget on ``cost`` constrains: itself, or a peak's every part."""
    return cost.parts if isinstance(cost, MaxPosynomial) else (cost,)


__all__ = ["Cost", "MaxPosynomial", "Monomial", "Posynomial", "monomial", "parts"]

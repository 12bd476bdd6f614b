"""Posynomial arithmetic: exact integer evaluation and the multiplier form the solver uses."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from tests.conftest import random_widths, zoo_space
from widthsearch.space.cost import Posynomial, monomial


def test_monomial_merges_repeated_groups():
    assert monomial(3, 1, 3) == ((1, 1), (3, 2))


def test_evaluation_is_exact_and_fractional_terms_come_out_whole():
    p = Posynomial.from_terms([(Fraction(9, 32), monomial(0, 1)), (2, monomial(1)), (5, ())])
    assert p([64, 32]) == 9 * 64 * 32 // 32 + 64 + 5
    assert isinstance(p([64, 32]), int)


@pytest.mark.parametrize("name", ["efficientnet_b0", "resnext50_32x4d", "densenet121"])
def test_multiplier_form_equals_width_form(name):
    space = zoo_space(name)
    widths = random_widths(space, seed=3)
    x = [w / g.width for w, g in zip(widths, space.groups, strict=True)]
    for poly, exact in (
        (space.param_cost, space.params(widths)),
        (space.mac_cost, space.macs(widths)),
    ):
        value = sum(
            c * math.prod(x[g] ** e for g, e in mono.items())
            for c, mono in poly.in_multipliers(space.base_widths)
        )
        assert value == pytest.approx(exact, rel=1e-9)


def test_involving_keeps_only_terms_with_the_group():
    p = Posynomial.from_terms([(1, monomial(0, 1)), (2, monomial(1)), (3, monomial(2))])
    assert p.involving(1)([1, 1, 1]) == 3
    assert p.involving(2)([1, 1, 1]) == 3

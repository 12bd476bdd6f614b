"""Paired verdicts on known numbers: Student-t intervals, labels, one seed, unpaired seeds."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from widthsearch.verify.verdict import BETTER, NONE, ONE, SAME, WORSE, paired, t_quantile

# two-sided 95% critical values of Student's t (any printed t-table)
T975 = {1: 12.7062, 2: 4.3027, 4: 2.7764, 9: 2.2622, 29: 2.0452}


@pytest.mark.parametrize("df, value", sorted(T975.items()))
def test_t_quantiles_match_the_table(df, value):
    assert t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)


def _by_seed(values):
    return dict(enumerate(values))


@pytest.mark.parametrize(
    "diffs, label",
    [
        ([2.0, 3.0, 4.0], BETTER),  # mean 3, sd 1: 3 ± 4.3027/sqrt(3) = [0.516, 5.484]
        ([-2.0, -3.0, -4.0], WORSE),
        ([1.0, 2.0, 3.0], SAME),  # 2 ± 2.484 holds zero
    ],
)
def test_mean_interval_and_label_on_known_numbers(diffs, label):
    reference = [10.0, 20.0, 30.0]
    values = [r + d for r, d in zip(reference, diffs, strict=True)]
    v = paired(_by_seed(values), _by_seed(reference), name="base")
    mean = sum(diffs) / 3
    half = T975[2] * 1.0 / math.sqrt(3)
    assert v.n == 3 and v.reference == "base" and v.seeds == (0, 1, 2)
    assert v.mean == pytest.approx(mean) and v.std == pytest.approx(1.0)
    assert v.low == pytest.approx(mean - half, abs=1e-4)
    assert v.high == pytest.approx(mean + half, abs=1e-4)
    assert v.label == label
    # the same interval as scipy's paired t-test
    ci = stats.ttest_rel(values, reference).confidence_interval(0.95)
    assert (v.low, v.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    said = f"equal within ±{abs(mean) + half:.1f}" if label == SAME else label
    assert v.text(scale=1) == f"{mean:+.1f} ± {half:.1f}, {said} (n=3)"
    assert v.detectable == pytest.approx(half, abs=1e-4)


def test_pairs_only_shared_seeds_and_says_when_there_are_none():
    v = paired({0: 0.5, 1: 0.6, 2: 0.7}, {1: 0.5, 2: 0.5, 3: 0.9})
    assert v.seeds == (1, 2) and v.differences == (pytest.approx(0.1), pytest.approx(0.2))
    none = paired({0: 0.5}, {1: 0.5})
    assert none.label == NONE and none.mean is None and none.text() == NONE


def test_one_seed_has_a_difference_but_no_verdict():
    v = paired({7: 0.95}, {7: 0.90}, name="base")
    assert v.label == ONE == "n=1, no verdict"
    assert v.std is None and v.low is None and v.half_width is None
    assert v.text() == "+5.0 (n=1, no verdict)" and v.interval() == "+5.0"
    assert v.to_dict()["n"] == 1


def test_resolution_floors_the_spread_of_identical_differences():
    """Two seeds, each two validation images worse: a zero spread must not read as certain."""
    image = 1 / 359
    values, reference = {0: 0.96657, 1: 0.96657}, {0: 0.96657 + 2 * image, 1: 0.96657 + 2 * image}
    assert paired(values, reference).label == WORSE  # a zero-width interval
    v = paired(values, reference, resolution=image)
    assert v.std == pytest.approx(0.0, abs=1e-12) and v.label == SAME
    assert v.half_width == pytest.approx(T975[1] * image / math.sqrt(2), rel=1e-4)
    # with enough seeds the same differences are a verdict again
    many = paired(dict.fromkeys(range(5), 0.9), dict.fromkeys(range(5), 0.9 + 2 * image))
    assert many.label == WORSE
    assert (
        paired(
            dict.fromkeys(range(5), 0.9), dict.fromkeys(range(5), 0.9 + 2 * image), resolution=image
        ).label
        == WORSE
    )  # 2 images ± 2.776 * 1 / sqrt(5) = 1.24 images


def test_bad_level_is_refused():
    with pytest.raises(ValueError, match="level"):
        paired({0: 1.0}, {0: 1.0}, level=1.5)


def test_every_verdict_says_the_smallest_difference_it_could_detect():
    """Real top-1 over five seeds (a 359-image validation split): t(0.975, 4) * sd / sqrt(n)."""
    image = 1 / 359
    cand = {s: k * image for s, k in enumerate([300, 305, 297, 302, 299])}
    base = {s: k * image for s, k in enumerate([301, 302, 299, 300, 301])}
    diffs = [cand[s] - base[s] for s in range(5)]
    sd = stats.tstd(diffs)
    v = paired(cand, base, name="base", resolution=image)
    assert v.label == SAME
    assert v.detectable == pytest.approx(T975[4] * sd / math.sqrt(5), rel=1e-4)
    assert v.bound == pytest.approx(abs(v.mean) + v.detectable)
    x, d = 100 * v.bound, 100 * v.detectable
    assert v.text() == f"{100 * v.mean:+.1f} ± {d:.1f}, equal within ±{x:.1f} (n=5)"
    assert v.sentence() == (
        f"no detectable difference (equal within ±{x:.1f} points: {100 * v.mean:+.1f} ± "
        f"{d:.1f}, n=5; the smallest difference these seeds could detect is {d:.1f} points)"
    )
    info = v.to_dict()
    assert info["detectable"] == pytest.approx(v.detectable) and info["n"] == 5
    better = paired({s: c + 4 * image for s, c in cand.items()}, base, resolution=image)
    assert better.label == BETTER
    assert better.sentence().endswith(
        f"n=5; the smallest difference these seeds could detect is {d:.1f} points)"
    )
    one = paired({0: 0.5}, {0: 0.4})
    assert one.detectable is None and "no difference is resolved" in one.sentence()

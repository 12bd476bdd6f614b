"""A measured latency model per device: a posynomial of the widths fitted to timings.

**Form.** Latency (ms per forward pass of a batch) is modelled as a sum over the model's ops of
non-negative multiples of what each op costs in the widths, by op kind:

- *compute*: the MACs of dense convs with a kernel larger than 1x1, of 1x1 (pointwise) convs,
  of depthwise convs (with fixed blur filters, ECA's Conv1d along the channels and
  GlobalContext's pooling matmul, which also work per channel), of grouped convs and of
  linear layers (``x_in·x_out`` or ``x``);
- *memory traffic*: the elements a weight layer reads and writes (input plus output feature
  map), separately for depthwise convs, which are memory-bound on every device, and the
  elements every other op touches (norms, activations, residual adds, squeeze-excite gates,
  pooling, concatenation);
- *weights*: the parameters of the weight layers (oneDNN reorders them on every eager call);
- *overhead*: a constant per op (dispatch, kernel launch).

Each feature is a posynomial of the group widths (:class:`~widthsearch.space.cost.Posynomial`,
degree at most two), and the coefficients are non-negative, so the latency is a posynomial
too and enters the SynExp geometric program next to params and MACs. The features come from one
shape-only pass of the channel analysis (:mod:`widthsearch.space._trace`) over every op.

**Fit.** The coefficients are fitted by non-negative least squares on *relative* error
(``scipy.optimize.nnls`` on rows divided by the measured time), to the timings of a profile
(:mod:`widthsearch.hardware.profiling` makes one, :mod:`widthsearch.hardware.profile` holds it).
Its error is reported in-sample and by 5-fold cross-validation.

A roofline ``max(compute, traffic)`` per layer would also stay a geometric program (one
auxiliary variable per layer), but it needs a non-convex fit; benchmarks/bench_latency.py measures
how well the sum of terms ranks and predicts, against MACs alone.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from widthsearch.hardware.timing import Device, median
from widthsearch.space.cost import Posynomial, monomial
from widthsearch.space.groups import WEIGHT_KINDS

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace

FEATURES = (
    "macs_conv",
    "macs_pointwise",
    "macs_depthwise",
    "macs_grouped",
    "macs_linear",
    "elems_conv",
    "elems_depthwise",
    "elems_other",
    "weights",
    "ops",
)
"""The latency model's terms (see the module docstring); ``ops`` is the constant overhead."""


# ------------------------------------------------------------------------------ features
@dataclass(frozen=True)
class OpTerms:
    """What one op costs in the widths: its MACs (weight layers) and the elements it touches."""

    kind: str
    """The MACs feature of a weight layer (``macs_conv``, ...), or ``other``."""
    macs: Posynomial
    elems: Posynomial
    params: Posynomial


def op_terms(space: WidthSpace) -> list[OpTerms]:
    """Every op of ``space``'s forward pass that costs time, in order, with its terms.

    Cached on the space. :func:`latency_features` sums them by kind.
    """
    cached = space.__dict__.get("_op_terms")
    if cached is not None:
        return cached
    from widthsearch.hardware._op_tracer import OpTracer
    from widthsearch.space._optrace import run_traced

    tracer, groups_of = run_traced(space, OpTracer, train=False, what="model its latency")
    layers = {lay.name: lay for lay in space.layers}
    out = []
    for _kind, seen, name in tracer.ops:
        elems = Posynomial.from_terms(
            (positions, monomial(g)) for segs, positions in seen for g in groups_of(segs)
        )
        if not name:
            out.append(OpTerms("other", Posynomial(), elems, Posynomial()))
            continue
        lay = layers[name]
        if lay.kind == "conv":
            key = "macs_conv" if math.prod(lay.kernel) > 1 else "macs_pointwise"
        elif lay.kind in ("filter", "chanconv", "pool"):  # blur, ECA's Conv1d, context pooling
            key = "macs_depthwise"
        else:
            key = f"macs_{lay.kind}"
        weights = lay.param_cost() if lay.kind in WEIGHT_KINDS else Posynomial()
        out.append(OpTerms(key, lay.mac_cost(), elems, weights))
    space.__dict__["_op_terms"] = out
    return out


def latency_features(space: WidthSpace) -> dict[str, Posynomial]:
    """The terms of the latency model of ``space`` as posynomials of group widths, per image.

    Cached on the space.
    """
    cached = space.__dict__.get("_latency_features")
    if cached is not None:
        return cached
    terms: dict[str, list[tuple[Any, tuple]]] = defaultdict(list)
    ops = op_terms(space)
    for op in ops:
        traffic = (
            "elems_other"
            if op.kind == "other"
            else ("elems_depthwise" if op.kind == "macs_depthwise" else "elems_conv")
        )
        terms[traffic] += [(c, m) for m, c in op.elems.terms]
        if op.kind != "other":
            terms[op.kind] += [(c, m) for m, c in op.macs.terms]
            terms["weights"] += [(c, m) for m, c in op.params.terms]
    terms["ops"] = [(len(ops), ())]
    features = {f: Posynomial.from_terms(terms.get(f, [])) for f in FEATURES}
    space.__dict__["_latency_features"] = features
    return features


def feature_values(space: WidthSpace, widths: Sequence[int]) -> list[float]:
    """The value of every term of :data:`FEATURES` at ``widths``: one row of a fit."""
    feats = latency_features(space)
    return [float(feats[f](widths)) for f in FEATURES]


# ----------------------------------------------------------------------------------- fit
def fit_coefficients(rows: Sequence[Sequence[float]], ms: Sequence[float]) -> list[float]:
    """Non-negative coefficients that minimize the squared *relative* error of ``rows · c``."""
    import numpy as np
    from scipy.optimize import nnls

    a = np.asarray(rows, dtype=float) / np.asarray(ms, dtype=float)[:, None]
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(a / scale, np.ones(len(ms)), maxiter=50 * a.shape[1])
    return [float(c) for c in coef / scale]


def predict(coefficients: Sequence[float], row: Sequence[float]) -> float:
    """The latency a linear model with ``coefficients`` predicts for one row of features."""
    return float(sum(c * v for c, v in zip(coefficients, row, strict=True)))


def fit_errors(rows: Sequence[Sequence[float]], ms: Sequence[float]) -> dict[str, float]:
    """Median and largest relative error in-sample, and the median by 5-fold cross-validation."""
    coef = fit_coefficients(rows, ms)
    rel = [abs(predict(coef, r) / y - 1) for r, y in zip(rows, ms, strict=True)]
    folds = min(5, len(ms))
    cv = []
    if folds >= 2 and len(ms) >= 6:
        for k in range(folds):
            train = [i for i in range(len(ms)) if i % folds != k]
            test = [i for i in range(len(ms)) if i % folds == k]
            c = fit_coefficients([rows[i] for i in train], [ms[i] for i in train])
            cv += [abs(predict(c, rows[i]) / ms[i] - 1) for i in test]
    return {
        "median_abs_error": median(rel),
        "max_abs_error": max(rel),
        "cv_median_abs_error": median(cv) if cv else math.nan,
    }


# ------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class LatencyModel:
    """Predicted latency of one width space on one device, in milliseconds per batch."""

    cost: Posynomial
    """Milliseconds as a posynomial of group widths (float coefficients)."""
    device: Device
    source: str
    """How it was made, in words (for the output)."""
    error: float
    """Median relative error of the fit (cross-validated where there were enough samples)."""

    def __call__(self, widths: Sequence[int]) -> float:
        return float(self.cost(widths))

    @classmethod
    def from_coefficients(
        cls,
        space: WidthSpace,
        coefficients: Mapping[str, float],
        device: Device,
        source: str,
        error: float,
    ) -> LatencyModel:
        """The model of ``space`` whose terms (:func:`latency_features`) carry ``coefficients``
        (feature name -> ms per unit; missing or zero terms are left out)."""
        feats = latency_features(space)
        terms = [
            (coefficients.get(f, 0.0) * c, m)
            for f in FEATURES
            for m, c in feats[f].terms
            if coefficients.get(f, 0.0) > 0
        ]
        # Posynomial is typed for exact counts (int | Fraction); a fitted model's coefficients
        # are floats, which it sums and evaluates alike
        return cls(Posynomial.from_terms(cast(Any, terms)), device, source, error)


__all__ = [
    "FEATURES",
    "LatencyModel",
    "OpTerms",
    "feature_values",
    "fit_coefficients",
    "fit_errors",
    "latency_features",
    "op_terms",
    "predict",
]

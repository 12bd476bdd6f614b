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

**Fit.** A profile times the model realized at width vectors of its own width space (the base,
SynExp solutions at random budgets, and random vectors with a scale per vector, a factor per role of
group and a little noise per group, on the multiple-of-8 grid: :func:`sample_widths`), interleaved,
median of several runs each (:mod:`widthsearch.hardware.timing`), and fits the coefficients by
non-negative least squares on *relative* error (``scipy.optimize.nnls`` on rows divided by the
measured time). Its error is reported in-sample and by 5-fold cross-validation. Whole models at the
widths a user deploys, not micro-benchmarks of single layers: what runs between layers (allocation,
cache misses, framework overhead) is part of what is fitted.

A roofline ``max(compute, traffic)`` per layer would also stay a geometric program (one
auxiliary variable per layer), but it needs a non-convex fit; benchmarks/bench_latency.py measures
how well the sum of terms ranks and predicts, against MACs alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch._io import write_atomic
from widthsearch.errors import ProfileError, WidthSearchError
from widthsearch.hardware.timing import Device, current_device, measure, median, prepare, spread
from widthsearch.solve.synexp import WEIGHT_KINDS
from widthsearch.space.cost import Posynomial, monomial

if TYPE_CHECKING:
    from widthsearch.space.width_space import WidthSpace

FORMAT = "widthsearch-latency-profile"
FORMAT_VERSION = 1
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
DEFAULT_SAMPLES = 24
UNRELIABLE = 0.15
"""A fit whose median error exceeds this says so wherever it is used."""
_MIN_SAMPLES = 12
_MIN_RUNS = 5
QUICK_SECONDS = 45.0
"""Time a quick profile aims at (the model's realization and timing); at most about a minute."""
DEFAULT_MODELS = ("efficientnet_b0", "mobilenetv2_100", "resnet50")
"""What ``widthsearch profile`` measures when no model is named: inverted residuals with
squeeze-excite, plain inverted residuals, dense bottlenecks."""


# ------------------------------------------------------------------------------ features
_FREE_OPS = {
    "view",
    "reshape",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "view_as",
    "reshape_as",
    "permute",
    "transpose",
    "__getitem__",
    "dropout",
    "expand",
    "expand_as",
    "contiguous",
    "size",
    "dim",
}


def _op_tracer_class() -> type:
    from widthsearch.space._trace import _NAMES, ChannelTracer, _fname, _tensors

    class OpTracer(ChannelTracer):
        """The shape-only channel analysis, recording what every op touches."""

        def __init__(self, model: Any) -> None:
            super().__init__(model)
            self.ops: list[tuple[str, list[tuple[tuple[int, ...], int]], str]] = []
            """(category, [(channel nodes, positions per channel)], layer name or "") per op
            that costs time."""

        def elems(self, t: Any) -> tuple[tuple[int, ...], int]:
            lab = self.label(t)
            return lab.segs, t.numel() // t.shape[lab.dim]

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            n = len(self.layers)
            out = super().__torch_function__(func, types, args, kwargs)
            name = _NAMES.get(func) or _fname(func)
            short = name.rpartition(".")[2]
            if short in _FREE_OPS or short.endswith("__get__"):
                return out
            inputs = [t for t in _tensors((*args, *kwargs.values())) if self.label(t)]
            outputs = [t for t in _tensors((out,)) if self.label(t)]
            layer = next(
                (lay for lay in self.layers[n:] if lay.kind not in ("norm", "scale")), None
            )
            if layer is not None:  # a conv, linear, filter (a computed weight may add a scale)
                kind = "conv" if layer.kind in ("conv", "grouped", "linear") else "depthwise"
                seen = [self.elems(t) for t in inputs[:1] + outputs[:1]]
                self.ops.append((kind, seen, layer.name))
            elif inputs or outputs:
                big = max(inputs + outputs, key=lambda t: t.numel())
                self.ops.append(("other", [self.elems(big)], ""))
            return out

    return OpTracer


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
    from widthsearch.space._optrace import run_traced

    tracer, groups_of = run_traced(space, _op_tracer_class(), train=False, what="model its latency")
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


def _model_from(
    space: WidthSpace, coefficients: Mapping[str, float], device: Device, source: str, error: float
) -> LatencyModel:
    feats = latency_features(space)
    terms = [
        (coefficients.get(f, 0.0) * c, m)
        for f in FEATURES
        for m, c in feats[f].terms
        if coefficients.get(f, 0.0) > 0
    ]
    return LatencyModel(Posynomial.from_terms(terms), device, source, error)


# ----------------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class ModelFit:
    """The timings of one model at many widths and the coefficients fitted to them."""

    model: str
    input_size: tuple[int, ...]
    timm_kwargs: Mapping[str, Any]
    fingerprint: str
    coefficients: dict[str, float]
    errors: dict[str, float]
    samples: tuple[dict[str, Any], ...]
    """Per width vector: ``widths``, ``ms`` (median), ``spread`` (IQR / median), ``features``."""
    seconds: float = 0.0

    def matches(self, space: WidthSpace) -> bool:
        return (
            self.model == space.model
            and tuple(self.input_size) == tuple(space.input_size)
            and dict(self.timm_kwargs) == dict(space.timm_kwargs)
            and self.fingerprint == space.fingerprint
        )

    def describe(self) -> str:
        c, h, w = self.input_size
        return f"{self.model} at {c}x{h}x{w}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "timm_kwargs": dict(self.timm_kwargs),
            "fingerprint": self.fingerprint,
            "coefficients": dict(self.coefficients),
            "errors": dict(self.errors),
            "seconds": self.seconds,
            "samples": [dict(s) for s in self.samples],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelFit:
        return cls(
            model=d["model"],
            input_size=tuple(d["input_size"]),
            timm_kwargs=dict(d.get("timm_kwargs", {})),
            fingerprint=d["fingerprint"],
            coefficients={k: float(v) for k, v in d["coefficients"].items()},
            errors={k: float(v) for k, v in d["errors"].items()},
            samples=tuple(d["samples"]),
            seconds=float(d.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class Profile:
    """A device's latency profile: fits per model, and one pooled over all of them."""

    device: Device
    fits: tuple[ModelFit, ...]
    pooled: dict[str, float] = field(default_factory=dict)
    """Coefficients fitted to every sample of every model: for models without a fit."""
    pooled_errors: dict[str, float] = field(default_factory=dict)
    created: str = ""

    # -------------------------------------------------------------- use
    def check(self, device: Device, path: str = "the profile") -> None:
        """Refuse a profile measured elsewhere: latencies do not carry across devices."""
        why = device.mismatch(self.device)
        if why:
            raise ProfileError(
                f"{path} was measured on another device or setting: {why}; run "
                "`widthsearch profile` here or drop --profile for a quick one"
            )

    def fit_for(self, space: WidthSpace) -> ModelFit | None:
        return next((f for f in self.fits if f.matches(space)), None)

    def latency_model(self, space: WidthSpace) -> LatencyModel:
        """The latency model of ``space``: its own fit if the profile has one, else pooled."""
        fit = self.fit_for(space)
        if fit is not None:
            err = fit.errors.get("cv_median_abs_error", math.nan)
            if math.isnan(err):
                err = fit.errors["median_abs_error"]
            source = (
                f"fitted to {len(fit.samples)} width vectors of {fit.describe()} on "
                f"{self.device.describe()}; median error {100 * err:.1f}%"
            )
            if err > UNRELIABLE:
                source += (
                    " (unreliable: the timings were noisy; on a busy machine pin threads with "
                    "--threads 1, or profile longer with widthsearch profile --seconds)"
                )
            return _model_from(space, fit.coefficients, self.device, source, err)
        if not self.pooled:
            raise ProfileError("the profile has no fits")
        names = ", ".join(f.describe() for f in self.fits)
        err = self.pooled_errors.get("median_abs_error", math.nan)
        source = (
            f"pooled fit over {names} on {self.device.describe()} (no fit for {space.model} "
            f"at this input size; median error on those models {100 * err:.1f}%)"
        )
        return _model_from(space, self.pooled, self.device, source, err)

    # -------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "device": self.device.to_dict(),
            "features": list(FEATURES),
            "pooled": dict(self.pooled),
            "pooled_errors": dict(self.pooled_errors),
            "fits": [f.to_dict() for f in self.fits],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "profile") -> Profile:
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise ProfileError(f"{source} is not a widthsearch latency profile")
        if d.get("format_version") != FORMAT_VERSION:
            raise ProfileError(
                f"{source} has format version {d.get('format_version')}, this widthsearch "
                f"reads {FORMAT_VERSION}; make it again with `widthsearch profile`"
            )
        if list(d.get("features", [])) != list(FEATURES):
            raise ProfileError(f"{source} was fitted with other latency terms; make it again")
        try:
            return cls(
                device=Device.from_dict(d["device"]),
                fits=tuple(ModelFit.from_dict(f) for f in d["fits"]),
                pooled={k: float(v) for k, v in d.get("pooled", {}).items()},
                pooled_errors={k: float(v) for k, v in d.get("pooled_errors", {}).items()},
                created=str(d.get("created", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"{source} is damaged ({type(exc).__name__}: {exc})") from None

    def save(self, path: str | os.PathLike) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Profile:
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ProfileError(f"no latency profile at {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path} is not JSON ({exc})") from None
        return cls.from_dict(data, str(path))


def pooled_fit(fits: Sequence[ModelFit]) -> tuple[dict[str, float], dict[str, float]]:
    rows = [s["features"] for f in fits for s in f.samples]
    ms = [s["ms"] for f in fits for s in f.samples]
    coef = fit_coefficients(rows, ms)
    return dict(zip(FEATURES, coef, strict=True)), fit_errors(rows, ms)


# ---------------------------------------------------------------------------- measuring
def _roles(space: WidthSpace) -> list[int]:
    """A role per group: groups touched by the same kinds of layers (expansions that feed a
    depthwise conv, residual streams, squeeze-excite bottlenecks, ...) share one."""
    kinds: dict[int, set[str]] = {g.id: set() for g in space.groups}
    for lay in space.layers:
        for side, groups in (("in", lay.in_groups), ("out", lay.out_groups)):
            for g in groups:
                kinds[g].add(f"{side}:{lay.kind}")
    keys: dict[frozenset[str], int] = {}
    return [keys.setdefault(frozenset(kinds[g.id]), len(keys)) for g in space.groups]


SOLVED_SHARE = 1 / 3
"""Share of a profile's width vectors that are SynExp solutions at random budgets."""


def solved_widths(space: WidthSpace, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``n`` width vectors the solver proposes: PreCrop and PreConfig at random MACs budgets
    (0.4-1.1x), with or without a params budget, and random width caps (1.2-2x): the shapes
    users deploy, which random vectors reach only by chance (every expansion at its cap)."""
    from widthsearch.solve.program import Budgets, SynExpProgram
    from widthsearch.solve.rounding import round_on_grid

    if n <= 0:
        return []
    rng = random.Random(seed + 7919)
    program = SynExpProgram(space)
    out: list[tuple[int, ...]] = []
    for _ in range(4 * n):
        if len(out) >= n:
            break
        mode = rng.choice(("precrop", "preconfig", "preconfig"))
        macs = rng.uniform(0.4, 1.1 if mode == "preconfig" else 0.95)
        params = rng.choice((None, rng.uniform(0.5, 1.2)))
        cap = 1.0 if mode == "precrop" else rng.uniform(1.2, 2.0)
        budgets = Budgets(
            params=None if params is None else math.floor(params * space.params()),
            macs=math.floor(macs * space.macs()),
        )
        try:
            sol = program.solve(budgets, min_width=0.1, max_width=cap)
            widths, _ = round_on_grid(
                space, sol.multipliers, budgets, divisor=8, min_width=0.1, max_width=cap
            )
        except WidthSearchError:  # an infeasible mix: draw another
            continue
        if widths not in out and widths != space.base_widths:
            out.append(widths)
    return out


def sample_widths(space: WidthSpace, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    """The base widths, SynExp solutions at random budgets (:data:`SOLVED_SHARE` of ``n``,
    :func:`solved_widths`) and random width vectors, ``n`` in all, on the multiple-of-8 grid.

    A random vector's free groups get multipliers ``s · r_role · e_g``: a scale per vector
    (log-uniform in 0.4-1.4), a factor per *role* of group (log-uniform in 0.4-2.2; groups
    touched by the same kinds of layers share a role, so expansions and residual streams move
    apart as PreConfig moves them) and a little per-group noise (0.75-1.33), clipped to 0.1-2:
    the range PreCrop and PreConfig cover, with uniform and uneven shapes, so that every term of
    the latency model varies on its own.
    """
    from widthsearch.solve.rounding import nearest, width_grid

    grid = width_grid(space, divisor=8, min_width=0.1, max_width=2.0)
    roles = _roles(space)
    rng = random.Random(seed)

    def logu(lo: float, hi: float) -> float:
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    out = [space.base_widths]
    out += solved_widths(space, int(SOLVED_SHARE * (n - 1)), seed)
    while len(out) < n:
        s = logu(0.4, 1.4)
        r = [logu(0.4, 2.2) for _ in range(max(roles) + 1)]
        widths = []
        for g, role in zip(space.groups, roles, strict=True):
            x = min(2.0, max(0.1, s * r[role] * logu(0.75, 1.33)))
            widths.append(nearest(grid[g.id], x * g.width))
        if tuple(widths) not in out:
            out.append(tuple(widths))
    return out


def time_widths(
    space: WidthSpace,
    widths: Sequence[Sequence[int]],
    device: Device,
    *,
    runs: int,
    warmup: int = 2,
    max_bytes: float = 1.5e9,
    deadline: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[float, float]]:
    """(median ms, spread) of ``space`` realized at each width vector, measured interleaved.

    Models are realized in chunks of at most ``max_bytes`` of parameters; every chunk times
    the base model too, and a chunk's medians are scaled by the base's overall median over its
    median in that chunk, so that load that changes between chunks cancels. ``deadline`` (a
    ``time.perf_counter()`` value) ends the timed rounds early (see :func:`measure`).
    """
    import torch

    chunks: list[list[int]] = [[]]
    size = 0.0
    for i, w in enumerate(widths):
        b = 4.0 * space.params(w)
        if chunks[-1] and size + b > max_bytes:
            chunks.append([])
            size = 0.0
        chunks[-1].append(i)
        size += b
    results: list[tuple[float, float]] = [(0.0, 0.0)] * len(widths)
    base_medians = []
    for k, chunk in enumerate(chunks):
        torch.manual_seed(0)
        models = [prepare(space.realize(space.base_widths), device)]
        models += [prepare(space.realize(widths[i]), device) for i in chunk]
        if progress:
            progress(f"timing {len(chunk)} models (chunk {k + 1}/{len(chunks)})")
        chunk_deadline = None
        if deadline is not None:  # share what is left among the chunks still to time
            chunk_deadline = time.perf_counter() + (deadline - time.perf_counter()) / (
                len(chunks) - k
            )
        times = measure(
            models,
            space.input_size,
            device,
            runs=runs,
            warmup=warmup,
            seed=k,
            deadline=chunk_deadline,
        )
        base = median(times[0])
        base_medians.append(base)
        for i, t in zip(chunk, times[1:], strict=True):
            results[i] = (median(t) / base, spread(t))
        del models
    overall = median(base_medians)
    return [(r * overall, s) for r, s in results]


def fit_model(
    space: WidthSpace,
    device: Device,
    *,
    samples: int = DEFAULT_SAMPLES,
    seconds: float = QUICK_SECONDS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ModelFit:
    """Time ``space`` at ``samples`` width vectors within about ``seconds`` and fit it.

    One quick timing of the base sets how many vectors fit in ``seconds`` (at least 12, fewer
    than asked for on a slow model); the timed rounds (5 to 25 runs per vector) then stop at
    the deadline, after at least 3.
    """
    import torch

    start = time.perf_counter()
    deadline = start + seconds
    base = prepare(space.realize(), device)
    realize_s = time.perf_counter() - start
    probe = median(measure([base], space.input_size, device, runs=2, warmup=1)[0]) / 1e3
    del base
    torch.manual_seed(0)
    per_model = 1.5 * probe  # wider models run slower than the base
    budget = deadline - time.perf_counter()
    fit_samples = int(budget / (realize_s * 1.3 + (_MIN_RUNS + 1) * per_model))
    samples = min(samples, max(_MIN_SAMPLES, fit_samples))
    budget -= samples * (realize_s * 1.3 + per_model)  # realization and warm-up
    runs = int(max(_MIN_RUNS, min(25, budget / (samples * per_model))))
    widths = sample_widths(space, samples, seed)
    rows = [feature_values(space, w) for w in widths]
    timed = time_widths(
        space, widths, device, runs=runs, warmup=1, deadline=deadline, progress=progress
    )
    ms = [t for t, _ in timed]
    coef = fit_coefficients(rows, ms)
    return ModelFit(
        model=space.model,
        input_size=tuple(space.input_size),
        timm_kwargs=dict(space.timm_kwargs),
        fingerprint=space.fingerprint,
        coefficients=dict(zip(FEATURES, coef, strict=True)),
        errors=fit_errors(rows, ms),
        samples=tuple(
            {"widths": list(w), "ms": t, "spread": s, "features": r}
            for w, (t, s), r in zip(widths, timed, rows, strict=True)
        ),
        seconds=time.perf_counter() - start,
    )


def make_profile(
    spaces: Sequence[WidthSpace],
    device: Device,
    *,
    samples: int = DEFAULT_SAMPLES,
    seconds: float = QUICK_SECONDS,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Profile:
    """Measure ``device`` on every width space and fit a profile (about ``seconds`` each)."""
    fits = []
    for space in spaces:
        if progress:
            progress(f"profiling {space.model} on {device.describe()}")
        fits.append(
            fit_model(space, device, samples=samples, seconds=seconds, seed=seed, progress=progress)
        )
    pooled, errors = pooled_fit(fits)
    return Profile(
        device=device,
        fits=tuple(fits),
        pooled=pooled,
        pooled_errors=errors,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


# --------------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/widthsearch/profiles`` (default ``~/.cache/widthsearch/profiles``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "widthsearch" / "profiles"


def cache_path(space: WidthSpace, device: Device) -> Path:
    what = [device.to_dict(), space.model, list(space.input_size), space.timm_kwargs]
    key = json.dumps([*what, space.fingerprint], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{space.model}-{device.type}-{digest}.json"


@dataclass(frozen=True)
class Resolved:
    """A latency model and where it came from, for the output."""

    model: LatencyModel
    note: str


def resolve_latency_model(
    space: WidthSpace,
    *,
    profile: str | os.PathLike | None = None,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int | None = None,
    dtype: str | None = None,
    seconds: float = QUICK_SECONDS,
    samples: int = DEFAULT_SAMPLES,
    progress: Callable[[str], None] | None = None,
) -> Resolved:
    """The latency model for ``space``: from ``profile`` (checked against this device), or a
    cached quick profile, made now (about a minute) if there is none.

    Settings not given (threads, batch size, dtype) are the profile's when one is given, else
    torch's thread count, batch 1 and float32. ``seconds`` and ``samples`` size a quick
    profile.

    Raises:
        ProfileError: the profile is unreadable or was measured on another device or setting.
        DeviceError: the device is not available.
    """
    if profile is not None:
        prof = Profile.load(profile)
        here = current_device(
            device if device else prof.device.type,
            threads=threads or (prof.device.threads if prof.device.type == "cpu" else None),
            batch_size=batch_size or prof.device.batch_size,
            dtype=dtype or prof.device.dtype,
        )
        prof.check(here, str(profile))
        model = prof.latency_model(space)
        return Resolved(model, f"latency model: {model.source} (profile {profile})")
    here = current_device(
        device, threads=threads, batch_size=batch_size or 1, dtype=dtype or "float32"
    )
    path = cache_path(space, here)
    if path.exists():
        try:
            prof = Profile.load(path)
            prof.check(here, str(path))
            model = prof.latency_model(space)
            return Resolved(model, f"latency model: {model.source} (cached quick profile {path})")
        except ProfileError:
            pass  # a damaged or stale cache entry is made again
    start = time.perf_counter()
    prof = make_profile([space], here, samples=samples, seconds=seconds, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    prof.save(path)
    model = prof.latency_model(space)
    note = (
        f"latency model: no --profile given, so a quick profile was made in "
        f"{time.perf_counter() - start:.0f} s and cached at {path}; {model.source}"
    )
    return Resolved(model, note)


__all__ = [
    "DEFAULT_MODELS",
    "FEATURES",
    "LatencyModel",
    "ModelFit",
    "OpTerms",
    "op_terms",
    "Profile",
    "ProfileError",
    "Resolved",
    "cache_dir",
    "cache_path",
    "feature_values",
    "fit_coefficients",
    "fit_errors",
    "fit_model",
    "latency_features",
    "make_profile",
    "pooled_fit",
    "resolve_latency_model",
    "sample_widths",
    "time_widths",
]

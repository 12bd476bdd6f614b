"""Benchmark: widthsearch's objectives against ground truth (Channel-Bench-Macro, CIFAR-10).

Channel-Bench-Macro trained every one of the 4^7 = 16,384 width configurations of a ResNet and of
a MobileNet (60 epochs, 3 seeds). With those tables, how good a pick is becomes a lookup. This
benchmark, as a user would:

1. builds the two networks from our own definitions (``benchmarks/channel_bench_macro.py``) and
   parses them with :class:`widthsearch.WidthSpace`; checks that widthsearch's exact cost model
   gives the table's params and MACs at **all** 16,384 codes (the costs are posynomials in the
   widths, evaluated on every lattice point at once) and that realized models at a sample of
   codes count the same;
2. scores every code by every objective of :mod:`widthsearch.solve.objectives` (per-group
   weights read from the parsed space), so each objective's exact argmax over the table within
   a budget is the exact lattice optimum of that objective on the grid 0.25x, 0.5x, 0.75x, 1x;
3. for 20 log-spaced MACs budgets (PreCrop), 20 params budgets and PreConfig at the MACs of the
   uniform codes 2222222 and 3333333, reports each pick's accuracy, its regret to the oracle (the
   best table entry within the same budgets) and its gain over the uniform multiplier within the
   budget, next to the params argmax and the median configuration in the budget's band (costs
   within 10% below the budget), and the tool's own pick (:func:`tool_pick`) where
   ``reconfigure`` takes a grid;
4. Kendall τ of each objective against accuracy inside joint ~10% MACs x ~10% params bins, next
   to params' and MACs';
5. the noise floor: the regret of one seed's accuracy used as the predictor, and the seeds'
   spread.

    uv run python benchmarks/groundtruth.py [--data DIR] [--json FILE]

The tables are read from ``--data`` (default: ``$CHANNEL_BENCH_MACRO``, else
``../shared/data/channel-bench-macro`` next to the repository); they are never copied.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from channel_bench_macro import LEVELS, NETWORKS  # noqa: E402

UNIFORM = ("1111111", "2222222", "3333333", "4444444")
PRECONFIG = ("2222222", "3333333")
N_BUDGETS = 20
BAND = 0.9
"""The band of a budget B: configurations with the budgeted cost in [0.9 B, B]."""
BIN = 1.1
"""Kendall-τ bins: MACs and params each within a factor 1.1."""
CHOICES = "0.25x,0.5x,0.75x,1x"
SAMPLE = ("1111111", "4432214", "3124142")
"""Codes realized and counted (the rest are checked on the cost model)."""


def default_data() -> Path:
    """``$CHANNEL_BENCH_MACRO``, else ``shared/data/channel-bench-macro`` beside the repository."""
    env = os.environ.get("CHANNEL_BENCH_MACRO")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[1]
    for up in (root, *root.parents):
        cand = up.parent / "shared" / "data" / "channel-bench-macro"
        if cand.is_dir():
            return cand
    return Path("/work/shared/data/channel-bench-macro")


# --------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Table:
    """One Channel-Bench-Macro table, codes sorted."""

    name: str
    codes: list[str]
    digits: np.ndarray  # (N, 7) ints in 1..4
    acc: np.ndarray  # 3-seed mean
    seeds: np.ndarray  # (N, 3)
    params: np.ndarray
    macs: np.ndarray

    def index(self, code: str) -> int:
        return self.codes.index(code)


def load_table(path: Path, name: str) -> Table:
    """Read ``Results_<name>.json``."""
    data = json.loads(path.read_text())
    codes = sorted(data)
    return Table(
        name=name,
        codes=codes,
        digits=np.array([[int(c) for c in k] for k in codes]),
        acc=np.array([data[k]["mean"] for k in codes], dtype=float),
        seeds=np.array([data[k]["acc"] for k in codes], dtype=float),
        params=np.array([data[k]["params"] for k in codes], dtype=np.int64),
        macs=np.array([data[k]["flops"] for k in codes], dtype=np.int64),
    )


# --------------------------------------------------------------------------- the space
def parse(name: str):
    """The :class:`widthsearch.WidthSpace` of network ``name`` (32x32 input) and the ids of its
    free groups, which are the table's 7 positions in order."""
    import torch

    from widthsearch import WidthSpace

    factory, base = NETWORKS[name]
    space = WidthSpace.from_module(factory(), torch.zeros(1, 3, 32, 32), name=name)
    free = [g.id for g in space.groups if not g.fixed]
    if [space.groups[g].width for g in free] != list(base):
        raise SystemExit(f"{name}: the parsed free groups are not the table's 7 positions")
    return space, free


def lattice(space, free: list[int], digits: np.ndarray) -> np.ndarray:
    """Full width vectors (N, groups) of the codes: position i at round(d_i * base_i / 4)."""
    widths = np.tile(np.array(space.base_widths, dtype=np.int64), (len(digits), 1))
    base = np.array([space.groups[g].width for g in free])
    widths[:, free] = np.rint(digits * base / LEVELS).astype(np.int64)
    return widths


def evaluate(poly, widths: np.ndarray) -> np.ndarray:
    """A cost posynomial at every row of ``widths``, exactly (integer coefficients)."""
    total = np.zeros(len(widths), dtype=np.int64)
    for mono, coef in poly.terms:
        if int(coef) != coef:
            raise SystemExit("a fractional cost coefficient: this check needs integer ones")
        term = np.full(len(widths), int(coef), dtype=np.int64)
        for g, e in mono:
            term = term * widths[:, g] ** e
        total += term
    return total


def check_counts(space, free, table: Table, widths: np.ndarray) -> dict[str, Any]:
    """widthsearch's params and MACs against the table at every code, and realized models at
    :data:`SAMPLE` (widthsearch's realization and our own definition, counted by torch)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params, macs = evaluate(space.param_cost, widths), evaluate(space.mac_cost, widths)
    bad_p = int((params != table.params).sum())
    bad_m = int((macs != table.macs).sum())
    factory, _ = NETWORKS[table.name]
    realized = []
    for code in SAMPLE:
        i = table.index(code)
        w = [int(v) for v in widths[i]]
        assert space.params(w) == params[i] and space.macs(w) == macs[i]
        for label, model in (("widthsearch", space.realize(w)), ("definition", factory(code=code))):
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                model.eval()(torch.zeros(1, 3, 32, 32))
            n_p = sum(p.numel() for p in model.parameters())
            n_m = counter.get_total_flops() // 2
            realized.append(
                {"code": code, "by": label, "params": n_p, "macs": n_m,
                 "equal": bool(n_p == table.params[i] and n_m == table.macs[i])}
            )  # fmt: skip
    return {
        "codes": len(table.codes),
        "params_mismatches": bad_p,
        "macs_mismatches": bad_m,
        "realized": realized,
        "all_equal": bool(bad_p == 0 and bad_m == 0 and all(r["equal"] for r in realized)),
    }


# --------------------------------------------------------------------------- scores
def objective_scores(space, widths: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every objective at every code (higher is better), and its per-group weights."""
    from widthsearch.solve.objectives import OBJECTIVES, weights

    base = np.array(space.base_widths, dtype=float)
    logx = np.log(widths / base)
    scores, info = {}, {}
    for name, obj in OBJECTIVES.items():
        a, b = (np.array(v) for v in weights(space, obj))
        scores[name] = logx @ a - (1.0 / widths) @ b
        info[name] = {"log_weights": a.tolist(), "inverse_weights": b.tolist(), "hold": obj.hold}
    return scores, info


def check_synexp(space, widths: np.ndarray, scores: dict[str, np.ndarray]) -> float:
    """Largest gap between the separable SynExp score and widthsearch's exact log SynExp at the
    sample codes (0 up to rounding on these networks, which have no concatenations)."""
    from widthsearch.solve.synexp import log_synexp

    rows = np.linspace(0, len(widths) - 1, 64).astype(int)
    return max(
        abs(log_synexp(space, [int(v) for v in widths[i]]) - scores["synexp"][i]) for i in rows
    )


# --------------------------------------------------------------------------- picks
def argmax(score: np.ndarray, mask: np.ndarray, *ties: np.ndarray) -> int:
    """Index of the best ``score`` within ``mask``; equal scores (to 1e-9) go to the smaller
    ``ties[0]``, then ``ties[1]`` (cheaper first), then the code order."""
    best = tied(score, mask)
    if len(best) == 1:
        return int(best[0])
    keys = [t[best] for t in reversed(ties)]
    return int(best[np.lexsort(keys)][0]) if keys else int(best[0])


def tied(score: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Indices within ``mask`` whose ``score`` equals the best (to 1e-9)."""
    idx = np.flatnonzero(mask)
    s = score[idx]
    return idx[s >= s.max() - 1e-9 * max(1.0, abs(s.max()))]


@dataclass(frozen=True)
class Budget:
    """One budget: the configurations it admits and what the held objective admits."""

    kind: str  # "macs", "params", "preconfig"
    label: str
    value: int
    mask: np.ndarray
    held_mask: np.ndarray
    band: np.ndarray
    uniform: int
    cost: np.ndarray  # the budgeted cost, for ties
    other: np.ndarray


def budgets(table: Table, space, free: list[int]) -> list[Budget]:
    """20 MACs and 20 params budgets, log-spaced over the table's range, and PreConfig at the
    MACs of 2222222 and 3333333."""
    uni = [table.index(c) for c in UNIFORM]
    out = []
    polys = {"macs": space.mac_cost, "params": space.param_cost}
    spec = [("macs", "params", table.macs, table.params), ("params", "macs", table.params,
            table.macs)]  # fmt: skip
    for kind, other_kind, cost, other in spec:
        values = np.floor(np.geomspace(cost.min(), cost.max(), N_BUDGETS)).astype(np.int64)
        values[-1] = cost.max()
        for v in values:
            held = uniform_other(space, free, polys[kind], polys[other_kind], int(v))
            out.append(_budget(kind, f"{v / 1e6:.1f}M", int(v), cost, other, uni, held))
    for code in PRECONFIG:
        i = table.index(code)
        v = int(table.macs[i])
        out.append(_budget("preconfig", code, v, table.macs, table.params, uni, table.params[i]))
    return out


def uniform_other(space, free: list[int], cost, other, budget: int) -> float:
    """The other cost of the continuous uniform multiplier whose ``cost`` is ``budget``: what
    ``synexp-held`` holds the unbudgeted cost at (as ``reconfigure`` does on a fine grid)."""
    base = space.base_widths

    def at(poly, alpha: float) -> float:
        w = [alpha * b if g in free else b for g, b in enumerate(base)]
        return float(sum(c * math.prod(w[g] ** e for g, e in m) for m, c in poly.terms))

    lo, hi = 1e-3, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at(cost, mid) <= budget else (lo, mid)
    return at(other, lo)


def _budget(kind, label, value, cost, other, uni, held) -> Budget:
    mask = cost <= value
    fits = [i for i in uni if mask[i]]
    u = max(fits, key=lambda i: cost[i])
    # the band: the configurations within 10% below the dearest one the budget admits
    band = mask & (cost >= BAND * cost[mask].max())
    return Budget(kind, label, value, mask, mask & (other <= held), band, u, cost, other)


def picks(
    table: Table, b: Budget, scores: dict[str, np.ndarray], info
) -> tuple[dict[str, int | None], dict[str, np.ndarray]]:
    """Each method's pick at budget ``b``: every objective's exact argmax (the held one within
    its held budget, or the plain one where the held budget admits nothing), the params argmax;
    and per objective the codes tied at its argmax. The random median is :func:`row`'s."""
    out: dict[str, int | None] = {}
    ties: dict[str, np.ndarray] = {}
    for name, s in scores.items():
        held = info[name]["hold"] and b.held_mask.any()
        mask = b.held_mask if held else b.mask
        out[name] = argmax(s, mask, b.cost, b.other)
        ties[name] = tied(s, mask)
    out["params-argmax"] = argmax(table.params.astype(float), b.mask, table.macs)
    return out, ties


def row(
    table: Table,
    b: Budget,
    chosen: dict[str, int | None],
    ties: dict[str, np.ndarray],
    tool: dict[str, Any],
) -> dict:
    """One budget's figures: oracle, uniform, and per method accuracy, regret and gain (and for
    an objective, how many codes tie at its argmax and their mean regret: a random tie-break's
    expected regret)."""
    acc = table.acc
    oracle = int(np.flatnonzero(b.mask)[np.argmax(acc[b.mask])])
    methods: dict[str, Any] = {}
    for name, i in chosen.items():
        if i is None:
            continue
        methods[name] = {
            "code": table.codes[i],
            "acc": float(acc[i]),
            "regret": float(acc[oracle] - acc[i]),
            "gain": float(acc[i] - acc[b.uniform]),
            "params": int(table.params[i]),
            "macs": int(table.macs[i]),
            "within": bool(b.mask[i]),
        }
        if name in ties:
            methods[name]["ties"] = len(ties[name])
            methods[name]["tie_mean_regret"] = float(acc[oracle] - acc[ties[name]].mean())
    med = float(np.median(acc[b.band]))
    methods["random-median"] = {
        "acc": med,
        "regret": float(acc[oracle] - med),
        "gain": float(med - acc[b.uniform]),
        "band_size": int(b.band.sum()),
    }
    if tool.get("code") is not None:
        i = table.index(tool["code"])
        regret, gain = float(acc[oracle] - acc[i]), float(acc[i] - acc[b.uniform])
        tool = {**tool, "regret": regret, "gain": gain}
    methods["tool"] = tool
    return {
        "kind": b.kind,
        "budget": b.label,
        "value": b.value,
        "candidates": int(b.mask.sum()),
        "oracle": {"code": table.codes[oracle], "acc": float(acc[oracle]),
                   "gain": float(acc[oracle] - acc[b.uniform])},
        "uniform": {"code": table.codes[b.uniform], "acc": float(acc[b.uniform])},
        "methods": methods,
    }  # fmt: skip


# --------------------------------------------------------------------------- the tool
def tool_pick(space, free, table: Table, b: Budget, objective: str = "synexp") -> dict[str, Any]:
    """The tool's own pick at budget ``b``: ``reconfigure(space, macs=..., params=...,
    choices=...)`` on the grid 0.25x..1x where ``reconfigure`` takes ``choices`` (the exact
    lattice search); otherwise ``{"status": "not available"}``. The pick is mapped back to a
    code and checked to be on the table and within the budget."""
    import inspect

    from widthsearch.solve.reconfigure import reconfigure

    accepted = inspect.signature(reconfigure).parameters
    if "choices" not in accepted:
        return {"status": "not available", "why": "reconfigure takes no choices= yet"}
    kwargs: dict[str, Any] = {"macs" if b.kind != "params" else "params": b.value}
    if "objective" in accepted:
        kwargs["objective"] = objective
    start = time.perf_counter()
    try:
        result = reconfigure(space, mode="precrop", choices=CHOICES, **kwargs)
    except Exception as exc:  # noqa: BLE001 - recorded as the tool's answer at this budget
        return {"status": "error", "why": f"{type(exc).__name__}: {exc}"}
    seconds = time.perf_counter() - start
    code = widths_code(result.widths, space, free)
    if code is None:
        return {"status": "off the table", "widths": list(result.widths), "seconds": seconds}
    i = table.index(code)
    return {
        "status": "ok",
        "code": code,
        "acc": float(table.acc[i]),
        "within": bool(b.mask[i]),
        "seconds": seconds,
    }


def widths_code(widths, space, free) -> str | None:
    """The 7-digit code of a width vector, or None off the table's grid."""
    digits = []
    for g in free:
        base = space.groups[g].width
        d = next((k for k in range(1, LEVELS + 1) if round(k * base / LEVELS) == widths[g]), None)
        if d is None:
            return None
        digits.append(str(d))
    return "".join(digits)


# --------------------------------------------------------------------------- rank and noise
def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's τ-b of two samples (ties in either count as in scipy's ``kendalltau``)."""
    sx = np.sign(x[:, None] - x[None, :])
    sy = np.sign(y[:, None] - y[None, :])
    num = (sx * sy).sum()
    den = math.sqrt(float(np.abs(sx).sum()) * float(np.abs(sy).sum()))
    return float(num / den) if den else float("nan")


def binned_tau(table: Table, predictors: dict[str, np.ndarray], truth=None) -> dict[str, float]:
    """Kendall τ-b of each predictor against accuracy inside joint bins of MACs and params
    (each a factor :data:`BIN` wide), averaged over bins weighted by their pairs."""
    truth = table.acc if truth is None else truth
    key = np.floor(np.log(table.macs) / math.log(BIN)) * 1e4 + np.floor(
        np.log(table.params) / math.log(BIN)
    )
    _, inverse = np.unique(key, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bins = np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1)
    bins = [i for i in bins if len(i) >= 3]
    out = {}
    for name, p in predictors.items():
        num = den = 0.0
        for i in bins:
            tau = kendall_tau_b(p[i], truth[i])
            if np.isfinite(tau):
                pairs = len(i) * (len(i) - 1) / 2
                num, den = num + tau * pairs, den + pairs
        out[name] = num / den if den else float("nan")
    out["_bins"] = float(len(bins))
    return out


def noise_floor(table: Table, bset: list[Budget]) -> dict[str, Any]:
    """How well one seed predicts: the regret of seed k's accuracy as the predictor, (a) against
    the 3-seed mean (which contains it) and (b) against the mean of the other two seeds (an
    independent measurement); and the seeds' spread."""
    out: dict[str, Any] = {}
    std = table.seeds.std(axis=1, ddof=1)
    out["seed_std_median"] = float(np.median(std))
    out["seed_std_mean"] = float(std.mean())
    out["mean_se_median"] = float(np.median(std) / math.sqrt(3))
    for kind in ("macs", "params", "preconfig"):
        sub = [b for b in bset if b.kind == kind]
        own, other = [], []
        for k in range(3):
            rest = table.seeds[:, [j for j in range(3) if j != k]].mean(axis=1)
            for b in sub:
                i = argmax(table.seeds[:, k], b.mask, b.cost)
                own.append(table.acc[b.mask].max() - table.acc[i])
                other.append(rest[b.mask].max() - rest[i])
        out[kind] = {"vs_mean": float(np.mean(own)), "vs_other_seeds": float(np.mean(other))}
    return out


# --------------------------------------------------------------------------- run and print
def run_network(name: str, data: Path, with_tool: bool) -> dict[str, Any]:
    start = time.perf_counter()
    table = load_table(data / f"Results_{name}.json", name)
    space, free = parse(name)
    widths = lattice(space, free, table.digits)
    counts = check_counts(space, free, table, widths)
    scores, info = objective_scores(space, widths)
    synexp_gap = check_synexp(space, widths, scores)
    bset = budgets(table, space, free)
    rows = []
    for b in bset:
        chosen, ties = picks(table, b, scores, info)
        tool = tool_pick(space, free, table, b) if with_tool else {"status": "skipped"}
        if tool.get("code") is not None:  # is the tool's pick the exact lattice optimum?
            best = float(scores["synexp"][b.mask].max())
            tool["objective_gap"] = best - float(scores["synexp"][table.index(tool["code"])])
        rows.append(row(table, b, chosen, ties, tool))
    predictors = {**scores, "params": table.params.astype(float), "macs": table.macs.astype(float)}
    tau = binned_tau(table, predictors)
    rest = table.seeds[:, 1:].mean(axis=1)
    tau["seed0-vs-seeds12"] = binned_tau(table, {"s": table.seeds[:, 0]}, rest)["s"]
    picked = [r["methods"]["tool"] for r in rows if "objective_gap" in r["methods"]["tool"]]
    tool_check = {
        "budgets": len(rows),
        "on_table": len(picked),
        "within_budget": sum(bool(t["within"]) for t in picked),
        "optimal": sum(t["objective_gap"] <= 1e-9 for t in picked),
        "max_objective_gap": max((t["objective_gap"] for t in picked), default=None),
        "median_seconds": float(np.median([t["seconds"] for t in picked])) if picked else None,
        "max_seconds": max((t["seconds"] for t in picked), default=None),
    }
    return {
        "network": name,
        "tool_check": tool_check,
        "counts": counts,
        "weights": {k: [v["log_weights"][g] or v["inverse_weights"][g] for g in free]
                    for k, v in info.items()},
        "synexp_check_max_gap": synexp_gap,
        "rows": rows,
        "tau": tau,
        "noise": noise_floor(table, bset),
        "seconds": time.perf_counter() - start,
    }  # fmt: skip


def _tool_check_line(t: dict[str, Any] | None) -> str:
    """The tool's pick against the exact SynExp argmax over the table, in one line."""
    if not t or not t["on_table"]:
        return "tool pick: not run"
    return (
        f"tool pick (reconfigure, choices 0.25x..1x): on the table at {t['on_table']}/"
        f"{t['budgets']} budgets, within budget at {t['within_budget']}, the exact SynExp "
        f"lattice optimum at {t['optimal']} (largest log SynExp gap {t['max_objective_gap']:.1e});"
        f" {t['median_seconds']:.2f} s median, {t['max_seconds']:.2f} s at most per pick"
    )


METHODS = ("synexp", "groups", "synexp-held", "depth-width", "params-argmax", "random-median")


def summarize(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method and budget kind: mean and max regret, mean and min gain over uniform."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for m in (*METHODS, "oracle", "tool"):
        out[m] = {}
        for kind in ("macs", "params", "preconfig"):
            rs = [r for r in result["rows"] if r["kind"] == kind]
            if m == "oracle":
                vals = [{"regret": 0.0, "gain": r["oracle"]["gain"]} for r in rs]
            else:
                vals = [r["methods"][m] for r in rs if "regret" in r["methods"][m]]
            if not vals:
                continue
            reg = [v["regret"] for v in vals]
            gain = [v["gain"] for v in vals]
            out[m][kind] = {"mean_regret": float(np.mean(reg)), "max_regret": float(max(reg)),
                            "mean_gain": float(np.mean(gain)), "min_gain": float(min(gain)),
                            "n": len(vals)}  # fmt: skip
            if "ties" in vals[0]:
                out[m][kind]["tied_budgets"] = sum(v["ties"] > 1 for v in vals)
                out[m][kind]["tie_mean_regret"] = float(
                    np.mean([v["tie_mean_regret"] for v in vals])
                )
    return out


def default_rule(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 25.3: a variant replaces SynExp only if its mean regret is lower on both networks
    for MACs, params and PreConfig budgets and it is worse than SynExp by at most 0.1 points at
    every budget."""
    out = {}
    for m in ("groups", "synexp-held", "depth-width"):
        better, worst = True, -math.inf
        for res in results:
            summ = res["summary"]
            for kind in ("macs", "params", "preconfig"):
                better &= summ[m][kind]["mean_regret"] < summ["synexp"][kind]["mean_regret"]
            for r in res["rows"]:
                worst = max(worst, r["methods"][m]["regret"] - r["methods"]["synexp"]["regret"])
        out[m] = {"lower_mean_regret_everywhere": bool(better), "worst_excess": float(worst),
                  "replaces_synexp": bool(better and worst <= 0.1)}  # fmt: skip
    return out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    cols = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).rjust(w) for x, w in zip(r, cols, strict=True))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in cols]), *map(line, rows)])


def format_network(res: dict[str, Any]) -> str:
    c = res["counts"]
    real = sum(r["equal"] for r in c["realized"])
    lines = [
        f"== {res['network']} ({res['seconds']:.1f} s)",
        f"counts: widthsearch's cost model vs the table at all {c['codes']:,} codes: "
        f"{c['params_mismatches']} params and {c['macs_mismatches']} MACs mismatches; "
        f"{real}/{len(c['realized'])} realized models (widthsearch + own definition) count equal",
        "per-position weights (w0..w6): "
        + "; ".join(f"{k} {[round(x, 3) for x in v]}" for k, v in res["weights"].items()),
        f"separable SynExp vs widthsearch's log_synexp: max gap {res['synexp_check_max_gap']:.1e}",
        _tool_check_line(res.get("tool_check")),
    ]
    short = {"synexp": "synexp", "groups": "groups", "synexp-held": "held",
             "depth-width": "dw", "params-argmax": "params", "random-median": "random"}  # fmt: skip
    for kind, title in (("macs", "MACs budgets (PreCrop)"), ("params", "params budgets (PreCrop)"),
                        ("preconfig", "PreConfig: MACs of a uniform code")):  # fmt: skip
        rs = [r for r in res["rows"] if r["kind"] == kind]
        head = ["budget", "oracle", "uniform", "headroom"] + [f"{short[m]}" for m in METHODS]
        head += ["tool"]
        body = []
        for r in rs:
            t = r["methods"]["tool"]
            body.append(
                [r["budget"], f"{r['oracle']['acc']:.2f}", f"{r['uniform']['acc']:.2f}",
                 f"{r['oracle']['gain']:+.2f}"]
                + [f"{r['methods'][m]['regret']:.2f}" for m in METHODS]
                + [f"{t['regret']:.2f}" if "regret" in t else t.get("status", "")]
            )  # fmt: skip
        lines += ["", f"{title}: accuracy of oracle and uniform, regret of each pick (points)",
                  _table(head, body)]  # fmt: skip
    summ = res["summary"]
    body = []
    for m in (*METHODS, "tool", "oracle"):
        s = summ.get(m, {})
        if not s:
            body.append([m] + ["n/a"] * 7)
            continue
        pc = [r["methods"][m]["gain"] if m != "oracle" else r["oracle"]["gain"]
              for r in res["rows"] if r["kind"] == "preconfig"
              and (m == "oracle" or "gain" in r["methods"][m])]  # fmt: skip
        body.append(
            [m, f"{s['macs']['mean_regret']:.3f}", f"{s['macs']['max_regret']:.2f}",
             f"{s['params']['mean_regret']:.3f}", f"{s['params']['max_regret']:.2f}",
             " / ".join(f"{g:+.2f}" for g in pc),
             f"{min(s[k]['min_gain'] for k in s):+.2f}",
             f"{np.mean([s[k]['mean_gain'] for k in ('macs', 'params')]):+.2f}"]
        )  # fmt: skip
    lines += ["", "summary (points): mean/max regret to the oracle; PreConfig gain over uniform "
              "at 2222222 / 3333333; worst and mean PreCrop gain over uniform",
              _table(["method", "MACs mean", "max", "params mean", "max",
                      "PreConfig gain", "min gain", "mean gain"], body)]  # fmt: skip
    tie_parts = []
    for m in ("synexp", "groups", "synexp-held", "depth-width"):
        s = summ[m]
        tie_parts.append(
            f"{m} " + ", ".join(f"{k} {s[k]['tied_budgets']}/{s[k]['n']} "
                                f"({s[k]['tie_mean_regret']:.3f})" for k in s)
        )  # fmt: skip
    lines += ["", "ties (several codes share the argmax; the pick above is the cheapest): "
              "budgets with a tie, and the mean regret of a random tie-break: "
              + "; ".join(tie_parts)]  # fmt: skip
    tau = res["tau"]
    lines += ["", f"Kendall τ vs accuracy inside {int(tau['_bins'])} joint ~10% MACs x ~10% "
              "params bins (pair-weighted mean): "
              + ", ".join(f"{k} {v:+.3f}" for k, v in tau.items() if k != "_bins")]  # fmt: skip
    n = res["noise"]
    lines += [
        f"noise floor: seed std median {n['seed_std_median']:.3f} (mean {n['seed_std_mean']:.3f}"
        f"; s.e. of a 3-seed mean {n['mean_se_median']:.3f}); one seed's accuracy as the "
        "predictor has mean regret "
        + ", ".join(
            f"{k} {n[k]['vs_mean']:.3f} (vs the other two seeds {n[k]['vs_other_seeds']:.3f})"
            for k in ("macs", "params", "preconfig")
        )
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="folder of Results_*.json")
    ap.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    ap.add_argument("--networks", default="ResNet,MobileNet")
    ap.add_argument("--no-tool", action="store_true", help="skip the tool's own picks")
    args = ap.parse_args(argv)
    data = args.data or default_data()
    names = [n.strip() for n in args.networks.split(",")]
    missing = [n for n in names if not (data / f"Results_{n}.json").is_file()]
    if missing or any(n not in NETWORKS for n in names):
        print(f"groundtruth: no Results_{missing[0] if missing else names[0]}.json in {data} "
              "(or an unknown network); give --data DIR", file=sys.stderr)  # fmt: skip
        return 2
    import torch

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    results = []
    for name in names:
        res = run_network(name, data, not args.no_tool)
        res["summary"] = summarize(res)
        results.append(res)
        print(format_network(res), flush=True)
        print(flush=True)
    rule = default_rule(results) if len(results) == 2 else {}
    for m, r in rule.items():
        print(f"default rule (issue 25.3), {m}: lower mean regret than synexp everywhere: "
              f"{r['lower_mean_regret_everywhere']}; worst excess regret at a budget "
              f"{r['worst_excess']:+.2f}; replaces synexp: {r['replaces_synexp']}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"networks": results, "default_rule": rule,
                                               "choices": CHOICES}, indent=1))  # fmt: skip
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

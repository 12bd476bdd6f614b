"""Benchmark: building a WidthSpace against Torch-Pruning's DependencyGraph on the same model.

Both analyse the same already-built timm model on the same 1x3x224x224 input; model creation
and imports are outside the timings. Runs alternate between the two to share machine noise.
Goal (issue 2): ours <= 0.5x Torch-Pruning's ``build_dependency``.

    uv run python benchmarks/bench_parse.py [--repeats 15] [--models efficientnet_b0,resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import timm
import torch
import torch_pruning as tp

from widthsearch import WidthSpace


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(name: str, repeats: int, size: int) -> tuple[float, float]:
    model = timm.create_model(name).eval()
    x = torch.zeros(1, 3, size, size)

    def ours():
        WidthSpace.from_module(model, x, name=name)

    def theirs():
        tp.DependencyGraph().build_dependency(model, example_inputs=x, verbose=False)

    ours(), theirs()  # warm-up: first-call caches on both sides
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        t_ours.append(_time(ours))
        t_theirs.append(_time(theirs))
    return statistics.median(t_ours), statistics.median(t_theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--models", default="efficientnet_b0,resnet50")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(
        f"torch {torch.__version__}, timm {timm.__version__}, torch-pruning {tp.__version__}, "
        f"{torch.get_num_threads()} threads, input 1x3x{args.size}x{args.size}, "
        f"median of {args.repeats}"
    )
    print(f"{'model':<18}{'widthsearch':>14}{'torch-pruning':>16}{'ratio':>8}")
    for name in args.models.split(","):
        ours, theirs = bench(name, args.repeats, args.size)
        print(f"{name:<18}{ours * 1e3:>11.1f} ms{theirs * 1e3:>13.1f} ms{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()

"""Shared fixtures: the model zoo of the width-space issue, analysed once per session."""

from __future__ import annotations

import functools
import os
import random

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Several test workers share the cores: one torch thread each, in the processes they start
    # too. With torch's default (a thread per core in every worker) their OpenMP threads fight
    # over the cores and training tests ran 3-6 times slower than alone (31 min suite).
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from widthsearch import WidthSpace  # noqa: E402

ZOO = [
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "mobilenetv2_100",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "efficientnet_b3",
    "tf_efficientnet_b0",
    "convnext_atto",
    "regnetx_002",
    "densenet121",
]
# Small inputs keep CI fast; the cost model is exact at any input size the model accepts.
SMALL = (3, 64, 64)

MECHANISMS = {
    "ghostnet_050": "a channel slice whose end a module attribute holds (GhostModule.out_chs)",
    "mixnet_s": "a split by a list of sizes (MixedConv2d.splits)",
    "cs3darknet_s": "a split into halves of a width (CrossStage: expand_chs // 2), tied",
    "dpn48b": "slices at one offset of two tensors (DualPathBlock.num_1x1_c)",
    "test_nfnet": "weight-standardized convs with a per-channel gain (ScaledStdConv2d)",
    "resnetblur18": "a fixed blur filter from a buffer (BlurPool2d)",
    "eca_resnet33ts": "a one-channel Conv1d along the channel axis (ECA)",
    "cspnext_tiny": "a concatenation recombined with one conv's output (EffectiveSEModule)",
    "resnest14d": "a reshape of the channels into radix chunks (SplitAttn)",
    "rdnet_tiny": "depthwise convs with a channel multiplier",
    "gcresnet33ts": "a matmul pooling each channel over positions (GlobalContext)",
}
"""One timm model per channel mechanism of issue 14, and what it exercises."""
MECHANISM_SIZE = (3, 32, 32)


@functools.cache
def zoo_space(name: str) -> WidthSpace:
    return WidthSpace.from_timm(name, input_size=SMALL)


@functools.cache
def mechanism_space(name: str) -> WidthSpace:
    return WidthSpace.from_timm(name, input_size=MECHANISM_SIZE)


def count(model: torch.nn.Module, input_size) -> tuple[int, int]:
    """(params, MACs) counted on a real model: numel and FlopCounterMode / 2, batch of one."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_size))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return sum(p.numel() for p in model.parameters()), flops // 2


def random_widths(space: WidthSpace, seed: int, low: float = 0.25, high: float = 2.0):
    """Seeded random widths for the free groups, below and above base, on each group's grid."""
    rng = random.Random(seed)
    widths = []
    for g in space.groups:
        if g.fixed:
            widths.append(g.width)
            continue
        target = g.width * rng.uniform(low, high)
        widths.append(g.multiple_of * max(1, round(target / g.multiple_of)))
    return widths


TINY = "mobilenetv2_050"
"""A small model for tests that time or profile models; trains at batch 1 at 64x64."""
TINY_SIZE = (3, 64, 64)


@pytest.fixture(scope="session")
def tiny_space():
    return WidthSpace.from_timm(TINY, input_size=TINY_SIZE)


@pytest.fixture(scope="session")
def tiny_profile(tiny_space):
    """A real latency profile of :data:`TINY` on this CPU: few widths, a few seconds."""
    from widthsearch.hardware import current_device, make_profile
    from widthsearch.solve import solved_widths

    device = current_device("cpu", threads=1)
    return make_profile([tiny_space], device, solved_widths=solved_widths, samples=8, seconds=3)


@pytest.fixture(scope="session")
def fixed_profile(tiny_space, tiny_profile):
    """:func:`tiny_profile` (made on this machine, so accepted here) with fixed coefficients.

    Budget tests use it: a measured fit on a busy machine may put most of a tiny model's
    latency in its constant term, and a latency budget the test means to bind could then be
    out of reach. Here each kind of term carries a fixed share of the base's 10 ms.
    """
    import dataclasses

    from widthsearch.hardware import FEATURES, latency_features

    feats = latency_features(tiny_space)
    share = {"macs": 0.4, "elems": 0.3, "weights": 0.1, "ops": 0.2}
    coefficients = {}
    for f in FEATURES:
        value = float(feats[f](tiny_space.base_widths))
        kind = [k for k in share if f.startswith(k)][0]
        n = sum(1 for g in FEATURES if g.startswith(kind) and feats[g](tiny_space.base_widths))
        coefficients[f] = 10.0 * share[kind] / n / value if value else 0.0
    fit = dataclasses.replace(tiny_profile.fits[0], coefficients=coefficients)
    return dataclasses.replace(tiny_profile, fits=(fit,), pooled=coefficients)


CIFAR10_NAME = "cifar10-train.tar.gz"


def cifar10_archive():
    """The CIFAR-10 training images (a tar.gz of JPEGs), never in the repository: from
    ``$WIDTHSEARCH_CIFAR10`` or the ``shared/data`` folder beside the checkout; the calling test
    is skipped where there is none."""
    import os
    from pathlib import Path

    here = Path(__file__).resolve().parents[1]
    candidates = [os.environ.get("WIDTHSEARCH_CIFAR10", "")]
    candidates += [str(p / "shared" / "data" / CIFAR10_NAME) for p in here.parents]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    pytest.skip(f"no {CIFAR10_NAME} (set WIDTHSEARCH_CIFAR10 to its path)")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on loopback in a temporary folder, for the session.

    Under CI (CI=true) a missing PostgreSQL fails the tests that need it; .ci/run installs it.
    """
    import glob
    import os
    import shutil
    import socket
    import subprocess
    import tempfile

    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not initdb[-1]:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
        pytest.skip("PostgreSQL is not installed")
    bindir = os.path.dirname(initdb[-1])
    root = tempfile.mkdtemp(prefix="widthsearch-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: use the package's user
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(root, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *cmd: subprocess.run(as_user + list(cmd), check=True, capture_output=True)  # noqa: E731
    run(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(root, "log"), "-o", opts, "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            as_user + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)

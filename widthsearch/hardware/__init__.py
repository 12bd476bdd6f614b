"""Hardware costs: timing on a device, activation memory, the fitted latency model and its
profiles, and the bench that holds predictions against measurements.

``_op_tracer`` and ``memory_trace`` import torch at the top, so this face leaves them out: the
functions that need them import them.
"""

from widthsearch.hardware.bench import (
    MIN_RUNS,
    BenchResult,
    Measured,
    bench_widths,
    measure_latency,
)
from widthsearch.hardware.latency_model import (
    FEATURES,
    LatencyModel,
    OpTerms,
    feature_values,
    fit_coefficients,
    fit_errors,
    latency_features,
    op_terms,
    predict,
)
from widthsearch.hardware.memory import ActivationMemory, activation_memory
from widthsearch.hardware.profile import (
    UNRELIABLE,
    ModelFit,
    Profile,
    ProfileError,
    pooled_fit,
)
from widthsearch.hardware.profiling import (
    DEFAULT_MODELS,
    DEFAULT_SAMPLES,
    QUICK_SECONDS,
    SOLVED_SHARE,
    SolvedWidths,
    fit_model,
    make_profile,
    sample_widths,
    time_widths,
)
from widthsearch.hardware.resolve import (
    Resolved,
    cache_dir,
    cache_path,
    resolve_latency_model,
)
from widthsearch.hardware.timing import (
    DEVICES,
    DTYPES,
    Device,
    DeviceError,
    Load,
    current_device,
    describe_load,
    example_batch,
    measure,
    median,
    others_busy,
    pinned_threads,
    spread,
    timing_ready,
)

__all__ = [
    "ActivationMemory",
    "BenchResult",
    "DEFAULT_MODELS",
    "DEFAULT_SAMPLES",
    "DEVICES",
    "DTYPES",
    "Device",
    "DeviceError",
    "FEATURES",
    "LatencyModel",
    "Load",
    "MIN_RUNS",
    "Measured",
    "ModelFit",
    "OpTerms",
    "Profile",
    "ProfileError",
    "QUICK_SECONDS",
    "Resolved",
    "SOLVED_SHARE",
    "SolvedWidths",
    "UNRELIABLE",
    "activation_memory",
    "bench_widths",
    "cache_dir",
    "cache_path",
    "current_device",
    "describe_load",
    "example_batch",
    "feature_values",
    "fit_coefficients",
    "fit_errors",
    "fit_model",
    "latency_features",
    "make_profile",
    "measure",
    "measure_latency",
    "median",
    "op_terms",
    "others_busy",
    "pinned_threads",
    "pooled_fit",
    "predict",
    "timing_ready",
    "resolve_latency_model",
    "sample_widths",
    "spread",
    "time_widths",
]

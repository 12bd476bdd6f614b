"""Study files are strict: every unknown key is one line naming the closest valid key, at every
level of the file; and the README's reference table lists exactly the keys the parser takes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from widthsearch.studyfile import (
    GRID_KEYS,
    REPORT_KEYS,
    SEARCH_KEYS,
    TOP_KEYS,
    VERIFY_KEYS,
    Ranges,
    StudyConfigError,
    load_config,
    parse_config,
)

GOOD = """model = "resnet18"
input_size = [3, 64, 64]

[timm_kwargs]
num_classes = 10

[search]
study = "r18"
trials = 7
sampler = "qmc"
seed = 3

[search.ranges]
params = [0.5, 0.9]
macs = false
min_width = [0.1, 0.2]
max_width = [1.5, 2.0]
divisor = [8, 16]
mode = ["precrop", "preconfig"]

[verify]
data = "digits"
top = 2
random = 3

[report]
path = "reports/r18"
"""


def _load(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return load_config(path)


def test_a_full_study_file_reads_every_key(tmp_path):
    config = _load(tmp_path, GOOD)
    assert (config.name, config.trials, config.sampler, config.seed) == ("r18", 7, "qmc", 3)
    assert config.timm_kwargs == {"num_classes": 10}
    assert config.ranges.macs is None and config.ranges.divisor == (8, 16)
    assert config.verify.top == 2 and config.report == "reports/r18"
    assert config.verify.random == 3


@pytest.mark.parametrize(
    "typo,message",
    [
        (("model = ", "modle = "), "unknown key 'modle' (did you mean 'model'?)"),
        (("input_size", "input_sise"), "unknown key 'input_sise' (did you mean 'input_size'?)"),
        (("[search]", "[serch]"), "unknown key 'serch' (did you mean 'search'?)"),
        (
            ("trials = 7", "trails = 7"),
            "unknown key 'search.trails' (did you mean 'search.trials'?)",
        ),
        (("seed = 3", "sed = 3"), "unknown key 'search.sed' (did you mean 'search.seed'?)"),
        (
            ("min_width = [0.1", "min_widht = [0.1"),
            "unknown key 'search.ranges.min_widht' (did you mean 'search.ranges.min_width'?)",
        ),
        (
            ("[search.ranges]", "[search.range]"),
            "unknown key 'search.range' (did you mean 'search.ranges'?)",
        ),
        (("top = 2", "topp = 2"), "unknown key 'verify.topp' (did you mean 'verify.top'?)"),
        (("[verify]", "[verfy]"), "unknown key 'verfy' (did you mean 'verify'?)"),
        (("path = ", "pth = "), "unknown key 'report.pth' (did you mean 'report.path'?)"),
        (
            ('sampler = "qmc"', 'zzz = "qmc"'),
            "unknown key 'search.zzz' (valid keys in [search]: study, trials, sampler, seed, "
            "objective, time_limit, ranges, latency, profile, device, threads, batch_size, "
            "activation_bytes)",
        ),
    ],
)
def test_unknown_keys_name_the_closest_valid_key(tmp_path, typo, message):
    text = GOOD.replace(*typo, 1)
    assert text != GOOD
    with pytest.raises(StudyConfigError) as err:
        _load(tmp_path, text)
    assert str(err.value) == f"{tmp_path / 's.toml'}: {message}"


def test_timm_kwargs_keys_go_to_timm_unchecked(tmp_path):
    config = _load(tmp_path, GOOD.replace("num_classes = 10", "num_classes = 10\ndrop_rate = 0.1"))
    assert config.timm_kwargs == {"num_classes": 10, "drop_rate": 0.1}


@pytest.mark.parametrize(
    "change,message",
    [
        (("trials = 7", 'trials = "7"'), "search.trials must be an integer, got '7'"),
        (("trials = 7", "trials = 0"), "search.trials must be at least 1"),
        (("trials = 7", "trials = true"), "search.trials must be an integer"),
        (("seed = 3", "seed = 1.5"), "search.seed must be an integer"),
        (("random = 3", "random = -1"), "verify.random must be an integer >= 0"),
        (("random = 3", "random = true"), "verify.random must be an integer >= 0"),
        (('study = "r18"', "study = 5"), "search.study must be a string"),
        (('sampler = "qmc"', 'sampler = "grid"'), "unknown sampler 'grid'"),
        (("[timm_kwargs]\nnum_classes = 10", "timm_kwargs = 3"), "[timm_kwargs] must be a table"),
    ],
)
def test_values_of_the_wrong_type_are_one_line(tmp_path, change, message):
    with pytest.raises(StudyConfigError, match=re.escape(message)) as err:
        _load(tmp_path, GOOD.replace(*change, 1))
    assert "\n" not in str(err.value)


def test_sampler_and_seed_default_to_the_studys():
    """Left out, they mean: the stored study's own, or qmc and a new seed for a new study."""
    config = parse_config({"model": "resnet18"})
    assert config.sampler is None and config.seed is None


def test_readme_reference_table_lists_every_key():
    """The study-file reference table (docs/reference/report-run.md) has one row per key the
    parser accepts, and no other."""
    readme = (Path(__file__).parent.parent / "docs" / "reference" / "report-run.md").read_text()
    start = readme.index("| section | key |")
    table = set()
    for line in readme[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        table.add((cells[0].strip("[]") or "top", cells[1]))
    sections = ("search", "verify", "report", "grid")
    expected = {("top", k) for k in TOP_KEYS if k not in sections}
    expected |= {("grid", k) for k in GRID_KEYS if k != "groups"} | {("grid.groups", "GLOB")}
    expected |= {("search", k) for k in SEARCH_KEYS if k != "ranges"}
    expected |= {("search.ranges", k) for k in Ranges.file_keys()}
    expected |= {("verify", k) for k in VERIFY_KEYS}
    expected |= {("report", k) for k in REPORT_KEYS}
    assert table == expected


def test_committed_study_files_name_the_defaults_the_code_has():
    """A comment that says what the default is must say what the code does (the head policy
    comment once said "zero" while verify's default is "auto")."""
    import re
    from pathlib import Path

    from widthsearch.train.head import DEFAULT_POLICY

    studies = sorted((Path(__file__).parent.parent / "studies").glob("*.toml"))
    said = []
    for path in studies:
        for line in path.read_text().splitlines():
            if line.startswith("head ="):
                said += re.findall(r'"(\w+)" \(the default\)', line)
    assert said and set(said) == {DEFAULT_POLICY}

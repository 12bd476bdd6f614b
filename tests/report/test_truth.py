"""Ground-truth tables (``--truth``): reading them, mapping widths to codes, and the front and
report that show each trial's table accuracy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from widthsearch.cli import main
from widthsearch.errors import TruthTableError
from widthsearch.report.truth import annotate_front, load_truth

DATA = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.parametrize(
    "content,match",
    [
        (None, "no such file"),
        ("{not json", "is not JSON"),
        ("[1, 2]", "is not a ground-truth table"),
        ('{"1234": 90.1, "12": 80.0}', "key '12' has 2 digits, the first key 4"),
        ('{"1234": {"std": 0.1}}', "the entry of '1234' has no accuracy"),
        ('{"12a4": 90.0}', "key '12a4' is not a width code"),
    ],
)
def test_a_file_that_is_not_a_table_is_one_line_exit_2_before_anything_is_read(
    tmp_path, capsys, content, match
):
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TruthTableError, match=match):
        load_truth(path)
    for args in (["front", "x"], ["report", "x", "-o", str(tmp_path / "r")]):
        storage = f"sqlite:///{tmp_path}/none.db"
        assert main([*args, "--storage", storage, "--truth", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["t.json"] if content else [])


def test_codes_map_widths_on_the_grid_and_nothing_else(tmp_path):
    path = tmp_path / "t.json"
    table = {"44": {"mean": 93.0, "params": 100, "flops": 1000}, "12": 90.0, "21": 91.5}
    path.write_text(json.dumps(table))
    truth = load_truth(path)
    assert (truth.length, truth.levels, truth.costs) == (2, 4, None)  # costs only if all have
    base, fixed = [3, 64, 256, 10], [0, 3]
    assert truth.code([3, 16, 128, 10], base, fixed) == "12"
    assert truth.lookup([3, 32, 64, 10], base, fixed) == 91.5
    assert truth.lookup([3, 64, 256, 10], base, fixed) == 93.0
    assert truth.code([3, 24, 128, 10], base, fixed) is None  # 24 is not k/4 of 64
    assert truth.lookup([3, 48, 64, 10], base, fixed) is None  # on the grid, not in the table
    assert truth.code([3, 16, 128], [3, 64, 256], [0]) == "12"


CBM = Path("/work/shared/data/channel-bench-macro")


@pytest.mark.skipif(not (CBM / "Results_MobileNet.json").is_file(), reason="no tables")
def test_a_channel_bench_macro_table_reads_with_its_costs_and_maps_the_parsed_widths():
    sys.path.insert(0, str(DATA))
    import groundtruth as gt

    truth = load_truth(CBM / "Results_MobileNet.json")
    assert (truth.length, truth.levels, len(truth.accuracy)) == (7, 4, 4**7)
    assert truth.costs is not None
    table = gt.load_table(CBM / "Results_MobileNet.json", "MobileNet")
    space, free = gt.parse("MobileNet")
    fixed = [g.id for g in space.groups if g.fixed]
    widths = gt.lattice(space, free, table.digits)
    for i in (0, 4321, 16383):
        w = [int(v) for v in widths[i]]
        assert truth.code(w, space.base_widths, fixed) == table.codes[i]
        assert truth.lookup(w, space.base_widths, fixed) == table.acc[i]
        assert truth.costs[table.codes[i]] == (space.params(w), space.macs(w))
    # a real front: every point's entry, and the best entry within its costs
    front = {
        "base_widths": list(space.base_widths),
        "fixed_groups": fixed,
        "front": [
            {"number": n, "widths": [int(v) for v in widths[i]], "params": int(table.params[i]),
             "macs": int(table.macs[i])}
            for n, i in enumerate((100, 9000))
        ] + [{"number": 2, "widths": [3, 100, *widths[5][2:]], "params": 1, "macs": 1}],
    }  # fmt: skip
    out = annotate_front(front, truth)
    got = [t["truth_acc"] for t in out["front"]]
    assert got == [table.acc[100], table.acc[9000], None]
    for t, i in zip(out["front"][:2], (100, 9000), strict=True):
        within = (table.params <= table.params[i]) & (table.macs <= table.macs[i])
        assert t["truth_oracle"] == table.acc[within].max() >= t["truth_acc"]
    assert out["truth"]["on_table"] == 2 and out["truth"]["best_acc"] == max(got[:2])


@pytest.mark.slow
def test_front_and_report_show_the_table_column_on_a_real_study(tmp_path, capsys):
    from widthsearch.search import run_search
    from widthsearch.studyfile import Ranges, StudyConfig

    config = StudyConfig(model="mobilenetv2_050", input_size=(3, 32, 32), trials=2,
                         sampler="random", seed=0, ranges=Ranges(mode=("precrop",)))  # fmt: skip
    url = f"sqlite:///{tmp_path}/s.db"
    run_search(config, url)
    n_free = 25  # mobilenetv2_050's free groups at this size
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"8" * n_free: {"mean": 70.0}, "1" * n_free: 50.0}))
    assert main(["front", "mobilenetv2_050", "--storage", url, "--truth", str(path)]) == 0
    out = capsys.readouterr().out
    assert "table acc" in out and f"table {path}:" in out and "lie on its grid" in out
    assert main(["front", "mobilenetv2_050", "--storage", url, "--truth", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["truth"]["front"] == len(info["front"]) and info["truth"]["table_best"] == 70.0
    assert all("truth_acc" in t for t in info["front"])
    folder = tmp_path / "r"
    assert main(["report", "mobilenetv2_050", "--storage", url, "-o", str(folder),
                 "--truth", str(path)]) == 0  # fmt: skip
    assert "truth_acc" in (folder / "front.csv").read_text().splitlines()[0]
    assert "Table accuracy" in (folder / "index.html").read_text()

"""Reports and whole experiments: `widthsearch report` and `widthsearch run`."""

from __future__ import annotations

import csv
import html
import math
import re
import shlex

import optuna
import pytest

from widthsearch.cli import main
from widthsearch.report.page import FILES, write_report
from widthsearch.studyfile import StudyConfigError, load_config
from widthsearch.verify import latency as verify_module

STUDY = """
model = "resnet18"
input_size = [3, 16, 16]

[search]
study = "tiny"
trials = 12
seed = 0

[search.ranges]
params = [0.3, 0.9]
macs = false
mode = ["precrop"]

[verify]
data = "digits"
top = 1
random = 1
epochs = 1
seeds = [0]

[report]
path = "out/tiny"
"""


@pytest.mark.slow
def test_run_searches_verifies_reports_and_resumes_to_the_same_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # keep latency timings whatever their spread (a busy machine's would be timed again)
    monkeypatch.setattr(verify_module, "NOISY_SPREAD", math.inf)
    monkeypatch.setattr(verify_module, "BUSY_CORES", math.inf)
    (tmp_path / "tiny.toml").write_text(STUDY)
    db = f"sqlite:///{tmp_path / 's.db'}"
    # a quick check (into the [report] folder, as asked): the same flags rebuild the same runs
    quick = ["--max-steps", "8", "-o", "out/tiny"]
    assert main(["run", "tiny.toml", "--storage", db, *quick]) == 0
    text = capsys.readouterr().out
    assert "search: 12 trials (12 new)" in text and "report: out/tiny/index.html" in text
    folder = tmp_path / "out" / "tiny"
    first = {name: (folder / name).read_bytes() for name in FILES}
    first_csv = (folder / "verify.csv").read_bytes()
    assert all(first.values())
    assert first["pareto.png"][:8] == b"\x89PNG\r\n\x1a\n"
    page = first["index.html"].decode()
    for needle in ("pareto.png", "widths.png", "front.csv", "verify.csv", "top-1 %", "uniform"):
        assert needle in page, needle
    assert "digits (scikit-learn, 8x8)" in page and "1 epochs" not in page
    # one seed: no spread and no verdict, said so; only the best top-1 is bold
    assert "(n=1)" in page and "± 0.0" not in page and "n=1, no verdict" in page
    assert page.count("<td><b>") == 1 and "<b>Verdict</b>" in page
    # PreCrop has no max width but the base; the sampler and seed are on the page
    assert "<dt>max width</dt><dd>1 (PreCrop" in page and "1.25&ndash;2.5" not in page
    assert "<dt>sampler, seed</dt><dd>qmc, seed 0</dd>" in page
    assert "<dt>MACs budget</dt><dd>free</dd>" in page  # not "free × base"
    assert "<b>Quick check</b>: at most 8 steps; not a full run." in page
    assert "timm stem, timm head, on cpu" in page  # resnet18: --head auto kept timm's init
    assert "crop augmentation,\ntimm stem, timm head; seeds" in page  # each verification's recipe
    # the measured latency of every model as trained, next to its MACs, and where it was timed
    assert "<th>latency ms (measured)</th>" in page and "1 thread(s), torch" in page
    assert "(1.00&times;)</td><td>" in page and "x measured latency) against base" in page
    # every command, with its storage, and they rebuild the same results without training
    commands = _commands(page)
    assert commands[0] == 'uv run widthsearch run tiny.toml --storage "$STORAGE"'
    assert [c.split()[3] for c in commands[1:]] == ["search", "verify", "report"]
    assert all('--storage "$STORAGE"' in c for c in commands) and str(tmp_path) not in page
    flags = ("--augment", "--stem", "--head")
    assert all(c.split().count(flag) <= 1 for c in commands for flag in flags)
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    for c in commands[1:]:
        c = c.replace('"$STORAGE"', fresh)  # what the page says to set
        args = shlex.split(c.replace("-o out/tiny", "-o again2"))[3:]
        assert main(args) == 0, c
    assert "0 run(s) trained, 4 already finished" in capsys.readouterr().out  # random too
    for name in ("front.csv", "front.md", "pareto.png", "widths.png"):
        assert (tmp_path / "again2" / name).read_bytes() == first[name], name
    assert (folder / "verify.csv").read_bytes() == first_csv

    study = optuna.load_study(study_name="tiny", storage=db)
    front_rows = list(csv.DictReader((folder / "front.csv").open()))
    from widthsearch.search import front

    assert sorted(int(r["trial"]) for r in front_rows) == sorted(t.number for t in front(study))
    md = (folder / "front.md").read_text().splitlines()
    assert len(md) == 2 + len(front_rows) and md[0].startswith("| trial |")
    verify_rows = list(csv.DictReader((folder / "verify.csv").open()))
    assert {r["kind"] for r in verify_rows} >= {"candidate", "base", "random"}
    assert not (tmp_path / ".widthsearch" / "checkpoints").exists() or not any(
        (tmp_path / ".widthsearch" / "checkpoints").iterdir()
    )

    assert main(["run", "tiny.toml", "--storage", db, *quick]) == 0  # resumes: nothing to do
    text = capsys.readouterr().out
    assert "search: 12 trials (0 new" in text and "0 run(s) trained" in text
    assert {name: (folder / name).read_bytes() for name in FILES} == first

    assert main(["report", "tiny", "--storage", db, "-o", str(tmp_path / "again")]) == 0
    again = {name: (tmp_path / "again" / name).read_bytes() for name in FILES}
    assert again["front.csv"] == first["front.csv"] and again["pareto.png"] == first["pareto.png"]


def _commands(page: str) -> list[str]:
    """The command lines in the page's Reproduce section."""
    section = page[page.index("<h2>Reproduce</h2>") :]
    blocks = re.findall(r"<pre>(.*?)</pre>", section, flags=re.S)
    return [
        line
        for block in blocks
        for line in html.unescape(block).splitlines()
        if line.startswith("uv run widthsearch ")
    ]


def test_report_without_verification_says_so(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "resnet18", "--input-size", "16", "--trials", "8", "--storage", db]
    assert main([*args, "--sampler", "random", "--json"]) == 0
    capsys.readouterr()
    result = write_report("resnet18", db, tmp_path / "r")
    assert result.verified == 0 and result.front_size > 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "No verification has run" in page
    assert "<dt>sampler, seed</dt><dd>random, seed none</dd>" in page
    # made without a study file: the page gives one with the stored settings, and commands
    section = page[page.index("<h2>Reproduce</h2>") :]
    toml = html.unescape(re.search(r"<pre>(.*?)</pre>", section, flags=re.S).group(1))
    (tmp_path / "STUDY.toml").write_text(toml)
    config = load_config(tmp_path / "STUDY.toml")
    study = optuna.load_study(study_name="resnet18", storage=db)
    assert (config.model, config.input_size, config.name) == ("resnet18", (3, 16, 16), "resnet18")
    assert (config.sampler, config.seed, config.trials) == ("random", None, 8)
    assert config.ranges.to_dict() == study.user_attrs["ranges"]
    # the storage is a file only this machine has: a variable, and a line saying what to set
    assert _commands(page) == [
        'uv run widthsearch search --config STUDY.toml --storage "$STORAGE"',
        f'uv run widthsearch report resnet18 --storage "$STORAGE" -o {tmp_path / "r"}',
    ]
    assert "<li><code>STORAGE</code>: the storage URL of the study" in page and "s.db" in page


def test_report_commands_hide_a_storage_password():
    from widthsearch.report.reproduce import shown_storage

    url = "postgresql://ws:s3cret@db.example:5432/studies"
    assert shown_storage(url) == "postgresql://ws:***@db.example:5432/studies"
    assert shown_storage(None) == "sqlite:///widthsearch.db"
    assert shown_storage("journal:/tmp/a.log") == "journal:/tmp/a.log"


def test_reproduce_names_machine_local_paths_as_variables_and_keeps_portable_ones():
    from widthsearch.report.reproduce import placeholders, reproduce_commands

    recipe = {"epochs": 2, "batch_size": 8, "lr": 0.002}
    local = {"recipe": recipe, "input_size": [3, 32, 32], "seeds": [0], "results": []}
    runs = [
        local | {"data": "cifar10:/home/me/data/cifar10-train.tar.gz"},
        local | {"data": "imagefolder:../shared/data/pets"},
        local | {"data": "cifar10:data/cifar10.tar.gz"},  # next to the study: kept
        local | {"data": "digits"},
    ]
    shown = placeholders("sqlite:////home/me/runs/studies.db", runs)
    assert shown.storage == '"$STORAGE"' and set(shown.settings) == {"STORAGE", "DATA", "DATA_2"}
    assert "studies.db" in shown.settings["STORAGE"] and "/home/me" not in shown.settings["STORAGE"]
    commands = reproduce_commands("s", "sqlite:////home/me/runs/studies.db", "out", runs)
    text = "\n".join(commands)
    assert "/home/me" not in text and "../shared" not in text
    assert '--data cifar10:"$DATA" ' in text and '--data imagefolder:"$DATA_2" ' in text
    assert "--data cifar10:data/cifar10.tar.gz " in text and "--data digits " in text
    # relative storage files and server URLs are the same on every machine
    assert placeholders("sqlite:///widthsearch.db", []).storage == "sqlite:///widthsearch.db"
    assert placeholders("journal:search.log", []).settings == {}
    server = placeholders("postgresql://ws:pw@db/ws", [])
    assert server.storage == "'postgresql://ws:***@db/ws'" and not server.settings  # quoted: *


def test_the_verified_panel_is_titled_by_data_kind_and_by_steps_in_a_quick_check():
    from widthsearch.report.figures import _data_kind, _length

    assert _data_kind("cifar10:/home/me/cifar10-train.tar.gz") == "cifar10"
    assert _data_kind("digits") == "digits" and _data_kind("/data/pets") == "image folder"
    recipe = {"epochs": 4, "max_steps": 3}
    assert _length({"recipe": recipe}) == "at most 3 steps (quick check)"
    assert _length({"recipe": {"epochs": 1, "max_steps": None}}) == "1 epoch"
    assert _length({"recipe": {"epochs": 6}}) == "6 epochs"


def test_controls_matched_on_params_are_a_study_setting_and_a_reproduce_flag(tmp_path):
    from widthsearch.report.reproduce import reproduce_commands

    (tmp_path / "p.toml").write_text(STUDY.replace("random = 1", "random = 1\nmatch = 'params'"))
    config = load_config(tmp_path / "p.toml")
    assert config.verify.match == "params"
    recipe = config.verify.recipe().to_dict()
    summary = {"recipe": recipe, "input_size": [3, 16, 16], "data": "digits", "seeds": [0]}
    summary["results"] = [{"kind": "candidate"}, {"kind": "random"}]
    verify_lines = [
        c
        for match in ("params", "macs")
        for c in reproduce_commands("t", None, "out", [summary | {"match": match}])
        if " verify " in c
    ]
    assert "--match params" in verify_lines[0] and "--match" not in verify_lines[1]


def test_the_page_opens_with_the_latest_recipes_verdicts_at_both_matchings():
    from widthsearch.report.page import _verdict_summary

    old = {"recipe_key": "a", "seeds": [0], "verdicts": ["trial 1 against base: worse"]}
    macs = {"recipe_key": "b", "seeds": [0, 1], "verdicts": ["trial 2 against base: better"]}
    params = macs | {"match": "params", "verdicts": ["trial 2 against uniform 0.5x: better"]}
    top = _verdict_summary([old, params, macs])
    assert "trial 1" not in top and "n=2 seeds" in top
    assert top.index("trial 2 against base") < top.index(
        "controls at its params: trial 2 against uniform 0.5x: better"
    )
    assert _verdict_summary([]) == ""


def test_committed_reports_are_found_again_by_their_study_files():
    """The recipe key of each shipped study file still names the runs in its committed
    verify.csv, so `widthsearch run` rebuilds the report from them without training."""
    from pathlib import Path

    from widthsearch.verify.plan import recipe_key

    root = Path(__file__).parents[2]
    for path in sorted(root.glob("studies/*.toml")):
        csv_path = root / "reports" / path.stem / "verify.csv"
        if not csv_path.is_file():
            continue
        config = load_config(path)
        v = config.verify
        key = recipe_key(config.model, v.data, v.input_size or config.input_size, v.recipe())
        assert {r["recipe_key"] for r in csv.DictReader(csv_path.open())} == {key}, path


@pytest.mark.slow
def test_report_front_table_is_the_thinned_front(tmp_path, capsys):
    """The page shows the same thinned front as `widthsearch front`; front.csv all of it."""
    import re

    from widthsearch.report.front import FRONT_ROWS_SHOWN
    from widthsearch.search import load_front

    db = f"sqlite:///{tmp_path / 's.db'}"
    args = ["search", "resnet18", "--input-size", "16", "--trials", "80", "--storage", db]
    assert main([*args, "--json"]) == 0
    capsys.readouterr()
    write_report("resnet18", db, tmp_path / "r")
    info = load_front("resnet18", db, rows=FRONT_ROWS_SHOWN)
    assert len(info["shown"]) <= FRONT_ROWS_SHOWN < len(info["front"])
    page = (tmp_path / "r" / "index.html").read_text()
    table = page[page.index("<h2>Front</h2>") :]
    shown = [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", table)]
    assert sorted(shown) == sorted(info["shown"])
    rows = list(csv.DictReader((tmp_path / "r" / "front.csv").open()))
    assert len(rows) == len(info["front"])


def test_report_of_a_missing_study_is_one_line_and_writes_nothing(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["report", "nope", "--storage", db, "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"no storage at {db}" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "s.db").exists()


@pytest.mark.parametrize(
    "section, match",
    [
        ("[verify]\nepochs = 0\n", "verify.epochs must be a positive int"),
        ("[verify]\nseeds = []\n", "verify.seeds"),
        ("[verify]\nbatch = 3\n", "unknown key 'verify.batch'"),
        ("[verify]\ninput_size = [3, 32]\n", "verify.input_size"),
        ("[verify]\nmatch = 'flops'\n", "verify.match must be one of macs, params, not 'flops'"),
        ("[report]\nfolder = 'x'\n", "unknown key 'report.folder'"),
        ("[report]\n", "\\[report\\] needs path"),
    ],
)
def test_bad_verify_and_report_sections(tmp_path, section, match):
    path = tmp_path / "s.toml"
    path.write_text(f'model = "resnet18"\n{section}')
    with pytest.raises(StudyConfigError, match=match):
        load_config(path)


def test_shipped_study_files_load():
    from pathlib import Path

    files = sorted(Path(__file__).parents[2].glob("studies/*.toml"))
    names = {f.stem for f in files}
    assert {"efficientnet_b0_same_flops", "mobilenetv2_precrop", "resnet50_precrop_flops"} <= names
    for f in files:
        config = load_config(f)
        assert config.verify is not None and config.report == f"reports/{f.stem}"


def test_run_with_a_missing_data_set_fails_before_searching(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.toml").write_text(STUDY.replace('data = "digits"', 'data = "mnist:nope"'))
    assert main(["run", "s.toml", "--storage", "s.db"]) == 2
    err = capsys.readouterr().err
    assert "mnist:nope" in err and err.count("\n") == 1
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "out").exists()

"""How to rebuild a report: the command lines of its search, each verification and the report
itself, and the study file they need when the study was not run from one."""

from __future__ import annotations

import html
import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from widthsearch.search import DEFAULT_STORAGE


def shown_storage(url: str | None) -> str:
    """The storage URL as a command line takes it, with any password hidden."""

    url = url or DEFAULT_STORAGE
    if "://" in url and not url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        try:
            return make_url(url).render_as_string(hide_password=True)
        except Exception:  # not an SQLAlchemy URL: show it as given
            return url
    return url


def _toml(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def study_toml(study_name: str, report: dict[str, Any], attrs: dict[str, Any]) -> str:
    """A study file with the stored study's model, search settings and ranges: what
    ``widthsearch search --config`` needs to run the same search again."""
    lines = [f"model = {_toml(report['model'])}", f"input_size = {_toml(report['input_size'])}"]
    if attrs.get("timm_kwargs"):
        key = "model_kwargs" if ":" in str(report["model"]) else "timm_kwargs"  # FILE.py:NAME
        lines.append(f"{key} = {_toml(attrs['timm_kwargs'])}")
    lines += ["", "[search]", f"study = {_toml(study_name)}", f"trials = {report['trials']}"]
    if "sampler" in attrs:
        lines.append(f"sampler = {_toml(attrs['sampler'])}")
        if attrs.get("seed") is not None:
            lines.append(f"seed = {_toml(attrs['seed'])}")
    lines += ["", "[search.ranges]"]
    lines += [f"{k} = {_toml(v)}" for k, v in (attrs.get("ranges") or {}).items()]
    return "\n".join(lines) + "\n"


def reproduce_commands(
    study_name: str,
    storage_url: str | None,
    folder: str | os.PathLike[str],
    verifications: Sequence[dict[str, Any]],
    study_file: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The command lines that rebuild this report: search, each verification, report
    (``STUDY.toml`` stands for the study file when ``study_file`` is not known)."""
    q = shlex.quote
    storage = q(shown_storage(storage_url))
    config = q(str(study_file)) if study_file else "STUDY.toml"
    folder = str(folder)
    commands = [f"uv run widthsearch search --config {config} --storage {storage}"]
    for v in verifications:
        r, (c, h, w) = v["recipe"], v["input_size"]
        top = sum(1 for s in v["results"] if s["kind"] == "candidate")
        randoms = sum(1 for s in v["results"] if s["kind"] == "random")
        args = [
            f"uv run widthsearch verify {q(study_name)} --storage {storage} --top {top}"
            + (f" --random {randoms}" if randoms else ""),
            f"--data {q(v['data'])} --input-size {c},{h},{w} --epochs {r['epochs']}",
            f"--batch-size {r['batch_size']} --lr {r['lr']:g} --seeds "
            + ",".join(map(str, v["seeds"])),
        ]
        # a recipe without augment/stem/head predates them: none, timm and timm (the CLI's
        # defaults are auto, timm and auto, so they are always spelled out)
        args.append(
            f"--augment {r.get('augment', 'none')} --stem {r.get('stem', 'timm')} "
            f"--head {r.get('head', 'timm')}"
        )
        if r.get("max_steps") is not None:
            args.append(f"--max-steps {r['max_steps']}")
        if r.get("train_subset") is not None:
            args.append(f"--train-subset {r['train_subset']}")
        if v.get("pruner"):
            args.append(f"--pruner {v['pruner']}")
        if v.get("match", "macs") != "macs":
            args.append(f"--match {v['match']}")
        args.append(f"--out {q(str(Path(folder) / 'verify.csv'))}")
        commands.append(" ".join(args))
    commands.append(f"uv run widthsearch report {q(study_name)} --storage {storage} -o {q(folder)}")
    return commands


def reproduce_html(
    study_name: str,
    storage_url: str | None,
    folder: Path,
    report: dict[str, Any],
    attrs: dict[str, Any],
    verifications: Sequence[dict[str, Any]],
    study_file: str | os.PathLike[str] | None,
) -> str:
    """The page's Reproduce section: the storage, the study file (the one it was run from, or
    the stored settings as one) and the commands."""
    commands = reproduce_commands(study_name, storage_url, folder, verifications, study_file)
    storage = html.escape(shown_storage(storage_url))
    parts = [f"<p>Storage: <code>{storage}</code>.</p>"]
    if study_file:
        one = f"uv run widthsearch run {shlex.quote(str(study_file))} --storage "
        one += shlex.quote(shown_storage(storage_url))
        parts.append(
            "<p>In one command (search, verify and report; each step resumes):</p>"
            f"<pre>{html.escape(one)}</pre><p>or step by step:</p>"
        )
    else:
        toml = html.escape(study_toml(study_name, report, attrs))
        parts.append(
            "<p>The study's stored settings as a study file (save it as "
            f"<code>STUDY.toml</code>):</p><pre>{toml}</pre><p>then:</p>"
        )
    parts.append(f"<pre>{html.escape(chr(10).join(commands))}</pre>")
    return "\n".join(parts)


__all__ = ["reproduce_commands", "reproduce_html", "shown_storage", "study_toml"]

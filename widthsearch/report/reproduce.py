"""How to rebuild a report: the command lines of its search, each verification and the report
itself, and the study file they need when the study was not run from one.

Paths that exist only on the machine that made the report (an absolute or ``..`` path to a
SQLite or journal storage, or to a data set) are written as ``"$STORAGE"`` and ``"$DATA"``
(``"$DATA_2"``, ...), and the page says what to set them to; relative paths, which name files
next to the study, and server URLs are kept as they are."""

from __future__ import annotations

import html
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
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


def _machine_local(path: str) -> bool:
    """Whether a path names a file only the machine that made the report has."""
    return os.path.isabs(path) or ".." in Path(path).parts


def _storage_file(url: str | None) -> tuple[str, str] | None:
    """``(kind, path)`` of a SQLite or journal storage, None for a server URL."""
    url = url or DEFAULT_STORAGE
    if url.startswith("sqlite:///"):
        return "SQLite file", url.removeprefix("sqlite:///")
    if url.startswith("journal:"):
        return "journal file", url.removeprefix("journal:")
    return None


@dataclass(frozen=True)
class Placeholders:
    """What the Reproduce commands write for the storage and each data set, and what to set
    for those given as variables (name -> what it stands for)."""

    storage: str
    data: dict[str, str]
    settings: dict[str, str]


def placeholders(storage_url: str | None, verifications: Sequence[dict[str, Any]]) -> Placeholders:
    """The storage and data paths as the commands give them: machine-local ones as variables."""
    settings: dict[str, str] = {}
    storage = shlex.quote(shown_storage(storage_url))
    local = _storage_file(storage_url)
    if local and _machine_local(local[1]):
        kind, path = local
        name = Path(path).name
        scheme = "sqlite:///" if kind == "SQLite file" else "journal:"
        storage = '"$STORAGE"'
        settings["STORAGE"] = (
            f"the storage URL of the study; this page was made from a {kind} named "
            f"{name} (for a copy of it here: {scheme}{name})"
        )
    data: dict[str, str] = {}
    for v in verifications:
        spec = str(v["data"])
        kind, sep, path = spec.partition(":")
        if not sep:
            kind, path = "imagefolder", spec
        if spec in data or not path or not _machine_local(path):
            data.setdefault(spec, shlex.quote(spec))
            continue
        taken = sum(name.startswith("DATA") for name in settings)
        var = "DATA" if not taken else f"DATA_{taken + 1}"
        data[spec] = f'{kind}:"${var}"' if sep else f'"${var}"'
        settings[var] = f"the path of the {kind} data set ({Path(path).name} on the page's machine)"
    return Placeholders(storage, data, settings)


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
    (``STUDY.toml`` stands for the study file when ``study_file`` is not known; machine-local
    paths are variables, see :func:`placeholders`)."""
    q = shlex.quote
    shown = placeholders(storage_url, verifications)
    storage = shown.storage
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
            f"--data {shown.data[str(v['data'])]} --input-size {c},{h},{w} --epochs {r['epochs']}",
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
    shown = placeholders(storage_url, verifications)
    parts = [f"<p>Storage: <code>{html.escape(shown.storage)}</code>.</p>"]
    if shown.settings:
        items = "".join(
            f"<li><code>{name}</code>: {html.escape(text)}</li>"
            for name, text in shown.settings.items()
        )
        parts.append(
            "<p>The commands name machine-local paths as shell variables; set these first "
            f"(<code>export NAME=...</code>):</p><ul>{items}</ul>"
        )
    if study_file:
        one = f"uv run widthsearch run {shlex.quote(str(study_file))} --storage {shown.storage}"
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


__all__ = [
    "Placeholders",
    "placeholders",
    "reproduce_commands",
    "reproduce_html",
    "shown_storage",
    "study_toml",
]

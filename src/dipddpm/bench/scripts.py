"""What the standalone benchmark scripts (``benchmarks/*.py``) share: the record of how a script ran and
its result files."""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import sys
from pathlib import Path

import torch

from ..result import versions
from .report import read_records
from .runner import machine

__all__ = ["open_rows", "script_meta", "write_script_results"]


def script_meta(script: str, device: str | torch.device = "cpu") -> dict:
    """Command (``python SCRIPT`` and this process's arguments), date, machine and package versions.

    Parameters
    ----------
    script : str
        The script's path as it is run, e.g. ``benchmarks/eswmv.py``.
    device : str or torch.device
        The device the script ran on.

    Returns
    -------
    dict
    """
    return {"command": " ".join(["python", script, *(shlex.quote(a) for a in sys.argv[1:])]),
            "date": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(torch.device(device)),
            "versions": versions()}


def open_rows(out: Path, resume: bool, script: str, key=lambda row: (row["image"], row["sigma"], row["seed"])) -> set:
    """Start, or with ``resume`` go on with, a script's JSON-lines result file ``out``: append a meta line for this run
    (:func:`script_meta`) and return the keys of the rows already there (empty when starting).

    Parameters
    ----------
    out : Path
        The file (its folder is made).
    resume : bool
        Whether rows already in ``out`` are kept and skipped; without it an existing file is an error.
    script : str
        The script's path as it is run (for the meta line).
    key : callable
        A row's key (default: image, sigma, seed).

    Returns
    -------
    set
        The keys of the rows in ``out``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not resume:
        raise SystemExit(f"{out} exists; pass --resume to add to it")
    done = {key(r) for r in read_records(out) if "image" in r} if out.exists() else set()
    with out.open("a") as f:
        f.write(json.dumps({"meta": script_meta(script)}) + "\n")
    return done


def write_script_results(json_path: Path, markdown_path: Path, meta: dict, rows: list[dict], table: str) -> None:
    """Write ``{"meta": meta, "rows": rows}`` as JSON and the markdown ``table`` under the command, machine
    and versions; the folder is created if needed.

    Parameters
    ----------
    json_path, markdown_path : Path
    meta : dict
        From :func:`script_meta`.
    rows : list of dict
    table : str
        Markdown.
    """
    json_path.parent.mkdir(parents=True, exist_ok=True)
    markdown_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    markdown_path.write_text(f"`{meta['command']}`\n\n{meta['machine']}; {meta['versions']}\n\n{table}\n")

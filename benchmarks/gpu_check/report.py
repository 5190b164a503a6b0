"""The check's two result files, rewritten atomically after every stage: ``gpu_check.json`` and ``gpu_check.md``."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from gpu_check.config import REPO_ROOT
from sae_fast.io.atomic import atomic_write_text

COMMIT_FILE = REPO_ROOT / "COMMIT"
"""Where a copy of the tree without ``.git`` may name its commit (``git rev-parse HEAD > COMMIT``)."""


def git_commit() -> str:
    """``HEAD``'s hash (with ``+dirty`` when tracked files changed); in a copy without ``.git``, the variable
    ``GPU_CHECK_COMMIT`` or the COMMIT file; else ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                    capture_output=True, text=True, timeout=10)  # fmt: skip
            return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    if os.environ.get("GPU_CHECK_COMMIT"):
        return os.environ["GPU_CHECK_COMMIT"]
    if COMMIT_FILE.is_file():
        return COMMIT_FILE.read_text().strip() or "unknown"
    return "unknown"


def meta(command: str, dry: bool, budget_s: float) -> dict:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "command": command,
        "dry_run": dry,
        "budget_s": budget_s,
        "device": None,  # filled in by the environment stage
    }


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(column)) for column in columns) + " |" for row in rows]
    return lines


def _milliseconds(rows: list[dict]) -> list[dict]:
    """Rows for reading: times in ms (``*_s`` columns), speed-ups and floor multiples as ``N.NNx``."""
    shown = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if key.endswith("_s") and not key.endswith("per_s") and isinstance(value, float):
                out[key[:-2] + "_ms"] = value * 1e3
            elif key in ("speedup", "times_floor") and isinstance(value, float):
                out[key] = f"{value:.2f}x"
            else:
                out[key] = value
        shown.append(out)
    return shown


def markdown(meta_info: dict, stages: list[dict]) -> str:
    lines = [
        "# GPU check" + (" (dry run: CPU, Triton interpreter, tiny sizes)" if meta_info["dry_run"] else ""),
        "",
        f"{meta_info['date']} · {meta_info['device']} · commit `{meta_info['commit']}`",
        "",
        f"Command: `{meta_info['command']}` (budget {meta_info['budget_s']:.0f} s)",
        "",
        "## Stages and targets",
        "",
    ]
    targets = [{"stage": stage["name"], **target} for stage in stages for target in stage.get("targets", [])]
    lines += _table([{"stage": stage["name"], "status": stage["status"], "seconds": round(stage["seconds"], 1),
                      "note": stage.get("reason") or stage.get("error") or stage.get("summary")}
                     for stage in stages])  # fmt: skip
    if targets:
        verdict = {True: "met", False: "NOT MET", None: "n/a (dry run)"}
    if targets:
        lines += ["", *_table([{**t, "met": verdict[t["met"]]} for t in targets])]
    for stage in stages:
        lines += ["", f"## {stage['name']}", ""]
        if stage.get("params"):
            lines += [", ".join(f"{key}={value}" for key, value in stage["params"].items()), ""]
        if stage.get("info"):
            lines += _table([stage["info"]]) + [""]
        if stage.get("rows"):
            lines += _table(_milliseconds(stage["rows"])) + [""]
        for key in ("skipped_cases", "case_errors", "failures"):
            for item in stage.get(key) or []:
                text = item if isinstance(item, str) else f"m={item['m']} k={item['k']}: {item['error']}"
                lines.append(f"- {key.replace('_', ' ')}: {_cell(text)}")
        if stage.get("traceback"):
            lines += ["```", stage["traceback"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, meta_info: dict, stages: list[dict]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "gpu_check.json", json.dumps({"meta": meta_info, "stages": stages}, indent=2) + "\n")
    atomic_write_text(out_dir / "gpu_check.md", markdown(meta_info, stages))

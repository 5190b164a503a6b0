"""The GPU check (scripts/gpu_check.sh) must not rot before a GPU runs it: its dry run, the same stages
on CPU at tiny sizes through Triton's interpreter, must finish with every stage ok; and its guards
(a failing stage, a spent budget) must record what happened and let the run go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from gpu_check import run as check_run
from gpu_check.budget import Budget
from gpu_check.config import CheckConfig
from gpu_check.floor import step_floor_seconds
from gpu_check.grid import run_cases

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_runs_every_stage(tmp_path):
    env = dict(os.environ, GPU_CHECK_DRY="1", OUT=str(tmp_path), PYTHON=sys.executable)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    stages = {stage["name"]: stage for stage in report["stages"]}
    assert list(stages) == list(check_run.STAGES)
    for name, stage in stages.items():
        assert stage["status"] == "ok", (name, stage.get("error") or stage.get("reason"), stage.get("traceback"))
    # Correctness is judged in the dry run too; speed is not (tiny sizes on an interpreter).
    targets = [target for stage in report["stages"] for target in stage.get("targets", [])]
    assert [t["what"] for t in targets if t["met"] is False] == []
    assert sum(t["met"] is True for t in targets) >= 15
    assert all(stage["rows"] for stage in report["stages"] if stage["name"] in ("training_step", "selection"))
    floor_row = stages["training_step"]["rows"][0]
    assert floor_row["floor_s"] == pytest.approx(floor_row["encoder_product_s"] + floor_row["adam_s"])
    meta = report["meta"]
    assert meta["dry_run"] and meta["command"].startswith("GPU_CHECK_DRY=1 bash scripts/gpu_check.sh")
    assert meta["commit"] and meta["device"]
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert meta["commit"] in markdown and "| training_step | ok |" in markdown


def test_a_failing_stage_is_recorded_and_the_next_one_runs(monkeypatch):
    def boom(cfg, context):
        raise RuntimeError("kernel crashed")

    monkeypatch.setitem(sys.modules, "gpu_check.stage_boom", types.SimpleNamespace(NEEDS_S=0.0, run=boom))
    cfg = CheckConfig.dry_run(Path("unused"), budget_s=100)
    context = {"budget": Budget(100), "results": {"environment": {"status": "ok"}}}
    result = check_run.run_stage("boom", cfg, context)
    assert result["status"] == "failed"
    assert "RuntimeError: kernel crashed" in result["error"] and "kernel crashed" in result["traceback"]


def test_a_stage_whose_input_stage_failed_is_skipped_with_the_reason():
    cfg = CheckConfig.dry_run(Path("unused"), budget_s=100)
    context = {"budget": Budget(100), "results": {"environment": {"status": "ok"}, "ceilings": {"status": "failed"}}}
    result = check_run.run_stage("training_step", cfg, context)
    assert result["status"] == "skipped" and "ceilings" in result["reason"]


def test_cases_beyond_the_budget_are_skipped_with_the_reason():
    cfg = CheckConfig.dry_run(Path("unused"), budget_s=100)
    measured = []
    outcome = run_cases(cfg, Budget(1.0, reserve_s=0.5), [(32, 2), (64, 2)], lambda m, k: measured.append(m) or [])
    assert measured == []
    assert len(outcome["skipped_cases"]) == 2 and "budget left" in outcome["skipped_cases"][0]


def test_a_failing_case_does_not_end_the_grid():
    cfg = CheckConfig.dry_run(Path("unused"), budget_s=100)

    def measure(m, k):
        if m == 32:
            raise MemoryError("out of memory")
        return [{"m": m, "k": k}]

    outcome = run_cases(cfg, Budget(100), [(32, 2), (64, 2)], measure)
    assert outcome["rows"] == [{"m": 64, "k": 2}]
    assert outcome["case_errors"][0]["m"] == 32 and "out of memory" in outcome["case_errors"][0]["error"]


def test_floor_is_the_encoder_product_plus_adams_bytes():
    # n = d = m = 1000: 2e9 FLOP at 1e12 FLOP/s; Adam moves 28 bytes x (2e6 + 2e3) elements at 1e11 B/s.
    floor = step_floor_seconds(1000, 1000, 1000, flop_per_s=1e12, bytes_per_s=1e11)
    assert floor["encoder_product_s"] == pytest.approx(2e-3)
    assert floor["adam_s"] == pytest.approx(28 * 2_002_000 / 1e11)
    assert floor["floor_s"] == pytest.approx(floor["encoder_product_s"] + floor["adam_s"])

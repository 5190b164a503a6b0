"""Runs the check's stages in order under one budget and writes the results after each.

Every stage is wrapped: an exception is recorded (status ``failed``, with its traceback) and the
next stage runs; a stage that would not fit in what is left of the budget is ``skipped`` with the
reason; a grid stage whose cases were cut by the budget or failed one by one is ``partial``. Stages
that need an earlier stage's numbers (the floor needs the ceilings) are skipped if it did not run.
"""

from __future__ import annotations

import importlib
import shlex
import sys
import time
import traceback

from gpu_check.budget import Budget, Skipped
from gpu_check.config import CheckConfig
from gpu_check.report import meta, write

STAGES = ("environment", "ceilings", "kernel_tests", "kernel_checks", "training_step", "selection", "decode_aux",
          "matryoshka", "max_cosine")  # fmt: skip
"""In order; stage ``X`` is the module ``gpu_check.stage_X``, imported when it runs so that a failing import
(of a kernel module, say) is that stage's recorded failure and not the end of the run."""
NEEDS = {**{name: ("environment",) for name in STAGES[1:]}, "training_step": ("environment", "ceilings")}
"""A stage that reads another's numbers (the floor reads the ceilings; everything needs a working
environment): it is skipped when that one did not finish."""


def run_stage(name: str, cfg: CheckConfig, context: dict) -> dict:
    budget: Budget = context["budget"]
    begin = time.monotonic()
    result = {"name": name}
    try:
        for needed in NEEDS.get(name, ()):
            if context["results"].get(needed, {}).get("status") not in ("ok", "partial"):
                raise Skipped(f"needs the {needed} stage, which did not finish")
        stage = importlib.import_module(f"gpu_check.stage_{name}")
        budget.require(stage.NEEDS_S if not cfg.dry else 0.0, name)
        result.update(stage.run(cfg, context))
        cut = result.get("skipped_cases") or result.get("case_errors")
        result["status"] = "partial" if cut else "ok"
    except Skipped as reason:
        result.update(status="skipped", reason=str(reason))
    except Exception as error:  # a failed stage is a result; the next stage still runs
        result.update(status="failed", error=f"{type(error).__name__}: {error}"[:2000],
                      traceback=traceback.format_exc()[-4000:])  # fmt: skip
    result["seconds"] = time.monotonic() - begin
    return result


def main() -> int:
    cfg = CheckConfig.from_env()
    command = " ".join(filter(None, ["GPU_CHECK_DRY=1" if cfg.dry else "", "bash scripts/gpu_check.sh",
                                     *map(shlex.quote, sys.argv[1:])]))  # fmt: skip
    context = {"budget": Budget(cfg.budget_s), "results": {}}
    meta_info = meta(command, cfg.dry, cfg.budget_s)
    stages = []
    for name in STAGES:
        print(f"[gpu_check] {name} ... ({context['budget'].remaining():.0f} s left)", flush=True)
        result = run_stage(name, cfg, context)
        context["results"][name] = result
        if name == "environment" and result["status"] == "ok":
            meta_info["device"] = result["info"]["device"]
        stages.append(result)
        write(cfg.out_dir, meta_info, stages)
        print(f"[gpu_check] {name}: {result['status']} in {result['seconds']:.1f} s "
              f"{result.get('reason') or result.get('error') or ''}", flush=True)  # fmt: skip
    for stage in stages:
        for target in stage.get("targets", []):
            verdict = {True: "met    ", False: "NOT MET", None: "n/a    "}[target["met"]]
            print(f"[gpu_check] {verdict} {target['what']}: "
                  f"{target['measured']} (target {target['target']})")  # fmt: skip
    print(f"[gpu_check] results: {cfg.out_dir / 'gpu_check.json'} and gpu_check.md")
    return 0 if all(stage["status"] in ("ok", "partial") for stage in stages) else 1


if __name__ == "__main__":
    sys.exit(main())

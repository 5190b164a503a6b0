"""What ``--resume`` does with a setting that differs from the checkpoint's: apply it, or refuse.

A run's record (``train_result.json``, the checkpoint's config) must name the settings that were used.
Adam's ``lr``, ``betas`` and ``eps`` are applied: they are written into the restored optimiser's
parameter groups (``load_state_dict`` would otherwise bring back the old ones) and each change is
recorded with the step it took effect. Settings that only say how long to train or where to log
change freely. Every other field changes what the restored state means (the batch and its BatchTopK
budget, the data order, the parameters' dtype, the first-batch initialisation), so a resume that
changes it is refused, naming the field. A field added to ``TrainConfig`` later is refused until it
is listed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sae_fast.training.config import TrainConfig

APPLIED_ON_RESUME = ("lr", "betas", "eps")
"""Adam hyper-parameters: set on the restored optimiser, and the change recorded."""
FREE_ON_RESUME = ("total_tokens", "checkpoint_dir", "checkpoint_every", "resume", "log_every", "log_jsonl",
                  "tensorboard_dir", "wandb_project", "device", "progress", "extra")
"""How long to train, where to write and log, where to compute: nothing restored depends on them."""


class ResumeSettingError(ValueError):
    """A resume asked for a setting that cannot change mid-run."""


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return [float(v) for v in old] == [float(v) for v in new]
    return old == new


def resume_setting_changes(saved: Mapping[str, Any], config: TrainConfig, path: Any) -> list[dict[str, Any]]:
    """The applied settings that differ from the checkpoint's config ``saved`` (``{"field", "checkpoint",
    "now"}``); raises :class:`ResumeSettingError` for a difference that cannot be applied."""
    now = config.to_dict()
    changes, refused = [], []
    for name in now:
        if name in FREE_ON_RESUME or name not in saved or _same(saved[name], now[name]):
            continue  # a checkpoint from before a field existed cannot tell what it was
        entry = {"field": name, "checkpoint": saved[name], "now": now[name]}
        (changes if name in APPLIED_ON_RESUME else refused).append(entry)
    if refused:
        details = "; ".join(f"{c['field']}: checkpoint {c['checkpoint']!r}, now {c['now']!r}" for c in refused)
        raise ResumeSettingError(
            f"--resume cannot change {', '.join(c['field'] for c in refused)} ({details}): the checkpoint's state "
            f"was built with the old value. Resume with the checkpoint's values (see {path}), or train into a "
            f"new --out. A resume may change {', '.join(APPLIED_ON_RESUME)} (applied and recorded) and "
            f"{', '.join(FREE_ON_RESUME)}."
        )
    return changes


def apply_optimizer_settings(optimizer: Any, config: TrainConfig) -> None:
    """Write ``config``'s lr, betas and eps into every parameter group of a restored Adam."""
    for group in optimizer.param_groups:
        group["lr"], group["betas"], group["eps"] = config.lr, tuple(config.betas), config.eps

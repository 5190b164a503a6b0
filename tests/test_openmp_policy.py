"""sae_fast makes OpenMP's idle threads sleep by default, and says so when it is too late to."""

import os
import subprocess
import sys

_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _run(code: str, **settings: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in _SETTINGS} | settings
    return subprocess.run([sys.executable, "-W", "always::RuntimeWarning", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120, check=True)


_TRAIN_STEP = (
    "torch.set_num_threads(2); sae = sae_fast.BatchTopKSAE(8, 32, k=2, backend='cpp'); "
    "sae.training_loss(torch.randn(4, 8)); print(os.environ.get('OMP_WAIT_POLICY'))"
)


def test_import_before_torch_sets_passive_and_stays_quiet():
    done = _run("import os, sae_fast, torch; " + _TRAIN_STEP)
    assert done.stdout.split() == ["PASSIVE"]
    assert "OMP_WAIT_POLICY" not in done.stderr


def test_users_own_setting_wins():
    done = _run("import os, sae_fast, torch; " + _TRAIN_STEP, OMP_WAIT_POLICY="ACTIVE")
    assert done.stdout.split() == ["ACTIVE"]
    assert "OMP_WAIT_POLICY" not in done.stderr


def test_torch_first_without_a_setting_warns_once_with_the_fix():
    done = _run("import os, torch, sae_fast; " + _TRAIN_STEP + "; " + _TRAIN_STEP)
    assert done.stdout.split() == ["None", "None"]
    assert done.stderr.count("set OMP_WAIT_POLICY=PASSIVE") == 1
    assert "Import sae_fast before torch" in done.stderr

import os
import sys
from pathlib import Path

# benchmarks/dense_peer.py, the peers' dense training step, is the one baseline tests and benchmarks share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
# Spin-waiting OpenMP threads (torch's and the C++ ops' share one runtime) starve each other on a
# shared 2-core machine; this must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# Without a GPU, Triton kernels are tested through the CPU interpreter; this must be set before
# any kernel module is imported (Triton fixes compiled-vs-interpreted at decoration time).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield

import os

import pytest
import torch

# Without a GPU, Triton kernels are tested through the CPU interpreter; this must be set before
# any kernel module is imported (Triton fixes compiled-vs-interpreted at decoration time).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield

"""Stage ``environment``: what ran the check (device, driver, torch and Triton versions, the C++ extension)."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess

import torch

from gpu_check.config import CheckConfig

NEEDS_S = 1.0


def _driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    result = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    if result.returncode != 0:
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    return getattr(__import__(module), "__version__", "unknown")


def run(cfg: CheckConfig, context: dict) -> dict:
    info = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "cuda_available": torch.cuda.is_available(),
        "driver": _driver(),
        "tf32_products": cfg.tf32,
    }
    if cfg.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device; on a CPU machine run the dry run: "
                               "GPU_CHECK_DRY=1 bash scripts/gpu_check.sh")
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, multiprocessors=props.multi_processor_count,
                    capability=f"{props.major}.{props.minor}", memory_gib=round(props.total_memory / 2**30, 1))
    else:
        info.update(device=f"CPU ({info['machine']}), Triton interpreter")
    if info["triton"] is None:
        raise RuntimeError("triton is not importable here: the kernels cannot run (the check installs nothing)")
    # The C++ extension serves CPU tensors only: the CUDA check never needs it, so it is reported, not built.
    from sae_fast.kernels import cpu

    info["cpp_extension_built"] = cpu.is_available()
    return {"info": info}

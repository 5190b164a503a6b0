"""Build and install sae_fast and its C++ extension ``sae_fast._C``.

The extension works on numpy buffers (pybind11 ``py::array_t``), never on torch tensors, so it
includes no PyTorch headers and compiles in seconds against any installed torch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext, has_flag
from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent


def read_requirements() -> list[str]:
    """Requirement lines of requirements.txt (the single list of dependencies)."""
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


class BuildExtWithOpenMP(build_ext):
    """Adds OpenMP flags only when the compiler accepts them, so the build never fails on them."""

    def build_extensions(self) -> None:
        if sys.platform != "win32" and has_flag(self.compiler, "-fopenmp"):
            for ext in self.extensions:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
        else:
            print("sae_fast: compiler does not accept -fopenmp; building the CPU ops single-threaded")
        super().build_extensions()


# Compile the op files concurrently (one job per core unless SAE_FAST_BUILD_JOBS says otherwise).
ParallelCompile("SAE_FAST_BUILD_JOBS", default=os.cpu_count() or 1).install()

extension = Pybind11Extension(
    "sae_fast._C",
    sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cpp")),
    include_dirs=[str(ROOT / "csrc")],
    cxx_std=17,
    extra_compile_args=["-O3"],
)

setup(
    name="sae_fast",
    version="0.1.0",
    description="Fast sparse autoencoders (BatchTopK, stitching, meta-SAEs) with Triton and C++ kernels",
    packages=find_packages(include=["sae_fast", "sae_fast.*"]),
    python_requires=">=3.10",
    install_requires=read_requirements(),
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExtWithOpenMP},
    entry_points={"console_scripts": ["sae-fast = sae_fast.cli:main"]},
    zip_safe=False,
)

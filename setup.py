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


EXTRAS = ("lm", "gpu", "bench", "test")
"""``pip install sae-fast[<extra>]``: one file ``requirements/<extra>.txt`` each; ``all`` is their union."""


def read_requirements(path: Path) -> list[str]:
    """Requirement lines of ``path``, following its ``-r other.txt`` includes (the files are the one list)."""
    requirements = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r"):
            requirements += read_requirements(path.parent / line[2:].strip())
        elif line:
            requirements.append(line)
    return list(dict.fromkeys(requirements))


def extras_require() -> dict[str, list[str]]:
    extras = {name: read_requirements(ROOT / "requirements" / f"{name}.txt") for name in EXTRAS}
    extras["all"] = list(dict.fromkeys(requirement for group in extras.values() for requirement in group))
    return extras


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
    install_requires=read_requirements(ROOT / "requirements" / "core.txt"),
    extras_require=extras_require(),
    ext_modules=[extension],
    cmdclass={"build_ext": BuildExtWithOpenMP},
    entry_points={"console_scripts": ["sae-fast = sae_fast.cli:main"]},
    zip_safe=False,
)

"""The one-call GPU check: the Triton kernels' correctness on CUDA and the benchmark grid at the paper's sizes.

``bash scripts/gpu_check.sh`` runs it (``GPU_CHECK_DRY=1``: the same stages on CPU at tiny sizes through
Triton's interpreter). Each stage is one module here (``stage_*.py``); :mod:`gpu_check.run` runs them
in order under one time budget and writes ``gpu_check.json`` and ``gpu_check.md`` after every stage,
so a run cut short still leaves what it measured. See docs/gpu_check.md.
"""

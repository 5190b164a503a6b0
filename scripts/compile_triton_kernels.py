"""Compile every sae_fast Triton kernel for a real GPU target, without a GPU.

The test suite runs the kernels through Triton's CPU interpreter, which accepts some programs
the compiler rejects (and the reverse). This script lowers each kernel, in every constexpr
variant the package launches, through Triton's full pipeline (TTIR -> TTGIR -> LLVM -> PTX) and
assembles the PTX with Triton's bundled ``ptxas -v``, reporting registers, spills and shared memory.
It proves the kernels compile for the target; only a GPU run proves they are correct there.

    .venv/bin/python scripts/compile_triton_kernels.py            # sm_90 (H100/H200)
    .venv/bin/python scripts/compile_triton_kernels.py --arch 80  # A100
    .venv/bin/python scripts/compile_triton_kernels.py --output benchmarks/results/triton_compile_sm90.md

Exit status 1 if any variant fails to compile.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

if os.environ.get("TRITON_INTERPRET") == "1":
    sys.exit("unset TRITON_INTERPRET: the kernels must be imported as compiled kernels")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from sae_fast.io.atomic import atomic_write_text  # noqa: E402
from sae_fast.kernels import encode_select_triton as enc  # noqa: E402
from sae_fast.kernels import select_triton as sel  # noqa: E402
from sae_fast.kernels import max_cosine_triton as cos  # noqa: E402
from sae_fast.kernels import select_scan_triton as scan  # noqa: E402
from sae_fast.kernels import sparse_products_triton as prod  # noqa: E402
from sae_fast.kernels.triton_utils import DIGIT_BITS, RADIX_SHIFTS  # noqa: E402

from triton.backends.nvidia.compiler import get_ptxas  # noqa: E402


def _variants():
    """(label, kernel, {arg: type or constexpr value}) for every launch the package makes.

    Pointer types are Triton signature strings ("*fp32"); scalars "i32"/"i64"; None is an
    optional pointer left out (Triton specialises it as a constexpr None); anything else is a
    constexpr value. Every kernel argument must appear; ``num_warps``/``num_stages`` are the
    launch options (Triton's defaults, 4 and 3, where absent), as the launch sites pass them.
    """
    for dtype in ("fp32", "bf16"):
        yield f"batch_histogram {dtype}", sel._batch_histogram_kernel, dict(
            pre_ptr=f"*{dtype}", numel="i64", blocks_per_program="i32", state_ptr="*i64", hist_ptr="*i64",
            SHIFT=16, DIGIT_BITS=DIGIT_BITS, BLOCK=sel._HIST_BLOCK,
        )  # fmt: skip
        yield from _scan_variants(dtype)
        for columns in ("*i64", None):
            yield f"row_topk_cut {dtype} columns={columns}", sel._row_topk_cut_kernel, dict(
                pre_ptr=f"*{dtype}", m="i32", row_stride="i32", columns_ptr=columns, k="i32", cut_ptr="*i32",
                tie_budget_ptr="*i64", count_ptr="*i64", DIGIT_BITS=DIGIT_BITS, BLOCK=sel._ROW_SELECT_COLS,
            )  # fmt: skip
        for histogram, gather_aux in ((False, False), (True, False), (True, True), (False, True)):
            yield f"encode {dtype} histogram={histogram} aux={gather_aux}", enc._encode_kernel, dict(
                x_ptr=f"*{dtype}", w_ptr=f"*{dtype}", b_enc_ptr=f"*{dtype}", b_dec_ptr=f"*{dtype}",
                pre_ptr=f"*{dtype}", hist_ptr="*i64", aux_slot_ptr="*i32", aux_pre_ptr=f"*{dtype}",
                n="i32", m="i32", d="i32", n_aux="i32", HISTOGRAM=histogram, GATHER_AUX=gather_aux,
                SHIFT=RADIX_SHIFTS[0], DIGIT_BITS=DIGIT_BITS,
                PRECISION="tf32" if dtype == "fp32" else None, BM=enc._BM, BN=enc._BN, BK=enc._BK,
                GROUP_M=enc._GROUP_M, DOT_IN_FP32=False, num_warps=enc._WARPS, num_stages=enc._STAGES,
            )  # fmt: skip
    yield "batch_refine", sel._batch_refine_kernel, dict(hist_ptr="*i64", state_ptr="*i64", SHIFT=8, DIGIT_BITS=DIGIT_BITS)
    yield from _product_variants()
    yield from _max_cosine_variants()


def _scan_variants(dtype: str):
    """The per-row count and write scans of the selections (columns=None: the whole row)."""
    tiles = dict(BLOCK_R=scan._SCAN_ROWS, BLOCK_C=scan._SCAN_COLS)
    yield f"count_above_cut {dtype}", scan._count_above_cut_kernel, dict(
        pre_ptr=f"*{dtype}", n="i32", m="i32", row_stride="i32", cut_ptr="*i32", n_above_ptr="*i32",
        n_ties_ptr="*i32", **tiles,
    )  # fmt: skip
    yield f"count_above_threshold {dtype}", scan._count_above_threshold_kernel, dict(
        pre_ptr=f"*{dtype}", n="i32", m="i32", row_stride="i32", thr_ptr="*fp32", thr_stride="i32",
        n_above_ptr="*i32", **tiles,
    )  # fmt: skip
    for columns in ("*i64", None):
        yield f"write_above_cut {dtype} columns={columns}", scan._write_above_cut_kernel, dict(
            pre_ptr=f"*{dtype}", n="i32", m="i32", row_stride="i32", columns_ptr=columns, cut_ptr="*i32",
            cut_stride="i32", tie_budget_ptr="*i64", row_offsets_ptr="*i64", latent_out_ptr="*i64",
            value_out_ptr=f"*{dtype}", **tiles,
        )  # fmt: skip
    yield f"write_above_threshold {dtype}", scan._write_above_threshold_kernel, dict(
        pre_ptr=f"*{dtype}", n="i32", m="i32", row_stride="i32", thr_ptr="*fp32", thr_stride="i32",
        row_offsets_ptr="*i64", latent_out_ptr="*i64", value_out_ptr=f"*{dtype}", **tiles,
    )  # fmt: skip


def _product_variants():
    for has_bias in (False, True):
        yield f"sparse_decode bias={has_bias}", prod._sparse_decode_kernel, dict(
            row_offsets_ptr="*i64", latent_ptr="*i64", value_ptr="*fp32", w_ptr="*fp32", w_stride_row="i64",
            w_stride_col="i64", b_ptr="*fp32", out_ptr="*fp32", d="i32", HAS_BIAS=has_bias,
            BLOCK_E=prod._ENTRIES, BLOCK_D=prod._DIM,
        )  # fmt: skip
    for has_bias in (False, True):
        yield f"nested_sparse_decode bias={has_bias}", prod._nested_sparse_decode_kernel, dict(
            level_offsets_ptr="*i64", latent_ptr="*i64", value_ptr="*fp32", w_ptr="*fp32", w_stride_row="i64",
            w_stride_col="i64", b_ptr="*fp32", out_ptr="*fp32", n="i32", d="i32", n_levels="i32",
            HAS_BIAS=has_bias, BLOCK_E=prod._ENTRIES, BLOCK_D=prod._DIM,
        )  # fmt: skip
    yield "sparse_row_dots", prod._sparse_row_dots_kernel, dict(
        token_ptr="*i64", latent_ptr="*i64", a_ptr="*fp32", a_stride_row="i64", a_stride_col="i64",
        w_ptr="*fp32", w_stride_row="i64", w_stride_col="i64", out_ptr="*fp32", nnz="i64", d="i32",
        BLOCK_E=prod._ENTRIES, BLOCK_D=prod._DIM,
    )  # fmt: skip
    yield "sparse_transpose_matmul", prod._sparse_transpose_matmul_kernel, dict(
        latent_offsets_ptr="*i64", token_ptr="*i64", value_ptr="*fp32", a_ptr="*fp32", a_stride_row="i64",
        a_stride_col="i64", out_ptr="*fp32", d="i32", BLOCK_E=prod._ENTRIES, BLOCK_D=prod._DIM,
    )  # fmt: skip


def _max_cosine_variants():
    for precision, dtype in (("bf16", "bf16"), ("tf32", "fp32"), ("ieee", "fp32")):
        yield f"max_cosine {precision}", cos._max_cosine_kernel, dict(
            q_ptr=f"*{dtype}", k_ptr=f"*{dtype}", out_val_ptr="*fp32", out_idx_ptr="*i64", M1="i32", M0="i32",
            D="i32", stride_qm="i64", stride_km="i64", BLOCK_M=64, BLOCK_N=64, BLOCK_D=64,
            INPUT_PRECISION="ieee" if precision == "bf16" else precision, UPCAST_OPERANDS=False,
        )  # fmt: skip


def _split(fn, spec: dict) -> tuple[dict, dict, dict]:
    spec = dict(spec)
    options = {key: spec.pop(key) for key in ("num_warps", "num_stages") if key in spec}
    missing = set(fn.arg_names) - set(spec)
    extra = set(spec) - set(fn.arg_names)
    if missing or extra:
        raise SystemExit(f"{fn.__name__}: spec is missing {sorted(missing)} / has unknown {sorted(extra)}")
    constexpr_names = {p.name for p in fn.params if p.is_constexpr} | {k for k, v in spec.items() if v is None}
    signature = {name: ("constexpr" if name in constexpr_names else spec[name]) for name in fn.arg_names}
    constexprs = {name: spec[name] for name in constexpr_names}
    return signature, constexprs, options


def _ptxas_report(ptx: str, arch: int) -> str:
    """ptxas -v on the PTX, with the ptxas Triton itself uses for this arch."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ptx"
        path.write_text(ptx)
        out = subprocess.run(
            [get_ptxas(arch).path, f"-arch=sm_{arch}a" if arch >= 90 else f"-arch=sm_{arch}", "-v", str(path), "-o", str(Path(tmp) / "k.cubin")],
            capture_output=True, text=True,
        )  # fmt: skip
    text = out.stderr + out.stdout
    if out.returncode != 0:
        raise RuntimeError(f"ptxas failed: {text.strip()}")
    regs = re.search(r"Used (\d+) registers", text)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    return (
        f"{regs.group(1) if regs else '?'} regs, "
        f"spill {spill.group(1) if spill else '?'}/{spill.group(2) if spill else '?'} B (store/load)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability x10 (90 = H100/H200)")
    parser.add_argument("--output", type=Path, help="also write the report here (Markdown, atomic)")
    args = parser.parse_args()
    target = GPUTarget("cuda", args.arch, 32)
    failures = 0
    lines = [
        f"# Triton kernels compiled for sm_{args.arch} (no GPU run)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"- command: `python scripts/compile_triton_kernels.py {' '.join(sys.argv[1:])}`",
        f"- triton {triton.__version__}, ptxas {Path(get_ptxas(args.arch).path).name}",
        "",
        "```",
    ]
    print("\n".join(lines[2:5]))
    for label, fn, spec in _variants():
        signature, constexprs, options = _split(fn, spec)
        try:
            compiled = triton.compile(
                ASTSource(fn, signature, constexprs), target=target, options=options
            )
            report = _ptxas_report(compiled.asm["ptx"], args.arch)
            line = f"ok    {label:55s} {report}, shared {compiled.metadata.shared} B"
        except Exception as error:  # report every failing variant, not only the first
            failures += 1
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            line = f"FAIL  {label:55s} {type(error).__name__}: {first_line}"
        print(line, flush=True)
        lines.append(line)
    summary = f"{failures} of the variants failed" if failures else "all variants compiled"
    print(summary)
    if args.output is not None:
        atomic_write_text(args.output, "\n".join([*lines, "```", "", summary]) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

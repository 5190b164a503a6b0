"""Reading the files of every supported format, with errors that name the file, the key and the fix.

Foreign files are the least trusted input sae_fast takes, so nothing here lets a library's bare
exception (a ``KeyError``, a safetensors header error, a zip error) reach the user: each becomes a
``ValueError`` or ``FileNotFoundError`` that says which file is wrong and what to do about it.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor


def require_file(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is a file, else ``FileNotFoundError`` saying what it should hold and how to fix it."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} does not exist or is not a file; {fix}")
    return path


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}); the config file is corrupt, re-save it") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "the file is truncated or corrupt, re-save or re-download it"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, found a {type(data).__name__}")
    return data


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file, on the CPU."""
    require_file(path, "weights file", "check the path, or re-save the SAE")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"cannot read {path} as safetensors ({error}); the file is truncated or corrupt, "
            "re-save or re-download it"
        ) from None


def read_npz(path: Path) -> dict[str, Tensor]:
    """Every array of an ``.npz`` archive, as CPU tensors (pickled objects are refused)."""
    require_file(path, "weights file", "check the path, or re-download the SAE")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: torch.from_numpy(np.array(archive[name])) for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise ValueError(
            f"cannot read {path} as a numpy .npz archive ({error}); the file is truncated or corrupt, "
            "re-download it"
        ) from None


def require_keys(tensors: Mapping[str, Tensor], keys: Iterable[str], path: Path, fix: str) -> None:
    """Every key in ``keys`` is present in ``tensors`` (read from ``path``)."""
    missing = [key for key in keys if key not in tensors]
    if missing:
        raise ValueError(
            f"{path} is missing tensor(s) {missing} (it has {sorted(tensors)}); {fix}"
        )


def check_shape(tensors: Mapping[str, Tensor], key: str, expected: tuple[int, ...], path: Path, why: str) -> Tensor:
    """``tensors[key]`` if it has shape ``expected``; ``why`` says where the expected shape comes from."""
    tensor = tensors[key]
    if tuple(tensor.shape) != tuple(expected):
        raise ValueError(
            f"tensor {key!r} in {path} has shape {tuple(tensor.shape)}, expected {tuple(expected)} ({why}); "
            "the weights do not match the config: re-save the SAE, or fix the config's sizes"
        )
    if not tensor.is_floating_point():
        raise ValueError(f"tensor {key!r} in {path} has dtype {tensor.dtype}; SAE weights must be floating point")
    return tensor


def is_integral(value: object) -> bool:
    """An int, or a float with an integer value (JSON writers often store 16 as 16.0); never a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def config_int(cfg: Mapping[str, Any], key: str, path: Path) -> int:
    """A positive integer config entry (integral floats such as ``16.0`` are accepted)."""
    if key not in cfg:
        raise ValueError(f"{path} has no {key!r} entry (it has {sorted(cfg)}); add it or re-save the SAE")
    value = cfg[key]
    if not is_integral(value) or value < 1:
        raise ValueError(f"{key!r} in {path} must be a positive integer, got {value!r}")
    return int(value)

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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor


def require_file(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is a file, else ``FileNotFoundError`` saying what it should hold and how to fix it."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path} does not exist or is not a file; {fix}")
    return path


MAX_JSON_BYTES = 64 * 2**20
"""Largest JSON file read (configs and manifests are kilobytes; a bigger one is not one of ours)."""


def parse_json_text(text: str, where: str) -> Any:
    """``json.loads(text)`` with errors naming ``where`` (a file, or ``file:line``).

    Deep nesting exhausts the parser's recursion, which Python reports as a bare ``RecursionError``;
    no config or manifest nests more than a few levels, so it is refused like any malformed JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{where} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "the file is truncated or corrupt, re-save or re-download it"
        ) from None
    except RecursionError:
        raise ValueError(f"{where} nests JSON too deeply to be a config or manifest; the file is corrupt") from None


def read_json(path: Path, what: str = "config file") -> dict[str, Any]:
    """A JSON object from ``path`` (``what`` names the file in errors)."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ValueError(
                f"{path} is {size / 2**20:.0f} MiB, too large for a {what} (at most {MAX_JSON_BYTES // 2**20} MiB); "
                "check the path"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text ({error}); the {what} is corrupt, re-save it") from None
    except OSError as error:
        raise OSError(error.errno, f"cannot read the {what} {path}: {error.strerror or error}", str(path)) from None
    data = parse_json_text(text, str(path))
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


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a safetensors file, from its header alone (no tensor is read).

    Loaders compare these with the sizes a config declares *before* building anything, so a tiny
    config that declares a huge SAE is refused without allocating it.
    """
    require_file(path, "weights file", "check the path, or re-save the SAE")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"cannot read {path} as safetensors ({error}); the file is truncated or corrupt, "
            "re-save or re-download it"
        ) from None


# Deflate cannot compress better than about 1032:1, so a member claiming more is lying about its size.
_DEFLATE_MAX_RATIO = 1032


def npz_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every array in an ``.npz`` archive, from the npy headers alone (no array is read).

    Each header is checked against the zip entry's uncompressed size, and that size against the
    compressed one, so an archive whose headers declare more data than it holds (a decompression
    bomb, or a tiny file declaring a huge array) is refused before numpy allocates the array.
    """
    require_file(path, "weights file", "check the path, or re-download the SAE")
    fix = "the file is truncated or corrupt (or crafted); re-download it"
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if info.compress_type == zipfile.ZIP_STORED:
                    plausible = info.file_size == info.compress_size
                else:
                    plausible = info.file_size <= _DEFLATE_MAX_RATIO * info.compress_size + 1024
                if not plausible:
                    raise ValueError(
                        f"array {name!r} in {path} claims {info.file_size} bytes from {info.compress_size} "
                        f"compressed ones, more than compression allows; {fix}"
                    )
                with archive.open(info) as member:
                    try:
                        version = np.lib.format.read_magic(member)
                        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, dtype = read_header(member)
                    except ValueError as error:
                        raise ValueError(f"array {name!r} in {path} has no valid npy header ({error}); {fix}") from None
                    header_bytes = member.tell()
                if dtype.hasobject:
                    raise ValueError(f"array {name!r} in {path} holds Python objects; SAE weights are numbers")
                declared = header_bytes + int(np.prod(shape, dtype=object)) * dtype.itemsize
                if declared != info.file_size:
                    raise ValueError(
                        f"array {name!r} in {path} declares shape {tuple(shape)} of {dtype} ({declared} bytes) but "
                        f"its entry holds {info.file_size} bytes; {fix}"
                    )
                shapes[name] = tuple(int(n) for n in shape)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(f"cannot read {path} as a numpy .npz archive ({error}); {fix}") from None
    return shapes


def require_shapes(
    shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], path: Path, why: str
) -> None:
    """Each tensor named in ``expected`` that ``shapes`` (a file's header) lists has the expected shape.

    Run before anything is built or read, so sizes declared by a config are checked against what the
    weights file really holds while it is still cheap to refuse.
    """
    for key, shape in expected.items():
        if key in shapes and tuple(shapes[key]) != tuple(shape):
            raise ValueError(
                f"tensor {key!r} in {path} has shape {tuple(shapes[key])}, expected {tuple(shape)} ({why}); "
                "the weights do not match the config: re-save the SAE, or fix the config's sizes"
            )


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


def require_keys(tensors: Mapping[str, object], keys: Iterable[str], path: Path, fix: str) -> None:
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

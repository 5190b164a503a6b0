"""Saving and loading SAEs: sae_fast's own format (SAELens-compatible), SAELens, sparsify, Gemma Scope.

``save_pretrained(sae, directory)`` writes a folder SAELens 6 loads with ``SAE.load_from_disk``;
``load_pretrained(path)`` recognises every supported format and returns the matching sae_fast SAE.
"""

from sae_fast.io.load import load_pretrained
from sae_fast.io.native import save_pretrained

__all__ = ["load_pretrained", "save_pretrained"]

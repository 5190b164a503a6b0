"""The package's one reading of TRITON_INTERPRET must agree with Triton's own."""

from __future__ import annotations

import pytest

from sae_fast.kernels.triton_interpreter import interpreting

triton = pytest.importorskip("triton")


@pytest.mark.parametrize("value", ["1", "0", "true", "TRUE", "on", "yes", "y", "off", "no", "", "2", " 1"])
def test_interpreting_reads_the_variable_as_triton_does(monkeypatch, value):
    monkeypatch.setenv("TRITON_INTERPRET", value)
    assert interpreting() == bool(triton.knobs.runtime.interpret)


def test_unset_means_compiled(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert interpreting() is False
    assert not triton.knobs.runtime.interpret

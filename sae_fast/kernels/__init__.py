"""Kernel layer: plain-torch references (the spec), C++ CPU ops and Triton GPU kernels."""

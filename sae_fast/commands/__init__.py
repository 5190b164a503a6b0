"""The ``sae-fast`` subcommands that drive the analysis libraries (stitching, meta-SAEs, θ recalibration),
and the checks of what a command reads and writes. ``sae_fast.cli`` only builds the parser and dispatches."""

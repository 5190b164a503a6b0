# sae_fast developer entry points. Every target first makes sure the virtual environment exists
# and the C++ extension is built from the current csrc/ (scripts/ensure_venv.sh, instant when
# nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python
export VENV

# OpenMP threads that spin between parallel regions starve each other on a shared 2-core machine
# (torch's pool, the C++ ops, other processes); sleeping threads cost microseconds per region.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: venv test demo reproduce reproduce-gpt2 bench clean

venv:
	bash scripts/ensure_venv.sh

# Tests never need a GPU: Triton kernels run in the interpreter.
test: venv
	TRITON_INTERPRET=1 $(PY) -m pytest -q -p no:cacheprovider tests

demo: venv
	$(PY) -m sae_fast.demo

# The paper's analyses on the offline model: a ReLU/L1 and a BatchTopK family side by side (87 minutes on a
# 2-core AVX2 CPU; resumable, outputs/reproduce/).
# Flags: REPRODUCE_ARGS="--milestones 1000 2000 4000 16000" continues a finished run to 16k steps.
reproduce: venv
	$(PY) -m sae_fast.reproduce $(REPRODUCE_ARGS)

# The paper's stitching and meta-SAE analyses on its own published GPT-2 SAEs (gpt2-small-res-jb-feature-splitting),
# with GPT-2 small on OpenWebText: needs network access (the SAEs, GPT-2, the text stream), ideally a GPU.
# Offline it stops at once and says what to fetch. Flags: REPRODUCE_ARGS="--device cpu --eval-tokens 8192".
reproduce-gpt2: venv
	$(PY) -m sae_fast.reproduce --preset paper-gpt2 $(REPRODUCE_ARGS)

# Benchmarks compare each kernel with the dense torch path in the same run; the results (JSON and a
# Markdown table) land in the untracked benchmarks/results/local/. To refresh the committed tables in
# benchmarks/results/: make bench BENCH_ARGS=--update-results (or BENCH_UPDATE_RESULTS=1 make bench);
# other sizes: BENCH_ARGS="--bench-sizes 1024x3072,4096x12288".
bench: venv
	$(PY) -m pytest -q -p no:cacheprovider benchmarks --benchmark-only --benchmark-columns=min,median,mean,rounds $(BENCH_ARGS)

clean:
	rm -rf build *.egg-info sae_fast/*.egg-info .pytest_cache .benchmarks
	rm -f sae_fast/_C*.so
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

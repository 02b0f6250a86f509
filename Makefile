# Quick start: `make run` (the demo) and `make test` (the whole suite).
# Both create a project-local virtual environment and build the C core.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
BUILD ?= build/dev
JOBS ?= 2

.PHONY: run test ext bench fuzz test-asan clean

$(STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

ext: $(STAMP)
	@mkdir -p build
	flock build/.lock $(VENV)/bin/cmake -S . -B $(BUILD) -G Ninja -DBM_INPLACE=ON \
	  -DPython_EXECUTABLE=$(abspath $(PY)) >/dev/null
	flock build/.lock $(VENV)/bin/cmake --build $(BUILD) -j $(JOBS)

run: ext
	$(PY) -m pybpfmem demo

test: ext
	$(PY) -m pytest -q

bench: ext
	$(PY) -m pybpfmem bench

clean:
	rm -rf build pybpfmem/_core*.so

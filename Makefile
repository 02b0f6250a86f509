# Quick start: `make run` (plan: a default Cilium agent's maps on every kernel profile)
# and `make test` (the whole suite).
# Both create a project-local virtual environment, install the project into it
# (editable: .venv/bin/pybpfmem, `import pybpfmem` from anywhere in the venv) and
# build the C core in place.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deps-stamp
INSTALLED := $(VENV)/.install-stamp
BUILD ?= build/dev
JOBS ?= 2

.PHONY: run test ext lint bench fuzz fixtures test-asan test-tsan test-stress clean kernel-vm

$(STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

# An editable install of the Python package and its `pybpfmem` command; the C core is
# not built by pip (wheel.cmake=false) but by `make ext` below, in place, so a change
# in csrc/ is rebuilt by the next make run/test.  (`pip install .` builds a real wheel
# with the core.)  Redone when pyproject.toml changes (the version, the entry point).
$(INSTALLED): $(STAMP) pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
	  -C wheel.cmake=false -C editable.mode=inplace -e .
	touch $@

ext: $(INSTALLED)
	@mkdir -p build
	flock build/.lock $(VENV)/bin/cmake -S . -B $(BUILD) -G Ninja -DBM_INPLACE=ON \
	  -DPython_EXECUTABLE=$(abspath $(PY)) >/dev/null
	flock build/.lock $(VENV)/bin/cmake --build $(BUILD) -j $(JOBS)

run: ext
	$(VENV)/bin/pybpfmem plan --compare-profiles

test: ext
	$(PY) -m pytest -q

# CI's static checks: pyflakes' rules (ruff) on the code, tests and tools, and mypy
# --strict on the public API and on a user's script of it ([tool.mypy] in pyproject.toml)
lint: ext
	$(VENV)/bin/ruff check --quiet pybpfmem tests tools benchmarks fuzz
	$(VENV)/bin/mypy

bench: ext
	$(PY) -m pybpfmem bench --full --output build/bench.json --plot build/bench.png
	$(PY) -m pytest -q benchmarks --benchmark-only

# The whole suite against a core built with ASan + UBSan (runtime preloaded into Python).
# The live-kernel tests are left out: they drive no C-core code, and the preloaded
# runtime inflates the forked children's own memory, which those tests measure.
# The package is a copy with the ASan core, imported first: `python -S` skips the
# venv's .pth files, whose editable-install finder would import the source tree's
# pybpfmem instead; the venv's packages come by PYTHONPATH.
ASAN_SITE := build/asan/site
test-asan: $(STAMP)
	@mkdir -p build
	flock build/.lock $(VENV)/bin/cmake -S . -B build/asan -G Ninja -DBM_SANITIZE=ON \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE=$(abspath $(PY)) >/dev/null
	flock build/.lock $(VENV)/bin/cmake --build build/asan -j $(JOBS)
	rm -rf $(ASAN_SITE) && mkdir -p $(ASAN_SITE)
	cp -r pybpfmem $(ASAN_SITE)/ && rm -rf $(ASAN_SITE)/pybpfmem/_core*.so $(ASAN_SITE)/pybpfmem/__pycache__
	cp build/asan/_core*.so $(ASAN_SITE)/pybpfmem/
	cd $(ASAN_SITE) && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  PYTHONPATH="$$($(abspath $(PY)) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
	  PYBPFMEM_SANITIZED=1 $(abspath $(PY)) -S -m pytest -q -p no:cacheprovider $(abspath tests) -m "not live" --ignore-glob='$(abspath tests)/test_live_*.py'

# The threaded stress tests at full size: Python threads on their own cpus
# (PYBPFMEM_STRESS_OPS operations per run) and the host memory of 100,000
# create/remove cycles of each kind.
STRESS_OPS ?= 100000
test-stress: ext
	PYBPFMEM_STRESS_OPS=$(STRESS_OPS) PYBPFMEM_CHURN_CYCLES=100000 \
	  $(PY) -m pytest -q -s tests/test_stress_threads.py tests/test_flat_memory.py

# ThreadSanitizer: the C multi-thread stress test, then the Python threaded tests
# driving a TSan-instrumented core (CPython itself is not instrumented: its own
# memory is invisible to TSan, its GIL a lock TSan sees through the preloaded
# runtime's pthread interceptors; the core's races are reported).
TSAN_SITE := build/tsan/site
test-tsan: $(STAMP)
	@mkdir -p build
	flock build/.lock $(VENV)/bin/cmake -S . -B build/tsan -G Ninja -DBM_TSAN=ON \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPython_EXECUTABLE=$(abspath $(PY)) >/dev/null
	flock build/.lock $(VENV)/bin/cmake --build build/tsan -j $(JOBS) --target stress_threads _core
	TSAN_OPTIONS=halt_on_error=1 build/tsan/stress_threads
	rm -rf $(TSAN_SITE) && mkdir -p $(TSAN_SITE)
	cp -r pybpfmem $(TSAN_SITE)/ && rm -rf $(TSAN_SITE)/pybpfmem/_core*.so $(TSAN_SITE)/pybpfmem/__pycache__
	cp build/tsan/_core*.so $(TSAN_SITE)/pybpfmem/
	cd $(TSAN_SITE) && LD_PRELOAD="$$(gcc -print-file-name=libtsan.so)" TSAN_OPTIONS=halt_on_error=1 \
	  PYTHONPATH="$$($(abspath $(PY)) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
	  PYBPFMEM_STRESS_OPS=$(STRESS_OPS) $(abspath $(PY)) -S -m pytest -q -p no:cacheprovider \
	  $(abspath tests/test_threads.py) $(abspath tests/test_stress_threads.py)

# Coverage-guided drivers (atheris when installed, else a random-bytes loop), FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: ext
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) fuzz/fuzz_core.py
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(PY) fuzz/fuzz_bpf.py

# The BPF objects the tests read, built from tests/fixtures/bpf/*.bpf.c. Needs clang and
# libbpf-dev (apt-get install clang libbpf-dev); the .o files are committed, so the test
# suite needs neither. The source path is mapped to "." so the objects do not depend on
# where the tree is checked out.
BPF_CLANG ?= clang
BPF_FIXTURES := $(patsubst %.c,%.o,$(wildcard tests/fixtures/bpf/*.bpf.c))
fixtures: $(BPF_FIXTURES)

tests/fixtures/bpf/%.bpf.o: tests/fixtures/bpf/%.bpf.c
	$(BPF_CLANG) -target bpf -g -O2 -fdebug-prefix-map=$(CURDIR)=. \
	  -I/usr/include/$$(gcc -print-multiarch) -c $< -o $@

# Boot a real Debian kernel package in QEMU and run `verify --quick --json` in it, once
# per cgroup mode (tools/kernel-vm/, docs/kernel-vm.md).  KVER: a version ("5.10",
# "6.1", "6.18.15") or a linux-image .deb.  JSON and logs: build/kernel-vm/results/.
# VERIFY: verify's arguments (the profile is the registry's for the guest's kernel
# unless VERIFY names one with --profile).
KVER ?= 6.18.15
CGROUPS ?= v1 v2
KVM_TIMEOUT ?= 1800
VERIFY ?= --quick --json
kernel-vm:
	@rc=0; for m in $(CGROUPS); do \
	  python3 tools/kernel-vm/vm.py --kernel $(KVER) --cgroup $$m --timeout $(KVM_TIMEOUT) \
	    --save build/kernel-vm/results/$(notdir $(KVER))-$$m -- env PYTHONPATH=. \
	    /opt/venv/bin/python -m pybpfmem verify $(VERIFY) \
	  || { r=$$?; [ $$r -ge 128 ] && exit $$r; rc=1; }; \
	done; python3 tools/kernel-vm/summary.py build/kernel-vm/results; exit $$rc

clean:
	rm -rf build pybpfmem/_core*.so

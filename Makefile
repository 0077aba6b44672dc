# Everything runs from a virtualenv this Makefile creates (.venv), so a fresh machine needs
# only python3 (with venv) and a C compiler.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aiosys-installed

.PHONY: venv native test lint demo bench clean sanitize

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

# Rebuild the cffi module in place after editing aiosys/native/csrc/.
native: $(STAMP)
	$(PY) aiosys/native/_build_native.py

lint: native
	$(PY) -m ruff check aiosys
	$(PY) -m mypy

# The whole suite, then a bounded sanitizer pass: the native, scheduler and I/O tests again
# against an ASan+UBSan build of the C code (about a minute; `make sanitize` runs more).
test: lint
	$(PY) -m pytest -q
	SANITIZE_DIRS="tests/native tests/sched tests/io" tests/reliability/sanitize.sh $(PY)

demo: native
	$(PY) -m aiosys demo

bench: native
	$(PY) -m aiosys bench

# ASan+UBSan build of the cffi module in build/sanitize/ (never the in-place one); runs the
# native, scheduler, I/O and reliability tests against it.
sanitize: $(STAMP)
	tests/reliability/sanitize.sh $(PY)

clean:
	rm -rf $(VENV) build *.egg-info aiosys/native/_native*.so aiosys/native/_native.[co]

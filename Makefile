# Two commands: `make run` runs the whole stack, `make test` runs every test.
# Each installs what it needs first and does nothing more when nothing changed.
PY        ?= python3
VENV      := .venv
VPY       := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
SYSSTAMP  := var/.system-ok

.PHONY: run test lint unit bench setup system system-test clean-var help

help:
	@echo "make run    - start the whole stack (gateway :8080, see README)"
	@echo "make test   - lint and run every test"
	@echo "make bench  - benchmarks (bench/README)"

setup: system $(STAMP)

system:
	@bash scripts/ensure-system.sh

# The browser tests (tests/ui) drive Debian's Chromium; `make run` does not need it.
system-test:
	@bash scripts/ensure-system.sh chromium

$(STAMP): requirements.lock pyproject.toml
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	@$(VPY) -m pip install -q --disable-pip-version-check -r requirements.lock
	@# The repo itself goes on the path by a .pth file: nothing to build.
	@$(VPY) -c 'import site,os; open(os.path.join(site.getsitepackages()[0],"portcullis-src.pth"),"w").write(os.getcwd()+"\n")'
	@touch $(STAMP)

run: setup
	@$(VPY) -m gateway.launcher run

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	luacheck -q lua tests/lua
	busted --lua=luajit -m 'lua/?.lua' tests/lua

test: system-test lint
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

bench: setup
	@$(VPY) -m bench $(BENCH_ARGS)

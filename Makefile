# robot_stack developer entry points. `make demo` and `make test` work on a fresh Debian machine with
# Python 3.11: they create .venv and install everything first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip, quiet, minus the harmless 'Location ... is ignored' lines some pip configs print.
PIP = scripts/pip_quiet.sh $(BIN)/pip
# Offscreen MuJoCo on CPU: EGL (Mesa) by default; `make demo MUJOCO_GL=osmesa` if EGL is missing.
export MUJOCO_GL ?= egl
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test bench bench-learning bench-practice lint lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install_system_deps.sh
	@bash scripts/install_system_deps.sh
	@test -d $(VENV) || $(PY) -m venv $(VENV)
	@echo "[setup] installing torch==2.13.0 (CPU) first so nothing pulls the CUDA build"
	@$(PIP) --upgrade pip
	@$(PIP) torch==2.13.0
	@echo "[setup] installing robot_stack with the learn, sim, ros, formats, dev and bench extras (versions from constraints.txt)"
	@$(PIP) -c constraints.txt -e '.[all]'
	@# gym-hil ships MuJoCo Menagerie's Franka Panda MJCF + meshes (used by the sim Panda). Its own pins
	@# (mujoco<3.9, gymnasium, pygame, ...) would downgrade MuJoCo 4, so only the assets are installed.
	@$(PIP) --no-deps gym-hil==0.1.14
	@$(BIN)/python -c "import torch, rclpy, mujoco, zarr; assert torch.__version__.startswith('2.13.0'), torch.__version__" \
	  || { echo "[setup] FAILED: the environment does not import; delete .venv and run 'make setup' again"; exit 1; }
	@touch $(STAMP)
	@echo "[setup] done: $(VENV)"

demo: setup
	$(BIN)/robot-stack demo $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(ARGS)

# Slow measurements; each script writes a readable table under benchmarks/results/.
bench: setup
	$(BIN)/python benchmarks/bench_sim.py
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_learner.py
	$(BIN)/python benchmarks/bench_safety.py
	$(MAKE) bench-learning
	$(MAKE) bench-practice

# Reset-free practice, state mode, RLPD under RoboFuME's sim protocol, 3 seeds (~40 min on 2 cores):
# benchmarks/results/practice_rlpd_state_s0-1-2.{md,json} (practice.md is the hand-written account of these runs).
bench-practice: setup
	$(BIN)/python benchmarks/bench_practice.py --learner rlpd_state --attempts 240 --scheduled-reset-steps 1000 \
	  --seeds 0 1 2

# Learning evidence, tiers 0-1 x 3 seeds (~70 min on 2 cores): benchmarks/results/learning.{md,json,png}.
bench-learning: setup
	$(BIN)/python benchmarks/bench_learning.py --seeds 0 1 2 --jobs 2

lint: setup
	$(BIN)/ruff check robot_stack robot_stack_testing tests benchmarks

# Re-pin constraints.txt to what .venv holds now (after a deliberate upgrade there and a green `make test`).
# Every other dependency version is pinned so a fresh clone gets the environment CI passed on: an unpinned
# MuJoCo 4.0.0 -> 4.0.1 once changed contact dynamics under the safety tests.
lock:
	@{ echo "# Exact versions of a .venv on which \`make test\` passed; \`make lock\` rewrites it. torch and gym-hil are"; \
	   echo "# pinned in the Makefile itself (CPU wheel; assets installed without their own pins)."; \
	   $(BIN)/pip freeze --exclude-editable 2>/dev/null | grep -v -i -e '^torch==' -e '^gym-hil==' -e ' @ '; } > constraints.txt
	@echo "[lock] wrote constraints.txt ($$(grep -vc '^#' constraints.txt) pins)"

clean:
	rm -rf $(VENV) build *.egg-info

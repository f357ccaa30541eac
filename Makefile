# Foresight — `make run` serves, `make check` runs every test.
SHELL   := /bin/bash
GO      ?= go
BIN     ?= bin/foresight
PKGS    ?= ./...
PYTHON  ?= python3
# Debian packages some tests need: replay (ffmpeg), the browser test (chromium)
# and the caption store's Postgres tests (postgresql, via adapters/store/postgres/pgtest).
TEST_DEBS ?= ffmpeg chromium postgresql

.PHONY: run build check fmt-check vet staticcheck tidy-check test test-python test-models test-deps bench fuzz deploy-modal clean

run:
	$(GO) run ./cmd/foresight serve

build:
	$(GO) build -o $(BIN) ./cmd/foresight

check: fmt-check vet staticcheck tidy-check test-deps test-python realmodel test

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# staticcheck, pinned in the tools module internal/tools/go.mod (its own
# go.mod and go.sum, so the server's stay clean): `go tool` builds it once
# into the build cache and nothing is installed by hand. To move the pin:
# cd internal/tools && go get -tool honnef.co/go/tools/cmd/staticcheck@VERSION
STATICCHECK ?= $(GO) tool -modfile=internal/tools/go.mod staticcheck
staticcheck:
	$(STATICCHECK) $(PKGS)

# Fails when `go mod tidy` would change go.mod or go.sum (prints the diff),
# for the server's module and the tools module.
tidy-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@cd internal/tools && $(GO) mod tidy -diff || { echo "internal/tools: go.mod/go.sum are not tidy: run go mod tidy there"; exit 1; }

# Installs the Debian packages the tests need when they are missing and we
# may (root with apt-get, as on CI). Otherwise those tests skip and say why;
# gcc is the exception: `go test -race` needs cgo, so without it `test` fails.
test-deps:
	@missing=""; \
	for pkg in $(TEST_DEBS); do \
	  case $$pkg in \
	    postgresql) ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
	      || missing="$$missing $$pkg";; \
	    *) command -v $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg";; \
	  esac; \
	done; \
	if command -v $(PYTHON) >/dev/null 2>&1; then :; else missing="$$missing python3"; fi; \
	if command -v gcc >/dev/null 2>&1; then :; else missing="$$missing gcc libc6-dev"; fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	    || echo "warning: apt-get install$$missing failed; the tests that need them will skip"; \
	else \
	  echo "note: missing$$missing (not root or no apt-get); the tests that need them will skip"; \
	fi

# The last line counts test packages, in the plain form CI reads.
test:
	@set -o pipefail; rm -f coverage.out; mkdir -p bin; rm -f $(CURDIR)/bin/realmodel-tests.log; \
	FORESIGHT_E2E_REPORT=$(CURDIR)/bin/realmodel-tests.log \
	$(GO) test -race -count=1 -timeout 8m -coverprofile=coverage.out $(PKGS) 2>&1 | tee test-output.log; rc=$$?; \
	$(GO) tool cover -func=coverage.out 2>/dev/null | tail -n 1; \
	echo "real model server tests (internal/ollamae2e):"; \
	if [ -s bin/realmodel-tests.log ]; then sed 's/^/  /' bin/realmodel-tests.log; else echo "  none ran ($${FORESIGHT_OLLAMA_UNAVAILABLE:-not in PKGS})"; fi; \
	passed=$$(grep -c '^ok ' test-output.log); failed=$$(grep -Ec '^FAIL[[:space:]]+[^[:space:]]' test-output.log); \
	echo "go test packages: $$passed passed, $$failed failed"; \
	litter=$$(find . -path ./.git -prune -o -path ./data -prune -o -name 'foresight.db*' -print); \
	if [ -n "$$litter" ]; then echo "tests left databases behind (give them FORESIGHT_DATABASE_URL=none or a temp dir):"; echo "$$litter"; exit 1; fi; \
	exit $$rc

# The remote Modal apps' pure logic, standard library only. The model smoke
# tests (test_model_smoke.py) are discovered too and skip, saying why, where
# torch/transformers are missing.
test-python:
	@if command -v $(PYTHON) >/dev/null 2>&1; then \
	  $(PYTHON) -m unittest discover -s adapters/inference/modal/remote -p 'test_*.py'; \
	else echo "python3 missing: skipping the Modal app logic tests"; fi

# The apps' model code on tiny random-weight models (needs torch, transformers,
# tokenizers, Pillow, numpy, torchvision; CPU, or CUDA in bf16 when available).
test-models:
	@cd adapters/inference/modal/remote && $(PYTHON) -m unittest -v test_model_smoke

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Runs every Go fuzz target in the repo for FUZZTIME each (the seed corpora
# already run in `make test`). Packages are found by grepping for `func Fuzz`
# so only those test binaries are built; `go test -list` names the targets.
FUZZTIME ?= 30s
fuzz:
	@set -e; \
	for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for name in $$($(GO) test -list '^Fuzz' $$dir | grep '^Fuzz'); do \
	    echo "== $$dir $$name ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$dir; \
	  done; \
	done

# Deploys the Modal app (needs the `modal` CLI >= 1.2 and a Modal token).
deploy-modal:
	bash adapters/inference/modal/remote/deploy.sh

clean:
	rm -rf bin coverage.out test-output.log

# The binaries scripts/bench-model-on-off.sh runs (docs/benchmarks.md).
.PHONY: bench-tools
bench-tools:
	$(GO) build -o bin/foresight ./cmd/foresight
	$(GO) build -o bin/modaldouble ./cmd/modaldouble

# The real model server of the end-to-end tests (internal/realmodel, a module
# of its own): Ollama built from source and a random-weight Gemma 3 vision
# model, cached under ${FORESIGHT_CACHE:-~/.cache/foresight}/realmodel, so
# a warm run does no work. `realmodel` writes their paths to REALMODEL_ENV,
# and every recipe (so `test`) gets them exported; where they cannot be
# built it says why there, and the tests that need them skip (fail under
# CI=true), so `make check` goes on. internal/ollamatest starts the server.
REALMODEL_ENV ?= bin/realmodel.env
realmodel_var = $(shell sed -n "s/^$(1)='\(.*\)'$$/\1/p" $(REALMODEL_ENV) 2>/dev/null)
export FORESIGHT_OLLAMA_BIN ?= $(call realmodel_var,FORESIGHT_OLLAMA_BIN)
export FORESIGHT_OLLAMA_MODEL ?= $(call realmodel_var,FORESIGHT_OLLAMA_MODEL)
export FORESIGHT_OLLAMA_UNAVAILABLE ?= $(call realmodel_var,FORESIGHT_OLLAMA_UNAVAILABLE)

.PHONY: realmodel demo
realmodel:
	@bash internal/realmodel/build.sh --env $(REALMODEL_ENV) >/dev/null \
	  || echo "realmodel: not built; the tests that need the model server skip (fail under CI=true)"

# Frames in, captions out, on a laptop with no account: the model server
# above on 127.0.0.1:11435, Foresight against it on 127.0.0.1:8080, a test
# pattern replayed through it; Ctrl-C stops both. The built-in model has
# random weights: its captions are noise (docs/providers.md: a real model).
demo:
	@bash internal/realmodel/demo.sh

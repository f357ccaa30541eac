# Foresight — `make run` serves, `make check` runs every test.
GO        ?= go
BIN       ?= bin/foresight
PKGS      ?= ./...
GOFLAGS   ?=
export GOFLAGS

.PHONY: run build check vet fmt-check test test-python bench deps-test cover clean

run:
	$(GO) run ./cmd/foresight serve

build:
	$(GO) build -o $(BIN) ./cmd/foresight

check: fmt-check vet test

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

test:
	$(GO) test -race -count=1 -timeout 8m -coverprofile=coverage.out $(PKGS)
	@$(GO) tool cover -func=coverage.out | tail -n 1

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf bin coverage.out

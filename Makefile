# idrecon — `make run` starts the daemon on examples/entra, `make test` runs every test.
GO       ?= go
BIN      := bin/idrecon
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/idrecon/idrecon/cmd/idrecon/internal/cli.Version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: build run test test-short bench fuzz load clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/idrecon
	$(GO) build -o bin/idrecon-load ./cmd/idrecon-load

# The daemon on the example spec: SCIM and SAML on :8080, admin API on 127.0.0.1:9090,
# plain HTTP, state in ./data. The admin token is generated on first start (see the log).
run: build
	$(BIN) serve --spec examples/entra --data-dir data --insecure-http

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -timeout 60m ./...

fuzz:
	@$(GO) list -f '{{.ImportPath}}' ./... | while read pkg; do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# An Entra initial cycle against an in-process server (see cmd/idrecon-load -h for sizes).
load:
	$(GO) run ./cmd/idrecon-load -inprocess

clean:
	rm -rf bin

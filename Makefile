# idrecon — `make run` starts the daemon on examples/entra, `make test` runs every test.
GO       ?= go
BIN      := bin/idrecon
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/idrecon/idrecon/cmd/idrecon/internal/cli.Version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: build release run test test-clock-ahead test-short bench fuzz load clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/idrecon
	$(GO) build -o bin/idrecon-load ./cmd/idrecon-load

# Static binaries for every platform in RELEASE_PLATFORMS, named
# idrecon-VERSION-OS-ARCH, and their SHA-256 sums, in dist/. No cgo, so each
# runs without a C library; -trimpath keeps this machine's paths out.
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
release:
	rm -rf dist && mkdir -p dist
	@set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out=dist/idrecon-$(VERSION)-$$os-$$arch; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $$out ./cmd/idrecon; \
	done
	cd dist && if command -v sha256sum >/dev/null; then sha256sum idrecon-*; else shasum -a 256 idrecon-*; fi > SHA256SUMS
	@cat dist/SHA256SUMS

# The daemon on the example spec: SCIM and SAML on :8080, admin API on 127.0.0.1:9090,
# plain HTTP, state in ./data. The admin token is generated on first start (see the log).
run: build
	$(BIN) serve --spec examples/entra --data-dir data --insecure-http

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-clock-ahead

# The suite again in a process whose clock (time.Now for the tests, the daemon
# and crypto/x509 alike) runs CLOCK_AHEAD_HOURS ahead: a certificate, fixture
# or golden file that expires with the calendar fails here years before it
# would on a plain run. The overlay renames the standard library's time.Now
# and adds one that shifts the wall clock; the monotonic clock is untouched,
# so timers and time.Since behave.
CLOCK_AHEAD_HOURS ?= 87600
CLOCK_AHEAD_PKGS  ?= ./...
test-clock-ahead:
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	src=$$($(GO) env GOROOT)/src/time; \
	sed 's/^func Now() Time {$$/func wallNow() Time {/' "$$src/time.go" > "$$dir/time.go"; \
	grep -q '^func wallNow() Time {$$' "$$dir/time.go" || { echo "time.Now not found in $$src/time.go" >&2; exit 1; }; \
	printf 'package time\n\nfunc Now() Time {\n\tt := wallNow()\n\tt.addSec(%d * 3600)\n\treturn t\n}\n' $(CLOCK_AHEAD_HOURS) > "$$dir/now_ahead.go"; \
	printf '{"Replace":{"%s":"%s","%s":"%s"}}' "$$src/time.go" "$$dir/time.go" "$$src/zz_now_ahead.go" "$$dir/now_ahead.go" > "$$dir/overlay.json"; \
	echo "tests with the clock $(CLOCK_AHEAD_HOURS)h ahead"; \
	IDRECON_TEST_CLOCK_AHEAD=$(CLOCK_AHEAD_HOURS)h IDRECON_TEST_REAL_NOW=$$(date +%s) \
		$(GO) test -overlay "$$dir/overlay.json" -count=1 -timeout 20m $(CLOCK_AHEAD_PKGS)

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
	rm -rf bin dist

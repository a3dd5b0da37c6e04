# Control Plane: small and boring. The same targets run locally and in .ci/run.
GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS   := -s -w -X github.com/control-plane/cp/internal/cli.Version=$(VERSION)
# Static binaries: no dynamic loader at start-up (it costs a millisecond per process).
export CGO_ENABLED = 0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build test bench lint demo fuzz clean overlay

# The LLM SDKs (openai-go, anthropic-sdk-go) and yaml/v4 are compiled with
# the patched files in third_party/overlay (third_party/README.md): their
# package inits record registrations instead of building registries, ~2.5 ms
# off every cp-route, cp-llm and cp-mcp process. The overlay target writes
# build/overlay.json (internal/sdkoverlay) before build, test, bench, lint
# and fuzz, and every go command they run gets it through GOFLAGS; it fails,
# and the target with it, when a patch no longer matches go.mod's version
# or the module cache's file. CP_SDK_OVERLAY=off builds the unpatched SDKs
# (the same behaviour, slower to start). A plain go build does too.
CP_SDK_OVERLAY ?= on
export CP_SDK_OVERLAY
GOFLAGS_BASE := $(filter-out -overlay=%,$(shell $(GO) env GOFLAGS))
ifneq ($(CP_SDK_OVERLAY),off)
export GOFLAGS := $(GOFLAGS_BASE) -overlay=$(CURDIR)/build/overlay.json
endif
overlay:
ifneq ($(CP_SDK_OVERLAY),off)
	@GOFLAGS='$(GOFLAGS_BASE)' $(GO) run ./internal/sdkoverlay/cmd/sdkoverlay >/dev/null
endif

# TAGS=nopostgres builds binaries without the PostgreSQL ledger store, for
# planes whose ledgers are all files: each process starts ~0.4 ms sooner
# (README, Benchmarks); a tier in PostgreSQL is then refused.
# TAGS=noanthropic builds cp-llm, cp-route and cp-mcp without the Anthropic
# SDK: each of their processes starts 1-2 ms sooner (README, "The LLM
# gateway"); a provider of type anthropic is then refused. Both: TAGS='nopostgres noanthropic'.
TAGS ?=
build: overlay
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The packages whose code starts goroutines (found by grep, so a new one is
# not forgotten) run under the race detector (it needs cgo: gcc), the
# others as they are: every package runs once. Programs under testdata/
# are not packages of ./... (their tests build them, sdkdecode only with
# the overlay), so the grep skips them.
# A test binary's time limit: pgstore's tests and sdkoverlay's (it compiles
# the SDKs without the overlay) took 7-10 minutes on a loaded machine
# (load average 40), past go test's default of 10.
TESTTIMEOUT ?= 30m
GOROUTINES := '(^|[^[:alnum:]_])go (func|[[:alpha:]_][[:alnum:]_.]*)\(|\.Go\('
test: overlay
	$(GO) vet ./...
	@if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		if [ "$$CI" = true ]; then echo "make test: PostgreSQL (initdb) not found, and CI requires it (.ci/run installs it)" >&2; exit 1; fi; \
		echo "make test: PostgreSQL (initdb) not found: the PostgreSQL ledger store's tests are SKIPPED (install postgresql to run them)"; \
	fi
	@if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then \
		if [ "$$CI" = true ]; then echo "make test: PgBouncer not found, and CI requires it (.ci/run installs it)" >&2; exit 1; fi; \
		echo "make test: PgBouncer not found: the tests of a PostgreSQL ledger through a pooler are SKIPPED (install pgbouncer to run them)"; \
	fi
	@race=$$(grep -rlE --include='*.go' --exclude='*_test.go' --exclude-dir=testdata $(GOROUTINES) cmd internal pkg | xargs -n1 dirname | sort -u | sed 's|^|./|'); \
	rest=$$($(GO) list -f '{{.Dir}}' ./... | sed 's|^$(CURDIR)|.|' | grep -vxF "$$race"); \
	echo "go test -race:" $$race; \
	$(GO) test -count=1 -timeout $(TESTTIMEOUT) $$rest && CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TESTTIMEOUT) $$race
	$(GO) test -count=1 -timeout $(TESTTIMEOUT) -tags nopostgres -run NoPostgres ./internal/plane/

# Whole-process and library benchmarks quoted in the README (~7 minutes).
bench: build
	$(GO) test -run '^$$' -bench 'StreamAppendProcess' -benchtime 5x ./internal/bench/
	$(GO) test -run '^$$' -bench 'SingleAppendProcess|BareProcess|SingleAppendOverBare' -benchtime 500x ./internal/bench/
	$(GO) test -run '^$$' -bench 'StartOverBare' -benchtime 300x ./internal/bench/
	$(GO) test -run '^$$' -bench 'Verify1M|Prove1M|Consistency1M|AppendBatch' -benchtime 5x -timeout 30m ./pkg/ledger/
	$(GO) test -run '^$$' -bench 'Prove1M|Consistency1M' -benchtime 2000x -timeout 30m ./pkg/ledger/
	$(GO) test -run '^$$' -bench '5000' -benchtime 5x ./internal/bench/
	$(GO) test -run '^$$' -bench '2500' -benchtime 5x ./internal/bench/
	$(GO) test -run '^$$' -bench 'Gate' -benchtime 10x ./internal/bench/
	$(GO) test -run '^$$' -bench 'SingleAppendTokenOverOff' -benchtime 300x ./internal/bench/
	$(GO) test -run '^$$' -bench 'Authorize|BenchmarkVerify$$' -benchtime 5000x ./internal/auth/
	$(GO) test -run '^$$' -bench 'FindByEventType' -benchtime 20x ./pkg/ledger/
	$(GO) test -run '^$$' -bench 'WOTurnOverBare' -benchtime 100x ./internal/bench/
	$(GO) test -run '^$$' -bench 'BenchmarkG2$$' -benchtime 20x ./internal/gate/
	PGTEST_DURABLE=1 $(GO) test -run '^$$' -bench 'WriterProcesses' -benchtime 5x ./pkg/ledger/pgstore/
	$(GO) test -run '^$$' -bench 'WOStepAnchorOverPlain' -benchtime 50x -count 5 ./internal/bench/
	$(GO) test -run '^$$' -bench 'Verify100k' -benchtime 3x ./pkg/ledger/pgstore/
	$(GO) test -run '^$$' -bench 'Prove1MPostgresOverFile' -benchtime 200x -timeout 60m ./internal/bench/
	$(GO) test -run '^$$' -bench 'Trace' -benchtime 10x -timeout 40m ./internal/bench/
	$(GO) test -run '^$$' -bench 'BenchmarkStdio' -benchtime 300x -count 5 ./internal/mcpcmd/
	$(GO) test -run '^$$' -bench 'StreamRouteProcess$$' -benchtime 1x -count 5 ./internal/bench/
	$(GO) test -run '^$$' -bench 'SingleRouteOverBare' -benchtime 200x -count 5 ./internal/bench/
	$(GO) test -run '^$$' -bench 'GatewayProcessOverSDK' -benchtime 30x -count 5 -timeout 30m ./internal/llmcmd/
	$(GO) test -run '^$$' -bench 'GatewayStreamOverSDK' -benchtime 2x -count 5 -timeout 30m ./internal/llmcmd/

# staticcheck reads source files itself (go/packages), not through the build
# overlay: it checks our code against the upstream SDKs (the overlay changes
# only their insides); go vet runs with the overlay.
lint: overlay
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	GOFLAGS='$(GOFLAGS_BASE)' $(GO) run $(STATICCHECK) ./...

# Short fuzz runs of every parser (longer campaigns: raise FUZZTIME).
FUZZTIME ?= 20s
fuzz: overlay
	$(GO) test -run '^$$' -fuzz FuzzCanonicalize -fuzztime $(FUZZTIME) ./pkg/jcs/
	$(GO) test -run '^$$' -fuzz FuzzCheck -fuzztime $(FUZZTIME) ./pkg/jcs/
	$(GO) test -run '^$$' -fuzz FuzzParseLine -fuzztime $(FUZZTIME) ./pkg/ledger/
	$(GO) test -run '^$$' -fuzz FuzzParseCheckpoint -fuzztime $(FUZZTIME) ./pkg/ledger/
	$(GO) test -run '^$$' -fuzz FuzzIDSeq -fuzztime $(FUZZTIME) ./pkg/ledger/
	$(GO) test -run '^$$' -fuzz FuzzLastLines -fuzztime $(FUZZTIME) ./pkg/ledger/
	$(GO) test -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME) ./pkg/ledger/legacy/
	$(GO) test -run '^$$' -fuzz FuzzParseInput -fuzztime $(FUZZTIME) ./internal/cli/
	$(GO) test -run '^$$' -fuzz FuzzSchemaAgreement -fuzztime $(FUZZTIME) ./internal/cli/
	$(GO) test -run '^$$' -fuzz FuzzExtract -fuzztime $(FUZZTIME) ./pkg/archive/
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) ./internal/registry/
	$(GO) test -run '^$$' -fuzz FuzzParsePlan -fuzztime $(FUZZTIME) ./internal/journal/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/snapshot/
	$(GO) test -run '^$$' -fuzz FuzzParseReceipt -fuzztime $(FUZZTIME) ./internal/plane/
	$(GO) test -run '^$$' -fuzz FuzzFloat -fuzztime $(FUZZTIME) ./pkg/jcs/
	$(GO) test -run '^$$' -fuzz FuzzDumps -fuzztime $(FUZZTIME) ./pkg/ledger/legacy/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/manifest/
	$(GO) test -run '^$$' -fuzz FuzzParseDependency -fuzztime $(FUZZTIME) ./pkg/manifest/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/spec/
	$(GO) test -run '^$$' -fuzz FuzzMatch -fuzztime $(FUZZTIME) ./internal/spec/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/framework/
	$(GO) test -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME) ./pkg/pkgsig/
	$(GO) test -run '^$$' -fuzz FuzzParseTrusted -fuzztime $(FUZZTIME) ./pkg/pkgsig/
	$(GO) test -run '^$$' -fuzz FuzzTarStream -fuzztime $(FUZZTIME) ./pkg/archive/
	$(GO) test -run '^$$' -fuzz FuzzVerify -fuzztime $(FUZZTIME) ./internal/auth/
	$(GO) test -run '^$$' -fuzz FuzzArguments -fuzztime $(FUZZTIME) ./internal/mcpcmd/
	$(GO) test -run '^$$' -fuzz FuzzBearer -fuzztime $(FUZZTIME) ./internal/mcpcmd/
	$(GO) test -run '^$$' -fuzz FuzzCompile -fuzztime $(FUZZTIME) ./internal/route/
	$(GO) test -run '^$$' -fuzz FuzzLegacyImportLine -fuzztime $(FUZZTIME) ./internal/cpv2/ledgerimport/
	$(GO) test -run '^$$' -fuzz FuzzSkipDeltas -fuzztime $(FUZZTIME) ./internal/cli/
	$(GO) test -run '^$$' -fuzz FuzzNewExporter -fuzztime $(FUZZTIME) ./internal/llm/
	$(GO) test -run '^$$' -fuzz FuzzTally -fuzztime $(FUZZTIME) ./internal/llm/
	$(GO) test -run '^$$' -fuzz FuzzWOTally -fuzztime $(FUZZTIME) ./internal/llm/
	$(GO) test -run '^$$' -fuzz FuzzCreated -fuzztime $(FUZZTIME) ./internal/llm/
	$(GO) test -run '^$$' -fuzz FuzzParseManifest -fuzztime $(FUZZTIME) ./internal/sdkoverlay/

demo: build
	@PATH="$(CURDIR)/$(BIN):$$PATH" ./scripts/demo.sh

clean:
	rm -rf $(BIN) build

# Callvault. `make run` serves on the built-in default; `make test` runs every test.
GO        ?= go
BIN       ?= bin/callvault
VERSION   ?= 0.1.0~dev.$(shell git rev-parse --short HEAD 2>/dev/null || echo 0)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.buildDate=$(DATE)
# -buildvcs=true puts the commit into the binary's build info even where
# GOFLAGS turns it off; without a .git directory Go cannot, so fall back.
BUILDVCS  := $(shell git rev-parse --git-dir >/dev/null 2>&1 && echo -buildvcs=true || echo -buildvcs=false)
TESTFLAGS ?= -race -timeout 15m
BENCH     ?= .
BENCHCOUNT ?= 5
# MP3 encoding links Debian's libmp3lame (cgo). Without its header the
# build still works, with the nolame tag: MP3 downloads then answer with a
# clear error. `.ci/run` installs libmp3lame-dev.
TAGS      ?= $(if $(wildcard /usr/include/lame/lame.h),,nolame)
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build run test bench lint package clean

all: build

build:
	@[ -z "$(TAGS)" ] || echo "note: building with tags '$(TAGS)' (install libmp3lame-dev for MP3 output)"
	$(GO) build $(BUILDVCS) -tags '$(TAGS)' -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/callvault

run: build
	$(BIN) serve

# test.log keeps the whole -v output; the console shows each package's
# result and every skipped or failed test with its reason (.ci/testsummary.awk).
test: lint build
	@status=0; CALLVAULT_BIN=$(CURDIR)/$(BIN) $(GO) test -v -tags '$(TAGS)' $(TESTFLAGS) ./... > test.log 2>&1 || status=$$?; \
	  awk -f .ci/testsummary.awk test.log; \
	  echo "skipped: $$(grep -c -- '--- SKIP' test.log) tests (reasons above); full log: test.log"; \
	  exit $$status

bench:
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench '$(BENCH)' -benchmem -count $(BENCHCOUNT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags '$(TAGS)' ./...
	@if [ -x "$(STATICCHECK)" ]; then $(STATICCHECK) -tags '$(TAGS)' ./...; \
	  else echo "staticcheck not installed: run 'go install honnef.co/go/tools/cmd/staticcheck@latest'"; exit 1; fi

package: build
	mkdir -p dist
	CALLVAULT_BIN=$(BIN) VERSION=$(VERSION) $(GO) tool nfpm package --config packaging/nfpm.yaml --packager deb --target dist/
	CALLVAULT_BIN=$(BIN) VERSION=$(VERSION) $(GO) tool nfpm package --config packaging/nfpm.yaml --packager rpm --target dist/

clean:
	rm -rf bin dist

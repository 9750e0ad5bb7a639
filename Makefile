# tokengw — `make run` serves on 127.0.0.1:8080, `make test` runs every test
# (starting a local Cassandra for the integration tests when none listens).
SHELL := /bin/bash
GO    ?= go
BIN   := bin/tokengw
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 100000x
export CGO_ENABLED ?= 0

.DEFAULT_GOAL := help

.PHONY: help build run test test-cluster unit vet fmt-check fuzz bench cassandra-start cassandra-stop docker clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/tokengw (static)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tokengw

run: build ## serve on 127.0.0.1:8080 with config.example.yaml and the embedded store under ./data
	./$(BIN) serve --config config.example.yaml

test: ## every test: vet, gofmt, go test -race (with a real Cassandra), short fuzz runs
	bash scripts/test.sh

test-cluster: ## a 3-node Cassandra, two replicas, nodes killed under a recorded workload, the history checked
	bash scripts/test-cluster.sh

unit: ## go test -race without the Cassandra integration tests
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

vet: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fuzz: ## run every fuzz target for FUZZTIME each
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

bench: ## benchmarks of the hot path, limiter, auth cache and stores
	$(GO) test -run '^$$' -bench . -benchmem ./...

cassandra-start: ## start a local single-node Cassandra on 127.0.0.1:9042
	bash scripts/cassandra.sh start

cassandra-stop: ## stop the Cassandra that cassandra-start started
	bash scripts/cassandra.sh stop

docker: ## build the container image (needs a Docker engine)
	docker build -t tokengw:$(VERSION) .

clean: ## remove build output
	rm -rf bin

# The reference experiment of docs/benchmarks.md, on this machine: the reference
# server and tokengw (reuse on/off x 1/50 consumers x bolt/cassandra), 200 workers
# x 2 minutes each (about 30 minutes). Results: loadtest/results (not tracked:
# per-run HTML/JSON) and the generated section and chart of docs/benchmarks.md. A smoke run (results in a temporary directory):
#   make loadtest LOADTEST_DURATION=5s LOADTEST_CONCURRENCY=20
LOADTEST_DURATION    ?= 2m
LOADTEST_CONCURRENCY ?= 200
LOADTEST_CONSUMERS   ?= 1,50
LOADTEST_STORES      ?= bolt,cassandra
LOADTEST_FLAGS       ?=

.PHONY: loadtest
loadtest: build ## the reference experiment (reference server, reuse on/off, 1/50 consumers, bolt/cassandra) -> docs/benchmarks.md
	$(GO) -C loadtest run . experiment --bin $(BIN) --build=false --duration $(LOADTEST_DURATION) \
		--concurrency $(LOADTEST_CONCURRENCY) --consumers $(LOADTEST_CONSUMERS) --stores $(LOADTEST_STORES) $(LOADTEST_FLAGS)

# The headline table of docs/benchmarks.md: wrk -t2 -c64 10 s against the reference,
# tokengw reuse on/off (bolt), Keycloak and ORY Hydra (scripts/keycloak.sh start and
# scripts/hydra.sh start first), ~2 minutes.
.PHONY: loadtest-headline
loadtest-headline: build ## wrk against reference, tokengw reuse on/off, Keycloak, Hydra -> docs/benchmarks.md headline
	$(GO) -C loadtest run . headline --bin $(CURDIR)/$(BIN)

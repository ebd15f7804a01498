# Sluice build, run and test targets. `make run` and `make test` are the two
# commands the README starts with.

GO        ?= go
BIN       ?= bin
PKGS      := ./...
FUZZTIME  ?= 5s
SLUICE_SOAK_DURATION ?= 2m

.PHONY: all build run test unit integration fuzz bench compat compat-quick compat-cluster soak lint verify clean

all: build

build:
	$(GO) build -o $(BIN)/sluice ./cmd/sluice
	$(GO) build -o $(BIN)/sluice-bench ./cmd/sluice-bench

## run: a single broker on its embedded defaults (127.0.0.1:9092, ./sluice-data).
run: build
	./$(BIN)/sluice

## test: everything CI runs: vet, unit and integration tests (race detector on), short fuzz runs,
## and franz-go's own kgo suite against a Sluice broker with fewer records per test.
test: vet unit fuzz compat-quick

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -p 2 -timeout 12m $(PKGS)

## fuzz: each fuzz target for FUZZTIME (crashers land in testdata/fuzz); see scripts/fuzz.sh.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzReadFrame ./protocol
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzParseRequest ./protocol
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzDecodeRecords ./protocol
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzValidate ./protocol
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzCheck ./protocol/batch
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzParseMarker ./protocol/batch
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzGroupLoadTxnRecords ./coordinator/group
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzSharePartitionAcknowledge ./coordinator/share
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzShareStateRecord ./coordinator/sharestate
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzSegmentRecovery ./storage
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzTxnIndexRecovery ./storage
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzProducerSnapshot ./storage
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh FuzzBrokerRequest ./broker

## bench: Sluice against franz-go's in-memory fake cluster, same run, ratios printed. Not in CI.
bench:
	./bench/run.sh

## compat: franz-go's pkg/kgo integration suite against a fresh Sluice (see compat/run.sh).
compat:
	./compat/run.sh

compat-quick:
	KGO_TEST_RECORDS=20000 ./compat/run.sh

## compat-cluster: the same suite against three replicating brokers with replication factor 3. Not in CI.
compat-cluster:
	COMPAT_CLUSTER=1 KGO_TEST_RECORDS=20000 ./compat/run.sh

## soak: three broker processes under steady produce and consume while brokers are killed and
## restarted at random for SLUICE_SOAK_DURATION, then a history check. Not in CI.
## Replay a run with SLUICE_SOAK_SEED=<seed from its log>.
soak:
	SLUICE_SOAK=1 SLUICE_SOAK_DURATION=$(SLUICE_SOAK_DURATION) $(GO) test -count=1 -run '^TestSoakRandomKillsHistory$$' -timeout 30m -v ./integration/

lint: vet
	$(GO) test -count=1 ./internal/lint/

verify: vet
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

clean:
	rm -rf $(BIN)

## cluster: three local brokers (127.0.0.1:19092-19094) on one etcd, as processes; see scripts/cluster.sh.
## cluster-stop: stop them (and the etcd the script started). Data stays in ./cluster-data.
.PHONY: cluster cluster-stop
cluster:
	GO=$(GO) ./scripts/cluster.sh start

cluster-stop:
	./scripts/cluster.sh stop

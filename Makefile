# kmsd: see README.md. Every target works on a fresh clone with Go installed.
GO        ?= go
BIN       := bin
PKGS      := ./...
FUZZTIME  ?= 60s
ROUNDS    ?= 5
HTTP_ADDR ?= 127.0.0.1:8080

.PHONY: all build test test-short cluster cluster-up cluster-down cluster-status dev docker-image docker-cluster docker-down bench bench-inprocess chaos lint fuzz clean

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kmsd ./cmd/kmsd
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/kmsctl ./cmd/kmsctl

# Unit, in-process cluster and e2e tests (real processes), with the race detector.
test: build
	$(GO) vet $(PKGS)
	KMSD_BIN=$(CURDIR)/$(BIN)/kmsd $(GO) test -race -count=1 -timeout 14m $(PKGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

# Three nodes on loopback (HTTP 8080-8082) in the foreground; Ctrl-C stops all.
cluster: build
	scripts/cluster.sh run

cluster-up: build
	scripts/cluster.sh up
cluster-down:
	scripts/cluster.sh down
cluster-status:
	scripts/cluster.sh status

# One node, data under ./data/dev, any SigV4 credentials accepted.
dev: build
	@mkdir -p data/dev
	$(BIN)/kmsd -dev -data-dir data/dev -http-addr $(HTTP_ADDR)

# The compose cluster: an image FROM scratch around the static binary.
docker-image: build
	docker build -t kmsd:dev .

docker-cluster: docker-image
	@mkdir -p data/docker
	@test -s data/docker/root-key || (umask 077; head -c 32 /dev/urandom | base64 > data/docker/root-key)
	@chmod 644 data/docker/root-key  # read by the container's unprivileged user; local demo only
	@scripts/cluster.sh credentials data/docker/credentials.json 644 >/dev/null  # demo principal, same caveat
	docker-compose up -d
	@echo "kmsd compose cluster: http://127.0.0.1:9080 http://127.0.0.1:9081 http://127.0.0.1:9082"
	@echo "SigV4 is verified against data/docker/credentials.json (docker-compose kill -s HUP re-reads it). Try:"
	@echo "  $$(scripts/cluster.sh credentials data/docker/credentials.json)"
	@echo "  aws --endpoint-url http://127.0.0.1:9080 kms create-key"

docker-down:
	docker-compose down -v

# Crypto micro-benchmarks; then, with BENCH_ENDPOINTS=http://host:port,...,
# the load generator (bench/README.md) against those endpoints. Optional:
# BENCH_MIX, BENCH_C, BENCH_D, BENCH_WARMUP, BENCH_FLAGS (e.g. -out r.json -svg p.svg).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./crypto/
	@if [ -n "$$BENCH_ENDPOINTS" ]; then \
		set -x; $(GO) run ./bench/cmd/load -endpoints "$$BENCH_ENDPOINTS" \
			-mix "$${BENCH_MIX:-GenerateDataKey=8,Decrypt=1,Encrypt=1}" \
			-c "$${BENCH_C:-32}" -d "$${BENCH_D:-20s}" -warmup "$${BENCH_WARMUP:-5s}" $$BENCH_FLAGS; \
	else \
		echo "BENCH_ENDPOINTS not set: skipping the load generator (see bench/README.md)"; \
	fi

# In-process benchmarks of the server paths (bench/README.md): the whole
# request path of GenerateDataKey (SigV4, audit, Raft) in CPU per op, the
# batch API, CreateKey through a real 3-node Raft cluster with fsync, and
# heap per stored key at 100,000 keys.
bench-inprocess:
	$(GO) test -run '^$$' -bench 'HotPath' -benchtime 3000x ./api/
	$(GO) test -run '^$$' -bench 'BatchGenerateDataKey|BatchEncrypt4KiB' -benchtime 20x ./api/
	$(GO) test -run '^$$' -bench 'CoreSeal/.*/4096B|CoreDerivation' ./crypto/
	$(GO) test -run '^$$' -bench CreateKeyPropose -benchtime 20000x ./cluster/
	$(GO) test -run '^$$' -bench CreateKeyMemory -benchtime 1x ./fsm/

# ROUNDS rounds of a random failpoint (kill the leader, a follower, two
# followers in turn, all nodes, a rolling restart) against a 3-node cluster
# under a recorded workload; prints a summary line (ops, lost, failover
# p50/max, linearizable) and on failure a report directory
# (KMSD_CHAOS_REPORT_DIR, default $TMPDIR).
chaos: build
	KMSD_BIN=$(CURDIR)/$(BIN)/kmsd KMSD_CHAOS_ROUNDS=$(ROUNDS) $(GO) test -count=1 -run '^TestChaos$$' -v -timeout 80m ./e2e/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)

# Fuzz each target for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	$(GO) test ./crypto -run '^$$' -fuzz '^FuzzParseBlob$$' -fuzztime $(FUZZTIME)
	$(GO) test ./crypto -run '^$$' -fuzz '^FuzzEncryptionContext$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzDecodeRequest$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzParseAuthorization$$' -fuzztime $(FUZZTIME)
	$(GO) test ./fsm -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./service -run '^$$' -fuzz '^FuzzParsePolicy$$' -fuzztime $(FUZZTIME)
	$(GO) test ./crypto -run '^$$' -fuzz '^FuzzParseSecp256k1PKCS8$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzParseCredentials$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzBatchFastDecode$$' -fuzztime $(FUZZTIME)
	$(GO) test ./api -run '^$$' -fuzz '^FuzzAuditItemJSON$$' -fuzztime $(FUZZTIME)
	$(GO) test ./audit -run '^$$' -fuzz '^FuzzFastPaths$$' -fuzztime $(FUZZTIME)
	$(GO) test ./audit -run '^$$' -fuzz '^FuzzBatchEncoder$$' -fuzztime $(FUZZTIME)
	$(GO) test ./kmsdclient -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME)

clean:
	rm -rf $(BIN)

// Command httpfloor is the reference point for kmsd's per-request CPU: a
// Go net/http server that does no KMS work at all. It answers every POST
// with a fixed GenerateDataKey-shaped response (after reading the request
// body) and serves /metrics with process_cpu_seconds_total, so the load
// generator measures its CPU per request exactly as it measures kmsd's:
//
//	go run ./bench/cmd/httpfloor -addr 127.0.0.1:18090 &
//	go run ./bench/cmd/load -endpoints http://127.0.0.1:18090 -key-id 1234abcd-12ab-34cd-56ef-1234567890ab \
//	    -mix GenerateDataKey=1 -c 32 -d 20s -warmup 5s
//
// Whatever kmsd spends above this floor, run side by side on the same
// machine and load, is kmsd's own work (SigV4, authorization, the crypto,
// audit); the floor itself is HTTP/1.1, loopback TCP and the Go scheduler.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/kmsd/kmsd/bench/load"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: newHandler(), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// fixedResponse has the size and shape of a GenerateDataKey answer.
var fixedResponse = []byte(`{"CiphertextBlob":"` + strings.Repeat("A", 168) + `","Plaintext":"` + strings.Repeat("B", 44) +
	`","KeyId":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","KeyMaterialId":"` +
	strings.Repeat("c", 64) + `"}`)

func newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		cpu, ok := load.ProcessCPU()
		if !ok {
			http.Error(w, "process CPU time unavailable", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", cpu.Seconds())
	})
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Requestid", "5a1b2c3d-0000-4000-8000-000000000000")
		_, _ = w.Write(fixedResponse)
	})
	return mux
}

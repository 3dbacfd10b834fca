package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kmsd/kmsd/bench/load"
)

func TestHTTPFloor(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/", "application/x-amz-json-1.1", strings.NewReader(`{"KeyId":"k"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(fixedResponse) {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "process_cpu_seconds_total ") {
		t.Fatalf("metrics: %d %q", resp.StatusCode, body)
	}
	if cpu, ok := load.ProcessCPU(); !ok || cpu <= 0 {
		t.Fatalf("process CPU %v %v", cpu, ok)
	}
}

// Command load drives kmsd endpoints with the AWS SDK for Go v2 (or, with
// -client raw, hand-built SigV4-signed AWS JSON 1.1 requests) and reports
// throughput, latency percentiles, errors by type and CPU per request.
// See bench/README.md.
//
//	go run ./bench/cmd/load -endpoints http://127.0.0.1:8080 \
//	    -mix GenerateDataKey=8,Decrypt=1,Encrypt=1 -c 32 -d 30s -warmup 5s \
//	    -out result.json -svg plot.svg
//
// kmsd's Batch API (ops BatchGenerateDataKey, BatchEncrypt, ...; items per
// request set by -batch-size) reports items/s next to requests/s:
//
//	go run ./bench/cmd/load -mix BatchGenerateDataKey -batch-size 1000 -c 4
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kmsd/kmsd/bench/load"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	endpoints := fs.String("endpoints", "http://127.0.0.1:8080", "comma-separated endpoint URLs; worker i uses endpoint i mod n")
	mix := fs.String("mix", "GenerateDataKey=8,Decrypt=1,Encrypt=1,CreateKey=0", "operation weights: "+strings.Join(load.Ops, ", "))
	c := fs.Int("c", 32, "concurrency (closed loop: each worker has one request in flight)")
	d := fs.Duration("d", 30*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 5*time.Second, "warm-up before the measured window (load applied, not counted)")
	keyID := fs.String("key-id", "", "key to use (default: create one)")
	region := fs.String("region", envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1")), "region to sign for")
	ak := fs.String("access-key", os.Getenv("AWS_ACCESS_KEY_ID"), "access key id (default $AWS_ACCESS_KEY_ID)")
	sk := fs.String("secret-key", os.Getenv("AWS_SECRET_ACCESS_KEY"), "secret access key (default $AWS_SECRET_ACCESS_KEY)")
	st := fs.String("session-token", os.Getenv("AWS_SESSION_TOKEN"), "session token (default $AWS_SESSION_TOKEN)")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	size := fs.Int("plaintext-size", 32, "bytes of plaintext per Encrypt (and per setup ciphertext for Decrypt)")
	batchSize := fs.Int("batch-size", 1000, "items per request of the Batch* ops (kmsd's Batch API), at most 1000")
	out := fs.String("out", "", "write the JSON result here")
	svg := fs.String("svg", "", "write an SVG plot of throughput and p99 per second here")
	quiet := fs.Bool("q", false, "no per-second progress lines")
	client := fs.String("client", load.ClientSDK, "how requests are sent: sdk (AWS SDK for Go v2) or raw (hand-built AWS JSON 1.1, SigV4-signed; far less client CPU per request)")
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}

	m, err := load.ParseMix(*mix)
	if err != nil {
		return err
	}
	var eps []string
	for _, e := range strings.Split(*endpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	cfg := load.Config{
		Endpoints: eps, Region: *region, AccessKeyID: *ak, SecretAccessKey: *sk, SessionToken: *st,
		Mix: m, Concurrency: *c, Duration: *d, Warmup: *warmup, KeyID: *keyID,
		Timeout: *timeout, PlaintextSize: *size, BatchSize: *batchSize, Client: *client,
	}
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	load.WriteReport(os.Stdout, res)
	if *out != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *svg != "" {
		f, err := os.Create(*svg)
		if err != nil {
			return err
		}
		if err := load.WriteSVG(f, res); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

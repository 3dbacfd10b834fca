package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"

	"github.com/kmsd/kmsd/audit"
)

func auditVerifyCommand() *command {
	var pubFile string
	var allowOpen bool
	return &command{
		name: "audit verify",
		args: "FILE|DIR...",
		short: "Verify kmsd audit files offline: the hash chain, sequence numbers, signed digests and\n" +
			"final digest of each file, and that consecutive files of a node link up. Names every\n" +
			"modified, deleted, inserted, reordered or truncated record found. A DIR stands for its\n" +
			"audit-*.jsonl files, oldest first. Exits 1 if any problem was found.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&pubFile, "pubkey", "", "the node's trusted public key (its audit dir's node.pub); without it digests are\nchecked against the key in each file's own header, which cannot tell a re-signed forgery")
			fs.BoolVar(&allowOpen, "allow-open", false, "the last file may still be written by a running node: a missing final digest is a warning")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) == 0 {
				return usagef("audit verify: give one or more audit files or directories")
			}
			var pub ed25519.PublicKey
			if pubFile != "" {
				var err error
				if pub, err = audit.ReadPublicKey(pubFile); err != nil {
					return fmt.Errorf("--pubkey: %w", err)
				}
			}
			var files []string
			for _, a := range args {
				fi, err := os.Stat(a)
				if err != nil {
					return err
				}
				if !fi.IsDir() {
					files = append(files, a)
					continue
				}
				fs, err := audit.Files(a)
				if err != nil {
					return err
				}
				if len(fs) == 0 {
					return fmt.Errorf("%s: no audit files (audit-*.jsonl)", a)
				}
				files = append(files, fs...)
			}
			reps, err := audit.VerifyFiles(files, audit.VerifyOptions{PublicKey: pub, AllowOpen: allowOpen})
			if err != nil {
				return err
			}
			bad, problems := 0, 0
			for _, r := range reps {
				if !r.OK() {
					bad++
					problems += len(r.Problems)
				}
			}
			if e.json() {
				if err := e.writeJSON(reps); err != nil {
					return err
				}
			} else {
				for _, r := range reps {
					status := "OK"
					if !r.OK() {
						status = fmt.Sprintf("%d PROBLEM(S)", len(r.Problems))
					}
					end := "closed"
					if !r.Final {
						end = "not closed"
					}
					fmt.Fprintf(e.stdout, "%s: %s (%d events, %d digests, %s)\n", r.File, status, r.Events, r.Digests, end)
					for _, p := range r.Problems {
						fmt.Fprintf(e.stdout, "  %s\n", sanitize(p.String()))
					}
					for _, p := range r.Warnings {
						fmt.Fprintf(e.stdout, "  warning: %s\n", sanitize(p.String()))
					}
				}
				if pub == nil {
					fmt.Fprintln(e.stdout, "note: signatures were checked against the key in each file's header; pass --pubkey node.pub to check who signed them")
				}
			}
			if bad > 0 {
				return fmt.Errorf("audit verify: %d problem(s) in %d of %d file(s)", problems, bad, len(reps))
			}
			return nil
		},
	}
}

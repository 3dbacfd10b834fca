// Command kmsctl is the command-line client for kmsd, for humans.
//
// It owns the operator's view of a kmsd cluster: `cluster status` (every
// node's Raft state and replication lag, from GET /v1/status), key
// management (`keys list|create|describe`), one-shot `encrypt` /
// `decrypt`, and `batch generate-data-key|encrypt|decrypt` through kmsd's
// Batch API. Key and crypto commands go through the AWS SDK for Go v2 KMS
// client, so kmsctl exercises exactly the wire protocol other AWS clients
// use; the batch commands, which the SDK does not know, go through
// package kmsdclient (same protocol, the SDK's SigV4 signer).
//
//	kmsctl --endpoint http://127.0.0.1:8080 keys create --description demo --alias alias/demo
//	kmsctl keys list --output json
//	kmsctl encrypt --key-id alias/demo --context team=platform --plaintext 'attack at dawn' > msg.b64
//	kmsctl decrypt --context team=platform --in msg.b64
//
// Exit status: 0 on success, 1 if a request failed (the AWS error code and
// message go to stderr), 2 on a usage error.
//
// kmsctl never prints credentials or key material; the only secret it
// writes is the plaintext the user explicitly asks `decrypt` for.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

const (
	defaultEndpoint = "http://127.0.0.1:8080"
	defaultRegion   = "us-east-1"
	defaultTimeout  = 10 * time.Second

	// devCredential is the access key id and secret used when the
	// environment has none: kmsd -dev nodes accept any well-formed SigV4.
	devCredential = "kmsd"

	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usageText = `kmsctl is the command-line client for kmsd.

Usage:
  kmsctl [global flags] <command> [flags] [args]

Commands:
  cluster status     show every node's Raft state, leader and replication lag
  keys list          list keys with their state, aliases and description
  keys create        create a key: [--description D] [--tag k=v]... [--alias alias/NAME]
  keys describe KEY  show one key; KEY is a key id, key ARN, alias name or alias ARN
  encrypt            --key-id KEY [--context k=v]... (--plaintext STR | --in FILE|-)
                     prints the ciphertext in base64
  decrypt            [--key-id KEY] [--context k=v]... (--ciphertext B64 | --in FILE|-)
                     writes the plaintext, raw, to stdout
  batch generate-data-key
                     --key-id KEY [--count N] [--key-spec AES_256|AES_128 | --number-of-bytes N]
                     [--context k=v]... [--without-plaintext]: one data key per line
  batch encrypt      --key-id KEY --in FILE|- [--base64] [--context k=v]...
                     encrypts each line; prints one base64 ciphertext per line
  batch decrypt      [--key-id KEY] --in FILE|- [--base64] [--context k=v]...
                     decrypts each base64 line; prints one plaintext per line
  audit verify FILE|DIR...
                     check kmsd audit files offline: [--pubkey node.pub] [--allow-open]
  help               show this help ("kmsctl <command> -h" shows a command's flags)

Global flags (before or after the command):
  --endpoint URL       kmsd endpoint (default $KMSD_ENDPOINT, else http://127.0.0.1:8080)
  --region REGION      region to sign for (default $AWS_REGION, else us-east-1)
  --output FORMAT      table or json (default table)
  --timeout DURATION   deadline of each request (default 10s)

Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
AWS_SESSION_TOKEN; without them kmsctl signs as "kmsd"/"kmsd", which -dev
nodes accept.

Exit status: 0 on success, 1 if a request failed, 2 on a usage error.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// globals are the flags every command accepts.
type globals struct {
	endpoint string
	region   string
	output   string
	timeout  time.Duration
}

var globalFlagNames = []string{"endpoint", "region", "output", "timeout"}

// register adds the global flags to fs, bound to g with g's current values
// as defaults, so they may also follow the command.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.endpoint, "endpoint", g.endpoint, "kmsd endpoint URL")
	fs.StringVar(&g.region, "region", g.region, "region to sign requests for")
	fs.StringVar(&g.output, "output", g.output, "output format: table or json")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "deadline of each request")
}

func (g *globals) validate() error {
	u, err := url.Parse(g.endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--endpoint %q: want an http:// or https:// URL", g.endpoint)
	}
	g.endpoint = strings.TrimRight(g.endpoint, "/")
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("--output %q: want table or json", g.output)
	}
	if g.timeout <= 0 {
		return fmt.Errorf("--timeout %v: must be positive", g.timeout)
	}
	if g.region == "" {
		return errors.New("--region must not be empty")
	}
	return nil
}

// env is one invocation: its streams, environment and global flags.
type env struct {
	globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// usageError is a command-line mistake: exit 2 with usage text.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one leaf command: its flags, positional-argument check and
// action.
type command struct {
	name  string // "keys create"
	args  string // positional arguments for the usage line
	short string
	flags func(fs *flag.FlagSet) // registers the command's own flags
	run   func(ctx context.Context, e *env, args []string) error
}

func commands() []*command {
	return []*command{
		clusterStatusCommand(),
		keysListCommand(),
		keysCreateCommand(),
		keysDescribeCommand(),
		encryptCommand(),
		decryptCommand(),
		batchGenerateDataKeyCommand(),
		batchEncryptCommand(),
		batchDecryptCommand(),
		auditVerifyCommand(),
	}
}

// run is kmsctl with its process environment passed in; it returns the
// exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	e.endpoint = firstNonEmpty(getenv("KMSD_ENDPOINT"), defaultEndpoint)
	e.region = firstNonEmpty(getenv("AWS_REGION"), defaultRegion)
	e.output = "table"
	e.timeout = defaultTimeout

	gfs := flag.NewFlagSet("kmsctl", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	gfs.Usage = func() {}
	e.globals.register(gfs)
	if err := gfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return exitOK
		}
		return usageFail(stderr, err.Error(), usageText)
	}
	rest := gfs.Args()
	if len(rest) == 0 {
		return usageFail(stderr, "no command given", usageText)
	}
	if rest[0] == "help" {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}

	var cmd *command
	var groupCmds []*command
	for _, c := range commands() {
		words := strings.Fields(c.name)
		if words[0] != rest[0] {
			continue
		}
		if len(words) == 1 {
			cmd = c
			rest = rest[1:]
			break
		}
		groupCmds = append(groupCmds, c)
		if len(rest) > 1 && rest[1] == words[1] {
			cmd = c
			rest = rest[2:]
			break
		}
	}
	if cmd == nil {
		if len(groupCmds) > 0 {
			var b strings.Builder
			fmt.Fprintf(&b, "Usage:\n")
			tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
			for _, c := range groupCmds {
				line, _, _ := strings.Cut(c.short, "\n")
				fmt.Fprintf(tw, "  kmsctl %s %s\t%s\n", c.name, firstNonEmpty(c.args, "[flags]"), line)
			}
			tw.Flush()
			if len(rest) > 1 && (rest[1] == "-h" || rest[1] == "--help" || rest[1] == "help") {
				fmt.Fprint(stdout, b.String())
				return exitOK
			}
			if len(rest) == 1 {
				return usageFail(stderr, fmt.Sprintf("%s: no subcommand given", rest[0]), b.String())
			}
			return usageFail(stderr, fmt.Sprintf("%s: unknown subcommand %q", rest[0], rest[1]), b.String())
		}
		return usageFail(stderr, fmt.Sprintf("unknown command %q", rest[0]), usageText)
	}

	fs := flag.NewFlagSet("kmsctl "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	e.globals.register(fs)
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, cmd.usage(fs))
			return exitOK
		}
		return usageFail(stderr, err.Error(), cmd.usage(fs))
	}
	if err := e.globals.validate(); err != nil {
		return usageFail(stderr, err.Error(), cmd.usage(fs))
	}
	err = cmd.run(ctx, e, pos)
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return usageFail(stderr, ue.msg, cmd.usage(fs))
	default:
		reportError(stderr, err)
		return exitFail
	}
}

// usage is the command's help: its usage line and its own flags (the
// global ones are in "kmsctl help").
func (c *command) usage(fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: kmsctl %s [flags]", c.name)
	if c.args != "" {
		fmt.Fprintf(&b, " %s", c.args)
	}
	fmt.Fprintf(&b, "\n\n%s\n", c.short)
	own := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if !slices.Contains(globalFlagNames, f.Name) {
			own.Var(f.Value, f.Name, f.Usage)
			own.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	n := 0
	own.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("\nFlags:\n")
		var defs strings.Builder
		own.SetOutput(&defs)
		own.PrintDefaults()
		// Show flags GNU-style, as the docs do; both forms are accepted.
		b.WriteString(strings.ReplaceAll("\n"+defs.String(), "\n  -", "\n  --")[1:])
	}
	b.WriteString("\nGlobal flags: --endpoint, --region, --output table|json, --timeout (see \"kmsctl help\").\n")
	return b.String()
}

func usageFail(stderr io.Writer, msg, usage string) int {
	fmt.Fprintf(stderr, "kmsctl: %s\n\n%s", msg, usage)
	return exitUsage
}

// reportError prints err to stderr: for an AWS error, the operation, the
// error code and its message.
func reportError(stderr io.Writer, err error) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		op := ""
		var oe *smithy.OperationError
		if errors.As(err, &oe) {
			op = oe.Operation() + ": "
		}
		fmt.Fprintf(stderr, "kmsctl: %s%s: %s\n", op, ae.ErrorCode(), sanitize(ae.ErrorMessage()))
		return
	}
	fmt.Fprintf(stderr, "kmsctl: %s\n", sanitize(err.Error()))
}

// parseInterspersed parses fs over args, allowing flags after positional
// arguments; it returns the positional arguments. Everything after "--" is
// positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// client is the KMS client for e's endpoint, region and credentials.
func (e *env) client() *kms.Client {
	id, secret, token := e.getenv("AWS_ACCESS_KEY_ID"), e.getenv("AWS_SECRET_ACCESS_KEY"), e.getenv("AWS_SESSION_TOKEN")
	if id == "" || secret == "" {
		id, secret, token = devCredential, devCredential, ""
	}
	endpoint := e.endpoint
	return kms.New(kms.Options{
		Region:           e.region,
		BaseEndpoint:     &endpoint,
		Credentials:      credentials.NewStaticCredentialsProvider(id, secret, token),
		RetryMaxAttempts: 3,
	})
}

// reqCtx bounds one request by --timeout.
func (e *env) reqCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.timeout)
}

func (e *env) json() bool { return e.output == "json" }

func (e *env) writeJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// kvFlag is a repeatable k=v flag.
type kvFlag struct {
	pairs [][2]string
}

func (f *kvFlag) String() string {
	if f == nil {
		return ""
	}
	s := make([]string, len(f.pairs))
	for i, p := range f.pairs {
		s[i] = p[0] + "=" + p[1]
	}
	return strings.Join(s, ",")
}

func (f *kvFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", v)
	}
	f.pairs = append(f.pairs, [2]string{k, val})
	return nil
}

// asMap returns the pairs as a map; a key given twice is a usage error.
func (f *kvFlag) asMap(flagName string) (map[string]string, error) {
	if len(f.pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(f.pairs))
	for _, p := range f.pairs {
		if _, dup := m[p[0]]; dup {
			return nil, usagef("--%s: key %q given twice", flagName, p[0])
		}
		m[p[0]] = p[1]
	}
	return m, nil
}

// sanitize makes server-supplied text safe for a terminal and a table
// cell: control characters (tabs, newlines, escapes) become spaces or U+FFFD.
func sanitize(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case unicode.IsControl(r):
			return '\uFFFD'
		}
		return r
	}, s)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

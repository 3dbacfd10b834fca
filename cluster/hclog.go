package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level raft's TRACE messages are logged at (below
// slog.LevelDebug, so a handler at Debug does not show them).
const LevelTrace = slog.LevelDebug - 4

// slogLevel maps an hclog level onto slog's levels one to one.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel, DefaultLevel
		return slog.LevelInfo
	}
}

// hclogAdapter is an hclog.Logger that writes to a slog.Handler, keeping
// key/value pairs as structured attributes, the logger name as the "logger"
// attribute and the caller's source position.
type hclogAdapter struct {
	root    slog.Handler // without this logger's name and implied args
	h       slog.Handler // root with name and implied args attached
	name    string
	implied []any
	level   *atomic.Int32 // an hclog.Level set by SetLevel; NoLevel: the handler decides
}

// newHCLogger returns an hclog.Logger named name that logs to l's handler.
func newHCLogger(l *slog.Logger, name string) hclog.Logger {
	lvl := new(atomic.Int32)
	lvl.Store(int32(hclog.NoLevel))
	return newAdapter(l.Handler(), name, nil, lvl)
}

func newAdapter(root slog.Handler, name string, implied []any, level *atomic.Int32) *hclogAdapter {
	h := root
	var attrs []slog.Attr
	if name != "" {
		attrs = append(attrs, slog.String("logger", name))
	}
	attrs = append(attrs, argsToAttrs(implied)...)
	if len(attrs) > 0 {
		h = h.WithAttrs(attrs)
	}
	return &hclogAdapter{root: root, h: h, name: name, implied: implied, level: level}
}

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	if l == hclog.Off {
		return false
	}
	if min := hclog.Level(a.level.Load()); min != hclog.NoLevel && l < min {
		return false
	}
	return a.h.Enabled(context.Background(), slogLevel(l))
}

// log must be called directly by the exported method the caller used, so
// that skipping three frames lands on the caller.
func (a *hclogAdapter) log(l hclog.Level, msg string, args []any) {
	if !a.enabled(l) {
		return
	}
	var pcs [1]uintptr
	runtime.Callers(3, pcs[:]) // runtime.Callers, log, the hclog method
	r := slog.NewRecord(time.Now(), slogLevel(l), msg, pcs[0])
	r.AddAttrs(argsToAttrs(args)...)
	_ = a.h.Handle(context.Background(), r)
}

func (a *hclogAdapter) Log(l hclog.Level, msg string, args ...any) { a.log(l, msg, args) }
func (a *hclogAdapter) Trace(msg string, args ...any)              { a.log(hclog.Trace, msg, args) }
func (a *hclogAdapter) Debug(msg string, args ...any)              { a.log(hclog.Debug, msg, args) }
func (a *hclogAdapter) Info(msg string, args ...any)               { a.log(hclog.Info, msg, args) }
func (a *hclogAdapter) Warn(msg string, args ...any)               { a.log(hclog.Warn, msg, args) }
func (a *hclogAdapter) Error(msg string, args ...any)              { a.log(hclog.Error, msg, args) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	if len(args) == 0 {
		return a
	}
	implied := append(append([]any(nil), a.implied...), args...)
	return newAdapter(a.root, a.name, implied, a.level)
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return newAdapter(a.root, name, a.implied, a.level)
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	return newAdapter(a.root, name, a.implied, a.level)
}

// SetLevel sets a minimum level on top of the slog handler's own; it is
// shared with every logger derived from this one.
func (a *hclogAdapter) SetLevel(l hclog.Level) { a.level.Store(int32(l)) }

func (a *hclogAdapter) GetLevel() hclog.Level {
	if l := hclog.Level(a.level.Load()); l != hclog.NoLevel {
		return l
	}
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.h.Enabled(context.Background(), slogLevel(l)) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := &stdWriter{a: a, force: hclog.NoLevel}
	if opts != nil {
		w.infer = opts.InferLevels
		w.force = opts.ForceLevel
	}
	return w
}

// stdWriter turns lines written by a *log.Logger ("[WARN] memberlist: ...")
// into records.
type stdWriter struct {
	a     *hclogAdapter
	infer bool
	force hclog.Level
}

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, " \t\n"))
	level := hclog.Info
	switch {
	case w.force != hclog.NoLevel:
		level = w.force
	case w.infer:
		level, msg = inferLevel(msg)
	}
	if w.a.enabled(level) {
		r := slog.NewRecord(time.Now(), slogLevel(level), msg, 0)
		_ = w.a.h.Handle(context.Background(), r)
	}
	return len(p), nil
}

func inferLevel(s string) (hclog.Level, string) {
	for _, p := range []struct {
		prefix string
		level  hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error},
	} {
		if strings.HasPrefix(s, p.prefix) {
			return p.level, strings.TrimSpace(s[len(p.prefix):])
		}
	}
	return hclog.Info, s
}

// argsToAttrs converts hclog's alternating key/value arguments.
func argsToAttrs(args []any) []slog.Attr {
	if len(args) == 0 {
		return nil
	}
	attrs := make([]slog.Attr, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			// hclog's convention for a dangling value.
			attrs = append(attrs, slog.Any("EXTRA_VALUE_AT_END", hclogValue(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		attrs = append(attrs, slog.Any(key, hclogValue(args[i+1])))
	}
	return attrs
}

// hclogValue renders hclog's formatting wrappers the way hclog would.
func hclogValue(v any) any {
	switch v := v.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return ""
		}
		if f, ok := v[0].(string); ok {
			return fmt.Sprintf(f, v[1:]...)
		}
		return fmt.Sprint(v...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(v))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(v))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(v))
	case hclog.Quote:
		return fmt.Sprintf("%q", string(v))
	case hclog.CapturedStacktrace:
		return string(v)
	case fmt.Stringer:
		// raft passes structs such as raft.Server and raft.ServerAddress;
		// errors are kept as they are (slog prints err.Error()).
		if _, isErr := v.(error); isErr {
			return v
		}
		return v.String()
	}
	return v
}

package testcluster

import (
	"log/slog"
	"testing"
)

// Logging through a test's logger after that test has finished (as raft's
// goroutines may) must not panic.
func TestLoggerAfterTestEnds(t *testing.T) {
	var late *slog.Logger
	t.Run("sub", func(t *testing.T) {
		late = NewLogger(t, slog.LevelInfo)
		late.Info("during the test")
	})
	late.Info("after the test") // t.Log here would panic
}

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestClusterCiphertextFormatRollout follows the upgrade procedure of the
// README for the ciphertext format: the cluster writes format 1
// (-ciphertext-format 1, what nodes run during a rolling upgrade from a
// kmsd that reads only format 1), then each node in turn is restarted
// writing format 2. After every restart, each node writes the format it is
// configured for, and every ciphertext made so far, in either format,
// decrypts at every node.
func TestClusterCiphertextFormatRollout(t *testing.T) {
	c, _ := startCluster(t, "-ciphertext-format", "1")
	ctx := within(t, 3*time.Minute)
	nodes := c.Nodes()
	key := createKey(t, ctx, nodes[0])
	for _, n := range nodes {
		require.NoError(t, waitVisible(ctx, n, key))
	}

	type sealed struct {
		ct     []byte
		pt     string
		format byte
	}
	var all []sealed
	encryptEverywhere := func(step string, format map[string]byte) {
		t.Helper()
		for _, n := range nodes {
			pt := fmt.Sprintf("%s at %s", step, n.ID)
			ct, op := n.Client().Encrypt(ctx, key, []byte(pt))
			mustOK(t, op)
			require.Equal(t, format[n.ID], ct[2], "%s: format of a ciphertext written by %s", step, n.ID)
			all = append(all, sealed{ct: ct, pt: pt, format: ct[2]})
		}
		for _, n := range nodes {
			for _, s := range all {
				pt, op := n.Client().Decrypt(ctx, key, s.ct)
				mustOK(t, op)
				require.Equal(t, s.pt, string(pt), "%s: format-%d ciphertext %q at %s", step, s.format, s.pt, n.ID)
			}
		}
	}

	format := map[string]byte{}
	for _, n := range nodes {
		format[n.ID] = 1
	}
	encryptEverywhere("before", format)
	for _, n := range nodes {
		// A later -ciphertext-format wins over the cluster's.
		n.SetExtraArgs("-ciphertext-format", "2")
		n.Kill()
		require.NoError(t, n.Start())
		require.NoError(t, n.WaitReady(ctx))
		require.NoError(t, waitVisible(ctx, n, key))
		format[n.ID] = 2
		encryptEverywhere("after restarting "+n.ID, format)
	}
	require.Len(t, all, len(nodes)*(len(nodes)+1))
	if u := c.Unexpected(); len(u) > 0 {
		t.Fatalf("nodes exited: %v", u)
	}
}

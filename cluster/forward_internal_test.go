package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// macReference is the node authentication MAC as first written (with
// fmt), kept as the definition: peers of different versions must agree on
// it during a rolling upgrade.
func macReference(secret []byte, method, path, caller, ts string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, secret)
	fmt.Fprintf(m, "%s\n%s\n%s\n%s\n%s\n%x", forwardAuthLabel, method, path, ts, caller, sum)
	return m.Sum(nil)
}

func TestForwardMACMatchesReference(t *testing.T) {
	secret := bytes.Repeat([]byte{9}, 32)
	f, err := NewForwarder(ForwarderConfig{Node: &Node{}, Secret: secret})
	require.NoError(t, err)
	cases := []struct {
		method, path, caller, ts string
		body                     []byte
	}{
		{"POST", ProposePath, "", "1700000000", []byte("cmd")},
		{"POST", ProposePath, "arn:aws:iam::111122223333:user/demo", "1700000001", bytes.Repeat([]byte{0xff}, 4096)},
		{"POST", ReadIndexPath, "x", "0", nil},
		{"POST", LeavePath, "", "-5", []byte("n2")},
	}
	// Concurrently, so the pooled HMAC states are exercised under -race.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				for _, c := range cases {
					want := macReference(secret, c.method, c.path, c.caller, c.ts, c.body)
					require.Equal(t, want, f.mac(c.method, c.path, c.caller, c.ts, c.body))
				}
			}
		})
	}
	wg.Wait()
}

func TestBatchEncoding(t *testing.T) {
	batch := []*queuedProposal{
		{caller: "arn:aws:iam::111122223333:user/demo", cmd: []byte("one")},
		{caller: "", cmd: bytes.Repeat([]byte{0, 1, 2}, 1000)},
		{caller: "x", cmd: []byte{}},
	}
	body := encodeBatch(batch)
	items, err := decodeBatch(body)
	require.NoError(t, err)
	require.Len(t, items, len(batch))
	for i, p := range batch {
		require.Equal(t, p.caller, items[i].caller)
		require.Equal(t, p.cmd, items[i].cmd)
	}
	_, err = decodeBatch(body[:len(body)-1])
	require.Error(t, err, "a truncated last command")
	_, err = decodeBatch(nil)
	require.Error(t, err)
	_, err = decodeBatch([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	require.Error(t, err)
	_, err = decodeBatch([]byte{5, 'a'})
	require.Error(t, err)
	many := make([]*queuedProposal, maxBatchCommands+1)
	for i := range many {
		many[i] = &queuedProposal{cmd: []byte{byte(i)}}
	}
	_, err = decodeBatch(encodeBatch(many))
	require.ErrorContains(t, err, "more than")
	_, err = decodeBatch(encodeBatch(many[:maxBatchCommands]))
	require.NoError(t, err)
	// Callers are sanitized like the header was.
	items, err = decodeBatch(encodeBatch([]*queuedProposal{{caller: "a\nb\x7f", cmd: []byte("c")}}))
	require.NoError(t, err)
	require.Equal(t, "ab", items[0].caller)
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([]*queuedProposal{{caller: "c", cmd: []byte("cmd")}}))
	f.Add([]byte{})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := decodeBatch(body)
		if err != nil {
			return
		}
		require.NotEmpty(t, items)
		require.LessOrEqual(t, len(items), maxBatchCommands)
	})
}

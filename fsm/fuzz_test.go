package fsm

import (
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// FuzzDecode checks that Decode never panics, that whatever it accepts
// re-encodes to a fixed point (Encode(Decode(b)) decodes to a command that
// encodes to the same bytes), and that Apply handles every decodable command
// without panicking.
func FuzzDecode(f *testing.F) {
	for _, c := range sampleCommands() {
		b, err := Encode(c)
		require.NoError(f, err)
		f.Add(b)
	}
	full := testKey("k1")
	full.Tags = nTags("t", 3)
	f.Add(mustEncodeF(f, withRequestID(createKey(full), "r")))
	f.Add(mustEncodeF(f, withRequestID(tagResource("k1", nTags("t", MaxTagsPerKey+1)), "r")))
	for _, s := range []string{
		"",
		"\x01",
		"\x01{}",
		"\x01null",
		"\x02{}",
		// Empty collections, which encode as absent or null.
		"\x01" + `{"type":"CreateKey","request_id":"r","create_key":{"key":{"key_id":"k\u00e9","tags":{},"versions":[]}}}`,
		// Invalid UTF-8, which decodes to U+FFFD.
		"\x01{\"type\":\"DeleteAlias\",\"request_id\":\"\xff\",\"alias\":{\"name\":\"alias/\xfe\"}}",
		// Case-insensitive and repeated field names.
		"\x01" + `{"TYPE":"DeleteKey","Request_ID":"r","key_ref":{"key_id":"k1"},"type":"CancelKeyDeletion"}`,
		// Base64 with a line break.
		"\x01" + `{"type":"AddDomainKey","request_id":"r","add_domain_key":{"id":"d","wrapped":"AAEC\r\n"}}`,
		// A short version id array.
		"\x01" + `{"type":"CreateKey","request_id":"r","create_key":{"key":{"versions":[{"version_id":[1,2,3]}]}}}`,
		// Names of the seeded FSM's keys and requests.
		"\x01" + `{"type":"DeleteKey","request_id":"seed-2","time":1700000000000000000,"key_ref":{"key_id":"k2"}}`,
		"\x01" + `{"type":"DeleteKey","request_id":"x","time":1700000000000000000,"key_ref":{"key_id":"k2"}}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			require.Nil(t, c)
			return
		}
		require.NotNil(t, c)

		b1, err := Encode(c)
		require.NoError(t, err, "a decoded command must encode")
		c1, err := Decode(b1)
		require.NoError(t, err, "an encoded command must decode")
		b2, err := Encode(c1)
		require.NoError(t, err)
		require.Equal(t, b1, b2, "Encode(Decode(b)) is not a fixed point")
		c2, err := Decode(b2)
		require.NoError(t, err)
		require.Equal(t, c1, c2)

		// Apply takes any decodable command, against an empty FSM and one
		// holding the ids the seeds name, twice (the second is a duplicate).
		for _, fsm := range []*FSM{New(), seededFSM(t)} {
			var first *Result
			_, known := fsm.ResultOf(c.RequestID)
			for i := range 2 {
				out := fsm.Apply(&raft.Log{Type: raft.LogCommand, Index: uint64(100 + i), Data: b})
				res, ok := out.(*Result)
				require.True(t, ok)
				require.Equal(t, known || i == 1, res.Duplicate)
				if i == 0 {
					first = res
				} else {
					require.Equal(t, first.Err, res.Err)
				}
			}
		}
	})
}

func mustEncodeF(f *testing.F, c *Command) []byte {
	b, err := Encode(c)
	require.NoError(f, err)
	return b
}

func seededFSM(t *testing.T) *FSM {
	e := newEnv(t)
	e.mustApply(
		withRequestID(addDomainKey("dk-1", []byte("w"), t0), "seed-1"),
		withRequestID(createKey(testKey("k1")), "seed-2"),
		withRequestID(createKey(testKey("k2")), "seed-3"),
		withRequestID(createAlias("alias/a", "k1", t0), "seed-4"),
		withRequestID(scheduleDeletion("k2", t0, 7), "seed-5"),
	)
	return e.f
}

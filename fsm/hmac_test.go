package fsm

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// hmacTestKey is an enabled HMAC key whose wrapped material stands for
// materialLen bytes (plus the wrap overhead).
func hmacTestKey(id, spec string, materialLen int) Key {
	k := testKey(id)
	k.KeySpec = spec
	k.KeyUsage = "GENERATE_VERIFY_MAC"
	k.Versions[0].WrappedMaterial = bytes.Repeat([]byte{0x5a}, materialLen+29)
	return k
}

// TestHMACKeysInSnapshotsAndStateHash: an HMAC key's spec and usage are part
// of the replicated state: a snapshot restores them, and replicas that
// disagree on them have different state hashes.
func TestHMACKeysInSnapshotsAndStateHash(t *testing.T) {
	specs := map[string]int{"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
	src := newEnv(t)
	for spec, n := range specs {
		src.mustApply(createKey(hmacTestKey("k-"+spec, spec, n)))
	}
	src.mustApply(createKey(testKey("k-sym")), setEnabled("k-HMAC_256", false))

	dst := New()
	_, err := restore(dst, snapshotBytes(t, src.f))
	require.NoError(t, err)
	h, err := dst.StateHash()
	require.NoError(t, err)
	require.Equal(t, src.hash(), h)
	for spec := range specs {
		want, _ := src.f.Key("k-" + spec)
		got, ok := dst.Key("k-" + spec)
		require.True(t, ok, spec)
		require.Equal(t, want, got)
		require.Equal(t, spec, got.KeySpec)
		require.Equal(t, "GENERATE_VERIFY_MAC", got.KeyUsage)
	}
	require.Equal(t, StateDisabled, dst.st.Keys["k-HMAC_256"].State)

	// The same history with another spec (or usage) hashes differently.
	for _, mutate := range []func(*Key){
		func(k *Key) { k.KeySpec = "HMAC_512" },
		func(k *Key) { k.KeyUsage = "ENCRYPT_DECRYPT" },
	} {
		a, b := newEnv(t), newEnv(t)
		ka := hmacTestKey("k1", "HMAC_256", 32)
		kb := hmacTestKey("k1", "HMAC_256", 32)
		mutate(&kb)
		a.mustApply(createKey(ka))
		b.mustApply(createKey(kb))
		require.NotEqual(t, a.hash(), b.hash())
	}
}

package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// errBadContext is wrapped by every DecodeEncryptionContext error.
var errBadContext = errors.New("crypto: malformed encryption context encoding")

// EncodeEncryptionContext returns the canonical encoding of an encryption
// context, used as part of the AAD of every ciphertext blob:
//
//	uint32 count | count x (uint32 len(key) | key | uint32 len(value) | value)
//
// with pairs sorted by key, bytewise ascending, and all integers big-endian.
// Keys and values are encoded as their bytes (UTF-8; validating UTF-8 and
// AWS's size limits is the caller's job). A nil and an empty map encode
// identically (four zero bytes). The encoding is injective: distinct maps,
// such as {"ab":"c"} and {"a":"bc"}, never share an encoding.
func EncodeEncryptionContext(ctx map[string]string) []byte {
	size := 4
	for k, v := range ctx {
		size += 8 + len(k) + len(v)
	}
	return appendEncryptionContext(make([]byte, 0, size), ctx)
}

// appendEncryptionContext appends EncodeEncryptionContext(ctx) to dst (the
// AAD of a blob is its header followed by it, built in one buffer).
func appendEncryptionContext(dst []byte, ctx map[string]string) []byte {
	var buf [8]string // most contexts are small: sort without allocating
	keys := buf[:0]
	for k := range ctx {
		keys = append(keys, k)
	}
	slices.Sort(keys) // Go string order is bytewise order
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(keys)))
	for _, k := range keys {
		dst = appendLP(dst, k)
		dst = appendLP(dst, ctx[k])
	}
	return dst
}

// DecodeEncryptionContext parses the output of EncodeEncryptionContext. It
// accepts only canonical encodings (keys strictly ascending, no trailing
// bytes), so for every b it accepts, EncodeEncryptionContext(result) equals b.
// It returns a non-nil map, empty for a zero count. Errors never quote the
// input.
func DecodeEncryptionContext(b []byte) (map[string]string, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: too short", errBadContext)
	}
	count := binary.BigEndian.Uint32(b)
	b = b[4:]
	// Each pair takes at least 8 bytes: bound the allocation by the input.
	if uint64(count) > uint64(len(b))/8 {
		return nil, fmt.Errorf("%w: count exceeds input", errBadContext)
	}
	ctx := make(map[string]string, count)
	var prev string
	for i := uint32(0); i < count; i++ {
		var k, v string
		var ok bool
		if k, b, ok = readLP(b); !ok {
			return nil, fmt.Errorf("%w: truncated key", errBadContext)
		}
		if v, b, ok = readLP(b); !ok {
			return nil, fmt.Errorf("%w: truncated value", errBadContext)
		}
		if i > 0 && k <= prev {
			return nil, fmt.Errorf("%w: keys not strictly ascending", errBadContext)
		}
		ctx[k] = v
		prev = k
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", errBadContext)
	}
	return ctx, nil
}

// readLP reads a uint32 length-prefixed string from b.
func readLP(b []byte) (s string, rest []byte, ok bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)) {
		return "", nil, false
	}
	return string(b[:n]), b[n:], true
}

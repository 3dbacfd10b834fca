package crypto

import "fmt"

// Ciphertext blob layout constants (see the package comment for offsets).
const (
	// BlobVersion is the blob format version Seal writes unless told
	// otherwise. Format 1 derives each message key with HKDF-SHA256 from
	// the key version's material; format 2 with AES-CMAC under a
	// derivation key cached per key version (SymmetricKey). Both are
	// parsed and opened.
	BlobVersion = blobVersion2

	blobVersion1 byte = 1
	blobVersion2 byte = 2

	// SaltSize is the size of the random salt of the per-message key
	// carried in every blob.
	SaltSize = 16
	// HeaderSize is the size of an encoded Header.
	HeaderSize = 2 + 1 + 1 + 16 + 16 + SaltSize + NonceSize
	// MinBlobSize is the size of a blob sealing an empty plaintext.
	MinBlobSize = HeaderSize + TagSize
	// BlobOverhead is how much larger a blob is than its plaintext.
	BlobOverhead = MinBlobSize

	magic0 = 'K'
	magic1 = 'D'

	flagMultiRegion byte = 1 << 0
	knownFlags           = flagMultiRegion
)

// Header is the authenticated, unencrypted part of a ciphertext blob.
type Header struct {
	// Version is the blob format version (1 or 2); 0 means BlobVersion
	// when sealing.
	Version byte
	// MultiRegion is set when KeyID belongs to a multi-region key ("mrk-").
	MultiRegion bool
	// KeyID is the raw 16 bytes of the key id.
	KeyID [16]byte
	// VersionID is the raw 16 bytes of the key version (backing key) id.
	VersionID [16]byte
	// Salt is the random salt of the per-message key.
	Salt [SaltSize]byte
	// Nonce is the random AES-GCM nonce.
	Nonce [NonceSize]byte
}

// Blob is a parsed ciphertext blob.
type Blob struct {
	Header
	// Sealed is the AES-GCM ciphertext followed by the 16-byte tag.
	Sealed []byte
}

// Encode returns the HeaderSize header bytes, which are also the first part
// of the AAD.
func (h *Header) Encode() []byte {
	return h.appendTo(make([]byte, 0, HeaderSize))
}

// version is h.Version, with 0 read as BlobVersion.
func (h *Header) version() byte {
	if h.Version == 0 {
		return BlobVersion
	}
	return h.Version
}

func (h *Header) appendTo(dst []byte) []byte {
	var flags byte
	if h.MultiRegion {
		flags |= flagMultiRegion
	}
	dst = append(dst, magic0, magic1, h.version(), flags)
	dst = append(dst, h.KeyID[:]...)
	dst = append(dst, h.VersionID[:]...)
	dst = append(dst, h.Salt[:]...)
	dst = append(dst, h.Nonce[:]...)
	return dst
}

// Encode returns the blob's bytes: header || Sealed. For any b that ParseBlob
// accepts, ParseBlob(b).Encode() is byte-identical to b.
func (b *Blob) Encode() []byte {
	out := make([]byte, 0, HeaderSize+len(b.Sealed))
	out = b.Header.appendTo(out)
	return append(out, b.Sealed...)
}

// ParseBlob parses a ciphertext blob. It rejects wrong magic, unknown format
// versions, unknown flag bits, and blobs shorter than MinBlobSize; all errors
// wrap ErrInvalidCiphertext. It does not authenticate (Open does). The result
// does not alias b. It never panics and allocates at most len(b) bytes.
func ParseBlob(b []byte) (*Blob, error) {
	if len(b) < MinBlobSize {
		return nil, fmt.Errorf("%w: too short", ErrInvalidCiphertext)
	}
	if b[0] != magic0 || b[1] != magic1 {
		return nil, fmt.Errorf("%w: not a kmsd ciphertext", ErrInvalidCiphertext)
	}
	if b[2] != blobVersion1 && b[2] != blobVersion2 {
		return nil, fmt.Errorf("%w: unsupported format version", ErrInvalidCiphertext)
	}
	flags := b[3]
	if flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w: unknown flags", ErrInvalidCiphertext)
	}
	blob := &Blob{Header: Header{Version: b[2], MultiRegion: flags&flagMultiRegion != 0}}
	p := b[4:]
	p = p[copy(blob.KeyID[:], p):]
	p = p[copy(blob.VersionID[:], p):]
	p = p[copy(blob.Salt[:], p):]
	p = p[copy(blob.Nonce[:], p):]
	blob.Sealed = append([]byte(nil), p...)
	return blob, nil
}

package crypto

import (
	"crypto/rsa"
	"fmt"
	"io"
)

// Imported key material (BYOK). A client wraps its key material under the
// public half of a wrapping key pair kmsd made for the import; kmsd unwraps
// it with the private half, which it keeps wrapped under a domain key.

// ImportWrapping is a wrapping algorithm of GetParametersForImport.
type ImportWrapping int

// The supported wrapping algorithms, as AWS names them:
// RSAES_OAEP_SHA_1 and RSAES_OAEP_SHA_256 encrypt the material itself with
// RSA-OAEP; RSA_AES_KEY_WRAP_SHA_1 and RSA_AES_KEY_WRAP_SHA_256 encrypt an
// ephemeral AES key with RSA-OAEP and wrap the material under it with
// AES-KWP (RFC 5649); the encrypted key material is the RSA ciphertext (as
// long as the modulus) followed by the AES-KWP ciphertext.
const (
	ImportRSAESOAEPSHA1 ImportWrapping = iota + 1
	ImportRSAESOAEPSHA256
	ImportRSAAESKeyWrapSHA1
	ImportRSAAESKeyWrapSHA256
)

// oaep is the RSA-OAEP scheme the algorithm uses.
func (w ImportWrapping) oaep() EncryptionAlgorithm {
	switch w {
	case ImportRSAESOAEPSHA1, ImportRSAAESKeyWrapSHA1:
		return RSAESOAEPSHA1
	case ImportRSAESOAEPSHA256, ImportRSAAESKeyWrapSHA256:
		return RSAESOAEPSHA256
	}
	return 0
}

func (w ImportWrapping) aesKeyWrap() bool {
	return w == ImportRSAAESKeyWrapSHA1 || w == ImportRSAAESKeyWrapSHA256
}

// UnwrapImportedMaterial recovers key material a client wrapped for import
// under the public half of priv (PKCS#8 RSA private key) with algorithm w.
// Any failure to decrypt or unwrap is ErrInvalidCiphertext.
func UnwrapImportedMaterial(priv *Secret, w ImportWrapping, encrypted []byte) (*Secret, error) {
	alg := w.oaep()
	if alg == 0 {
		return nil, fmt.Errorf("%w: unknown import wrapping algorithm %d", ErrInvalidKey, int(w))
	}
	k, err := rsaPrivate(priv)
	if err != nil {
		return nil, err
	}
	if !w.aesKeyWrap() {
		pt, err := rsa.DecryptOAEP(newHash(alg.hash()), nil, k, encrypted, nil)
		if err != nil {
			return nil, ErrInvalidCiphertext
		}
		return &Secret{b: pt}, nil
	}
	size := k.Size()
	if len(encrypted) <= size {
		return nil, ErrInvalidCiphertext
	}
	aesKey, err := rsa.DecryptOAEP(newHash(alg.hash()), nil, k, encrypted[:size], nil)
	if err != nil {
		return nil, ErrInvalidCiphertext
	}
	defer clear(aesKey)
	switch len(aesKey) {
	case 16, 24, 32:
	default:
		return nil, ErrInvalidCiphertext
	}
	pt, err := KeyUnwrapWithPadding(aesKey, encrypted[size:])
	if err != nil {
		return nil, ErrInvalidCiphertext
	}
	return &Secret{b: pt}, nil
}

// importKeyAAD binds a wrapped import wrapping key to its domain key, key
// ARN and import token id.
func importKeyAAD(domainKeyID, keyARN string, tokenID [16]byte) []byte {
	aad := appendLP(nil, labelImportKeyWrap)
	aad = appendLP(aad, domainKeyID)
	aad = appendLP(aad, keyARN)
	return appendLPBytes(aad, tokenID[:])
}

// WrapImportKey wraps the private half of an import wrapping key pair under
// a domain key (AES-256-GCM). The AAD binds a label of its own (so it can
// never pass for customer material), the domain key id, the ARN of the key
// being imported into and the import token id.
func WrapImportKey(rand io.Reader, domainKey *Secret, domainKeyID, keyARN string, tokenID [16]byte, priv *Secret) ([]byte, error) {
	if n := priv.Len(); n == 0 || n > MaxMaterialSize {
		return nil, fmt.Errorf("%w: wrapping key must be 1 to %d bytes", ErrInvalidKey, MaxMaterialSize)
	}
	return wrapSecret(rand, domainKey.Bytes(), importKeyAAD(domainKeyID, keyARN, tokenID), priv.Bytes())
}

// UnwrapImportKey reverses WrapImportKey (ErrUnwrap on any mismatch).
func UnwrapImportKey(domainKey *Secret, domainKeyID, keyARN string, tokenID [16]byte, wrapped []byte) (*Secret, error) {
	return unwrapSecret(domainKey.Bytes(), importKeyAAD(domainKeyID, keyARN, tokenID), wrapped)
}

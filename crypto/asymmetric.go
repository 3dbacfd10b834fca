package crypto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// KeyPairSpec is the type of an asymmetric key pair: RSA of one modulus
// size, ECDSA on one NIST curve or on secp256k1, or Ed25519. Private keys
// are carried as PKCS#8 PrivateKeyInfo (RFC 5208) DER inside a *Secret,
// public keys as X.509 SubjectPublicKeyInfo (RFC 5280) DER.
type KeyPairSpec int

// The key pair types kmsd makes. Secp256k1 is AWS's ECC_SECG_P256K1, which
// the Go standard library lacks: it comes from decred's secp256k1 package
// (see secp256k1.go). SM2 is absent: no implementation is at hand.
const (
	RSA2048 KeyPairSpec = iota + 1
	RSA3072
	RSA4096
	ECCNISTP256
	ECCNISTP384
	ECCNISTP521
	Ed25519
	Secp256k1
)

// randOrDefault is r, or crypto/rand when r is nil.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return cryptorand.Reader
	}
	return r
}

// rsaBits is the modulus size of an RSA spec, 0 for the others.
func (k KeyPairSpec) rsaBits() int {
	switch k {
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	case RSA4096:
		return 4096
	}
	return 0
}

func (k KeyPairSpec) curve() elliptic.Curve {
	switch k {
	case ECCNISTP256:
		return elliptic.P256()
	case ECCNISTP384:
		return elliptic.P384()
	case ECCNISTP521:
		return elliptic.P521()
	}
	return nil
}

// GenerateKeyPair draws a new key pair of the spec and returns the private
// key as PKCS#8 DER and the public key as SubjectPublicKeyInfo DER. rand nil
// means crypto/rand (the standard library may use its own source anyway).
func GenerateKeyPair(rand io.Reader, spec KeyPairSpec) (*Secret, []byte, error) {
	rand = randOrDefault(rand)
	if spec == Secp256k1 {
		return generateSecp256k1(rand)
	}
	var priv crypto.Signer
	switch {
	case spec.rsaBits() != 0:
		k, err := rsa.GenerateKey(rand, spec.rsaBits())
		if err != nil {
			return nil, nil, fmt.Errorf("crypto: generating RSA key: %w", err)
		}
		priv = k
	case spec.curve() != nil:
		k, err := ecdsa.GenerateKey(spec.curve(), rand)
		if err != nil {
			return nil, nil, fmt.Errorf("crypto: generating ECDSA key: %w", err)
		}
		priv = k
	case spec == Ed25519:
		_, k, err := ed25519.GenerateKey(rand)
		if err != nil {
			return nil, nil, fmt.Errorf("crypto: generating Ed25519 key: %w", err)
		}
		priv = k
	default:
		return nil, nil, fmt.Errorf("%w: unknown key pair spec %d", ErrInvalidKey, int(spec))
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("crypto: encoding private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		clear(der)
		return nil, nil, fmt.Errorf("crypto: encoding public key: %w", err)
	}
	s := &Secret{b: der} // der is ours alone: no copy needed
	return s, pub, nil
}

// parsePrivate parses PKCS#8 DER into a signer of a supported type. The
// caller calls zeroSigner on it when done. secp256k1 keys are recognised
// before crypto/x509 is tried, as x509 would refuse them only after copying
// the secret.
func parsePrivate(priv *Secret) (crypto.Signer, error) {
	der := priv.Bytes()
	if _, ok := secp256k1ECPrivateKey(der); ok {
		k, pub, err := parseSecp256k1PKCS8(der)
		if err != nil {
			return nil, err
		}
		return secp256k1Signer{priv: k, pub: pub}, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: private key is not PKCS#8", ErrInvalidKey)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%w: unsupported private key type %T", ErrInvalidKey, k)
}

// zeroSigner overwrites what parsePrivate parsed where that is possible (a
// secp256k1 scalar; the standard library's key types keep theirs).
func zeroSigner(k crypto.Signer) {
	if z, ok := k.(interface{ zero() }); ok {
		z.zero()
	}
}

// PublicKeyDER returns the SubjectPublicKeyInfo DER of a PKCS#8 private key.
func PublicKeyDER(priv *Secret) ([]byte, error) {
	k, err := parsePrivate(priv)
	if err != nil {
		return nil, err
	}
	defer zeroSigner(k)
	if p, ok := k.Public().(*secp256k1.PublicKey); ok {
		return marshalSecp256k1SPKI(p)
	}
	return x509.MarshalPKIXPublicKey(k.Public())
}

// SigningAlgorithm is a signature scheme with its hash.
type SigningAlgorithm int

// The signing algorithms kmsd computes. RSASSA-PSS uses MGF1 with the same
// hash and a salt as long as the hash; ECDSA signatures are ASN.1 DER
// (ecdsa.SignASN1, or for secp256k1 decred's Signature.Serialize), and
// ECDSASHA256 serves both P-256 and secp256k1 keys; Ed25519ph is RFC 8032's
// HashEdDSA with SHA-512.
const (
	RSASSAPSSSHA256 SigningAlgorithm = iota + 1
	RSASSAPSSSHA384
	RSASSAPSSSHA512
	RSASSAPKCS1v15SHA256
	RSASSAPKCS1v15SHA384
	RSASSAPKCS1v15SHA512
	ECDSASHA256
	ECDSASHA384
	ECDSASHA512
	Ed25519SHA512
	Ed25519PHSHA512
)

// Hash is the algorithm's hash function.
func (a SigningAlgorithm) Hash() crypto.Hash {
	switch a {
	case RSASSAPSSSHA256, RSASSAPKCS1v15SHA256, ECDSASHA256:
		return crypto.SHA256
	case RSASSAPSSSHA384, RSASSAPKCS1v15SHA384, ECDSASHA384:
		return crypto.SHA384
	case RSASSAPSSSHA512, RSASSAPKCS1v15SHA512, ECDSASHA512, Ed25519SHA512, Ed25519PHSHA512:
		return crypto.SHA512
	}
	return 0
}

// DigestSize is the length in bytes of a message digest for the algorithm
// (the size of its hash's output); 0 for an unknown algorithm.
func (a SigningAlgorithm) DigestSize() int {
	h := a.Hash()
	if h == 0 {
		return 0
	}
	return h.Size()
}

func (a SigningAlgorithm) isPSS() bool {
	return a == RSASSAPSSSHA256 || a == RSASSAPSSSHA384 || a == RSASSAPSSSHA512
}

func (a SigningAlgorithm) isPKCS1() bool {
	return a == RSASSAPKCS1v15SHA256 || a == RSASSAPKCS1v15SHA384 || a == RSASSAPKCS1v15SHA512
}

func (a SigningAlgorithm) isECDSA() bool {
	return a == ECDSASHA256 || a == ECDSASHA384 || a == ECDSASHA512
}

func newHash(h crypto.Hash) hash.Hash {
	switch h {
	case crypto.SHA1:
		return sha1.New()
	case crypto.SHA256:
		return sha256.New()
	case crypto.SHA384:
		return sha512.New384()
	case crypto.SHA512:
		return sha512.New()
	}
	return nil
}

// MaxSignMessageSize is the largest message Sign and Verify take (AWS KMS's
// Sign/Verify Message limit).
const MaxSignMessageSize = 4096

// ErrSignature reports a message, digest or algorithm a signature cannot be
// made or checked with: a digest of the wrong length, an algorithm that
// does not fit the key, a pure Ed25519 signature over a digest.
var ErrSignature = errors.New("crypto: unusable signing input")

// signInput returns what the scheme signs: for RSA and ECDSA the digest
// (msg itself when isDigest, else its hash); for Ed25519 the message; for
// Ed25519ph the SHA-512 of the input (which, when isDigest, is itself a
// SHA-512 digest: AWS KMS hashes it again, FIPS 186-5 7.8.1 step 1).
func signInput(alg SigningAlgorithm, msg []byte, isDigest bool) ([]byte, error) {
	if len(msg) == 0 || len(msg) > MaxSignMessageSize {
		return nil, fmt.Errorf("%w: message must be 1 to %d bytes", ErrSignature, MaxSignMessageSize)
	}
	h := alg.Hash()
	if h == 0 {
		return nil, fmt.Errorf("%w: unknown signing algorithm %d", ErrSignature, int(alg))
	}
	if isDigest && len(msg) != h.Size() {
		return nil, fmt.Errorf("%w: digest must be %d bytes", ErrSignature, h.Size())
	}
	switch alg {
	case Ed25519SHA512:
		if isDigest {
			return nil, fmt.Errorf("%w: Ed25519 signs raw messages only", ErrSignature)
		}
		return msg, nil
	case Ed25519PHSHA512:
		if !isDigest {
			return nil, fmt.Errorf("%w: Ed25519ph signs digests only", ErrSignature)
		}
		d := sha512.Sum512(msg)
		return d[:], nil
	}
	if isDigest {
		return msg, nil
	}
	hh := newHash(h)
	hh.Write(msg)
	return hh.Sum(nil), nil
}

// checkKeyFits reports whether the algorithm can be used with the key.
func checkKeyFits(alg SigningAlgorithm, pub crypto.PublicKey) error {
	ok := false
	switch p := pub.(type) {
	case *rsa.PublicKey:
		ok = alg.isPSS() || alg.isPKCS1()
	case *ecdsa.PublicKey:
		want := map[int]SigningAlgorithm{256: ECDSASHA256, 384: ECDSASHA384, 521: ECDSASHA512}[p.Curve.Params().BitSize]
		ok = alg == want
	case *secp256k1.PublicKey:
		ok = alg == ECDSASHA256
	case ed25519.PublicKey:
		ok = alg == Ed25519SHA512 || alg == Ed25519PHSHA512
	}
	if !ok {
		return fmt.Errorf("%w: algorithm %d does not fit a %T key", ErrSignature, int(alg), pub)
	}
	return nil
}

// Sign signs msg (or, when isDigest, the digest msg) with a PKCS#8 private
// key. rand nil means crypto/rand.
func Sign(rand io.Reader, priv *Secret, alg SigningAlgorithm, msg []byte, isDigest bool) ([]byte, error) {
	k, err := parsePrivate(priv)
	if err != nil {
		return nil, err
	}
	defer zeroSigner(k)
	if err := checkKeyFits(alg, k.Public()); err != nil {
		return nil, err
	}
	in, err := signInput(alg, msg, isDigest)
	if err != nil {
		return nil, err
	}
	rand = randOrDefault(rand)
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if alg.isPSS() {
			return rsa.SignPSS(rand, k, alg.Hash(), in, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand, k, alg.Hash(), in)
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand, k, in)
	case secp256k1Signer:
		return k.Sign(rand, in, alg.Hash())
	case ed25519.PrivateKey:
		if alg == Ed25519PHSHA512 {
			return k.Sign(nil, in, &ed25519.Options{Hash: crypto.SHA512})
		}
		return ed25519.Sign(k, in), nil
	}
	return nil, fmt.Errorf("%w: unsupported key type", ErrInvalidKey)
}

// Verify reports whether sig is a valid signature of msg (or of the digest
// msg) under the public half of a PKCS#8 private key. A malformed signature
// is simply not valid; an input the algorithm cannot take is ErrSignature.
func Verify(priv *Secret, alg SigningAlgorithm, msg []byte, isDigest bool, sig []byte) (bool, error) {
	k, err := parsePrivate(priv)
	if err != nil {
		return false, err
	}
	defer zeroSigner(k)
	if err := checkKeyFits(alg, k.Public()); err != nil {
		return false, err
	}
	in, err := signInput(alg, msg, isDigest)
	if err != nil {
		return false, err
	}
	switch p := k.Public().(type) {
	case *rsa.PublicKey:
		if alg.isPSS() {
			return rsa.VerifyPSS(p, alg.Hash(), in, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil, nil
		}
		return rsa.VerifyPKCS1v15(p, alg.Hash(), in, sig) == nil, nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, in, sig), nil
	case *secp256k1.PublicKey:
		return verifySecp256k1(p, in, sig), nil
	case ed25519.PublicKey:
		if alg == Ed25519PHSHA512 {
			return ed25519.VerifyWithOptions(p, in, sig, &ed25519.Options{Hash: crypto.SHA512}) == nil, nil
		}
		return ed25519.Verify(p, in, sig), nil
	}
	return false, fmt.Errorf("%w: unsupported key type", ErrInvalidKey)
}

// EncryptionAlgorithm is an RSA encryption scheme.
type EncryptionAlgorithm int

// RSAES-OAEP with MGF1 over the same hash and an empty label.
const (
	RSAESOAEPSHA1 EncryptionAlgorithm = iota + 1
	RSAESOAEPSHA256
)

func (a EncryptionAlgorithm) hash() crypto.Hash {
	switch a {
	case RSAESOAEPSHA1:
		return crypto.SHA1
	case RSAESOAEPSHA256:
		return crypto.SHA256
	}
	return 0
}

// MaxOAEPPlaintext is the largest plaintext RSAES-OAEP with the algorithm
// takes under a key of the spec: k - 2*hLen - 2 bytes (RFC 8017 7.1.1), so
// 214/190 for RSA_2048, 342/318 for RSA_3072, 470/446 for RSA_4096. 0 if the
// spec is not RSA or the algorithm is unknown.
func MaxOAEPPlaintext(spec KeyPairSpec, alg EncryptionAlgorithm) int {
	bits, h := spec.rsaBits(), alg.hash()
	if bits == 0 || h == 0 {
		return 0
	}
	return bits/8 - 2*h.Size() - 2
}

func rsaPrivate(priv *Secret) (*rsa.PrivateKey, error) {
	k, err := parsePrivate(priv)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		zeroSigner(k)
		return nil, fmt.Errorf("%w: not an RSA key", ErrInvalidKey)
	}
	return rk, nil
}

// EncryptOAEP encrypts plaintext under the public half of a PKCS#8 RSA
// private key. The result is the raw RSA ciphertext (as long as the
// modulus), which anyone with the public key can make too.
func EncryptOAEP(rand io.Reader, priv *Secret, alg EncryptionAlgorithm, plaintext []byte) ([]byte, error) {
	k, err := rsaPrivate(priv)
	if err != nil {
		return nil, err
	}
	h := alg.hash()
	if h == 0 {
		return nil, fmt.Errorf("%w: unknown encryption algorithm %d", ErrInvalidKey, int(alg))
	}
	return rsa.EncryptOAEP(newHash(h), randOrDefault(rand), &k.PublicKey, plaintext, nil)
}

// DecryptOAEP reverses EncryptOAEP (and any standard RSAES-OAEP encryption
// with the same hash for MGF1 and an empty label). Any failure is
// ErrInvalidCiphertext.
func DecryptOAEP(priv *Secret, alg EncryptionAlgorithm, ciphertext []byte) ([]byte, error) {
	k, err := rsaPrivate(priv)
	if err != nil {
		return nil, err
	}
	h := alg.hash()
	if h == 0 {
		return nil, fmt.Errorf("%w: unknown encryption algorithm %d", ErrInvalidKey, int(alg))
	}
	pt, err := rsa.DecryptOAEP(newHash(h), nil, k, ciphertext, nil)
	if err != nil {
		return nil, ErrInvalidCiphertext
	}
	return pt, nil
}

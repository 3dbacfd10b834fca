package crypto

import (
	"bytes"
	gocrypto "crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// secp256k1 (SEC 2 2.4.1; AWS's ECC_SECG_P256K1) comes from
// github.com/decred/dcrd/dcrec/secp256k1/v4, because the Go standard library
// has no such curve and crypto/x509 refuses its keys. The encodings are the
// standard ones, written here with encoding/asn1:
//
//	PKCS#8 (RFC 5208) PrivateKeyInfo ::= SEQUENCE {
//	  version             INTEGER (0),
//	  privateKeyAlgorithm AlgorithmIdentifier { id-ecPublicKey, namedCurve secp256k1 },
//	  privateKey          OCTET STRING (DER of ECPrivateKey) }
//	ECPrivateKey (RFC 5915) ::= SEQUENCE {
//	  version    INTEGER (1),
//	  privateKey OCTET STRING (32 bytes, big-endian scalar),
//	  parameters [0] EXPLICIT OBJECT IDENTIFIER secp256k1,
//	  publicKey  [1] EXPLICIT BIT STRING (uncompressed point 04 || X || Y) }
//	SubjectPublicKeyInfo (RFC 5280, RFC 5480) ::= SEQUENCE {
//	  algorithm        AlgorithmIdentifier { id-ecPublicKey, namedCurve secp256k1 },
//	  subjectPublicKey BIT STRING (uncompressed point) }
//
// Signatures are ECDSA over the SHA-256 digest, DER SEQUENCE { r, s } (ANS
// X9.62, RFC 3279 2.2.3), as AWS KMS returns them. The library signs with
// an RFC 6979 deterministic nonce and a low S; verification accepts any
// valid signature, high S included, as other signers (AWS KMS itself) do not
// normalise S.
//
// Side channels: the library's field and scalar arithmetic is constant
// time, but its k*G (ScalarBaseMultNonConst, used for the signing nonce
// and for deriving a public key) is not. So that the long-term private key
// goes through it once, at generation, and not on every request, the
// PKCS#8 carries the public key and parsing trusts it: the material is
// authenticated (wrapped under the domain key with AES-GCM) and was written
// by GenerateKeyPair.

var (
	// oidECPublicKey is id-ecPublicKey (RFC 5480 2.1.1).
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	// oidSecp256k1 is secp256k1 (SEC 2 A.2.1).
	oidSecp256k1 = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
	// derSecp256k1 is the DER of oidSecp256k1, the ECParameters of the
	// AlgorithmIdentifier.
	derSecp256k1 = mustMarshalASN1(oidSecp256k1)
)

func mustMarshalASN1(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// secp256k1Algorithm is the AlgorithmIdentifier of a secp256k1 key.
func secp256k1Algorithm() pkix.AlgorithmIdentifier {
	return pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: derSecp256k1}}
}

func isSecp256k1Algorithm(a pkix.AlgorithmIdentifier) bool {
	return a.Algorithm.Equal(oidECPublicKey) && bytes.Equal(a.Parameters.FullBytes, derSecp256k1)
}

// pkcs8 is PrivateKeyInfo. PrivateKey is a RawValue, not a []byte, because
// encoding/asn1 copies an OCTET STRING into a []byte but leaves a RawValue's
// Bytes aliasing the input: no stray copy of the secret is made.
type pkcs8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey asn1.RawValue
}

// ecPrivateKey is ECPrivateKey; PrivateKey is a RawValue for the same
// reason as pkcs8's.
type ecPrivateKey struct {
	Version       int
	PrivateKey    asn1.RawValue
	NamedCurveOID asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey     asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

// subjectPublicKeyInfo is SubjectPublicKeyInfo.
type subjectPublicKeyInfo struct {
	Algo      pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

func octetString(b []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagOctetString, Bytes: b}
}

func isOctetString(v asn1.RawValue) bool {
	return v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString && !v.IsCompound
}

// pointBitString is the BIT STRING of an uncompressed point.
func pointBitString(pub *secp256k1.PublicKey) asn1.BitString {
	p := pub.SerializeUncompressed()
	return asn1.BitString{Bytes: p, BitLength: 8 * len(p)}
}

// marshalSecp256k1PKCS8 encodes a private key and its public key as PKCS#8.
// The intermediate encodings holding the scalar are cleared; the result is
// the caller's to keep in a Secret.
func marshalSecp256k1PKCS8(k *secp256k1.PrivateKey, pub *secp256k1.PublicKey) ([]byte, error) {
	var scalar [secp256k1.PrivKeyBytesLen]byte
	k.Key.PutBytes(&scalar)
	defer clear(scalar[:])
	inner, err := asn1.Marshal(ecPrivateKey{
		Version:       1,
		PrivateKey:    octetString(scalar[:]),
		NamedCurveOID: oidSecp256k1,
		PublicKey:     pointBitString(pub),
	})
	if err != nil {
		return nil, fmt.Errorf("crypto: encoding secp256k1 private key: %w", err)
	}
	defer clear(inner)
	der, err := asn1.Marshal(pkcs8{Version: 0, Algo: secp256k1Algorithm(), PrivateKey: octetString(inner)})
	if err != nil {
		return nil, fmt.Errorf("crypto: encoding secp256k1 private key: %w", err)
	}
	return der, nil
}

// marshalSecp256k1SPKI encodes a public key as SubjectPublicKeyInfo with
// the uncompressed point.
func marshalSecp256k1SPKI(pub *secp256k1.PublicKey) ([]byte, error) {
	der, err := asn1.Marshal(subjectPublicKeyInfo{Algo: secp256k1Algorithm(), PublicKey: pointBitString(pub)})
	if err != nil {
		return nil, fmt.Errorf("crypto: encoding secp256k1 public key: %w", err)
	}
	return der, nil
}

// secp256k1ECPrivateKey returns the ECPrivateKey DER inside der (aliasing
// it) when der is a PKCS#8 PrivateKeyInfo of a secp256k1 key; ok false
// otherwise, also for malformed input, which the caller's other parser then
// refuses.
func secp256k1ECPrivateKey(der []byte) (inner []byte, ok bool) {
	var p pkcs8
	rest, err := asn1.Unmarshal(der, &p)
	if err != nil || len(rest) != 0 || !isSecp256k1Algorithm(p.Algo) {
		return nil, false
	}
	if p.Version != 0 || !isOctetString(p.PrivateKey) {
		return nil, false
	}
	return p.PrivateKey.Bytes, true
}

// parseSecp256k1PKCS8 parses a PKCS#8 secp256k1 private key: version 0, the
// secp256k1 AlgorithmIdentifier, an ECPrivateKey of version 1 with a
// 32-byte scalar in [1, n-1], optional parameters that must name secp256k1
// and an optional public key that must be a point on the curve. The public
// key is the embedded one when present (see the note at the top of this
// file), else derived. The caller zeroes the private key.
func parseSecp256k1PKCS8(der []byte) (*secp256k1.PrivateKey, *secp256k1.PublicKey, error) {
	inner, ok := secp256k1ECPrivateKey(der)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a PKCS#8 secp256k1 private key", ErrInvalidKey)
	}
	var ec ecPrivateKey
	rest, err := asn1.Unmarshal(inner, &ec)
	if err != nil || len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: malformed secp256k1 ECPrivateKey", ErrInvalidKey)
	}
	if ec.Version != 1 || !isOctetString(ec.PrivateKey) || len(ec.PrivateKey.Bytes) != secp256k1.PrivKeyBytesLen {
		return nil, nil, fmt.Errorf("%w: malformed secp256k1 ECPrivateKey", ErrInvalidKey)
	}
	if ec.NamedCurveOID != nil && !ec.NamedCurveOID.Equal(oidSecp256k1) {
		return nil, nil, fmt.Errorf("%w: ECPrivateKey names another curve", ErrInvalidKey)
	}
	k := new(secp256k1.PrivateKey)
	if overflow := k.Key.SetByteSlice(ec.PrivateKey.Bytes); overflow || k.Key.IsZero() {
		k.Zero()
		return nil, nil, fmt.Errorf("%w: secp256k1 scalar out of range", ErrInvalidKey)
	}
	if ec.PublicKey.BitLength == 0 {
		return k, k.PubKey(), nil
	}
	pub, err := parseSecp256k1Point(ec.PublicKey)
	if err != nil {
		k.Zero()
		return nil, nil, err
	}
	return k, pub, nil
}

// parseSecp256k1Point parses the BIT STRING of a public key: whole bytes,
// a compressed or uncompressed point on the curve (ParsePubKey checks it).
func parseSecp256k1Point(bits asn1.BitString) (*secp256k1.PublicKey, error) {
	if bits.BitLength != 8*len(bits.Bytes) {
		return nil, fmt.Errorf("%w: secp256k1 public key is not whole bytes", ErrInvalidKey)
	}
	pub, err := secp256k1.ParsePubKey(bits.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: secp256k1 public key is not a point on the curve", ErrInvalidKey)
	}
	return pub, nil
}

// secp256k1Signer is a parsed secp256k1 private key with its public key.
type secp256k1Signer struct {
	priv *secp256k1.PrivateKey
	pub  *secp256k1.PublicKey
}

// Public returns the *secp256k1.PublicKey.
func (s secp256k1Signer) Public() gocrypto.PublicKey { return s.pub }

// Sign signs a digest with ECDSA and returns the DER signature. The nonce
// is RFC 6979's, so rand and opts are unused.
func (s secp256k1Signer) Sign(_ io.Reader, digest []byte, _ gocrypto.SignerOpts) ([]byte, error) {
	return secpecdsa.Sign(s.priv, digest).Serialize(), nil
}

// zero overwrites the private scalar.
func (s secp256k1Signer) zero() { s.priv.Zero() }

// verifySecp256k1 reports whether sig is a DER ECDSA signature of digest
// under pub. A signature that does not parse (not strict DER, r or s zero
// or not below n) is simply not valid.
func verifySecp256k1(pub *secp256k1.PublicKey, digest, sig []byte) bool {
	s, err := secpecdsa.ParseDERSignature(sig)
	if err != nil {
		return false
	}
	return s.Verify(digest, pub)
}

// generateSecp256k1 draws a secp256k1 key pair from rand: the PKCS#8 private
// key and the SubjectPublicKeyInfo public key.
func generateSecp256k1(rand io.Reader) (*Secret, []byte, error) {
	k, err := secp256k1.GeneratePrivateKeyFromRand(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("crypto: generating secp256k1 key: %w", err)
	}
	defer k.Zero()
	pub := k.PubKey()
	der, err := marshalSecp256k1PKCS8(k, pub)
	if err != nil {
		return nil, nil, err
	}
	spki, err := marshalSecp256k1SPKI(pub)
	if err != nil {
		clear(der)
		return nil, nil, err
	}
	return &Secret{b: der}, spki, nil // der is ours alone: no copy needed
}

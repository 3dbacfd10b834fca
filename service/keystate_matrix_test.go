package service_test

import (
	"bytes"
	"context"
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// The key-state matrix: every operation × every key state kmsd can reach ×
// every key type the operation applies to, each cell checked against the
// AWS KMS key-state table (/work/shared/reference/key-states.md, the table
// of "Key states of KMS keys" in the AWS KMS developer guide), transcribed
// below as data. The expectations come from that table, never from what
// kmsd answers.
//
// States left out: key-states.md also has the columns Unavailable (a key in
// a disconnected custom key store), Creating and Updating (a multi-Region
// key while ReplicateKey or UpdatePrimaryRegion runs) and Pending replica
// deletion (ScheduleKeyDeletion of a multi-Region primary that has
// replicas). kmsd has no custom key stores and rejects MultiRegion keys
// (CreateKey answers UnsupportedOperationException), so no key can enter
// those states and the matrix has no column for them. For the same reason
// the rows ReplicateKey and UpdatePrimaryRegion are left out.
//
// Where a cell leaves a choice, the matrix reads it as follows (details at
// ksExpect and ksReference):
//   - "FAIL [2] or [3]" accepts either DisabledException or
//     KMSInvalidStateException, with the message both notes give.
//   - Note [7] ("imported key material or custom key store") also covers
//     asymmetric and HMAC keys, which the API reference of the rotation
//     operations excludes too, and for those keys it wins over [1] and [3].
//   - "? [9]" for a Disabled EXTERNAL key is OK: [9] only rejects keys that
//     cannot have imported material. (The ImportKeyMaterial API reference
//     says the key state "must be PendingImport or Enabled"; the table is
//     what this test follows.)
//   - RotateKeyOnDemand, ListKeyRotations and ListRetirableGrants have no
//     row; ksReference says which row each borrows and why.

// Key states the matrix reaches through the API.
const (
	ksEnabled         = "Enabled"
	ksDisabled        = "Disabled"
	ksPendingDeletion = "PendingDeletion"
	ksPendingImport   = "PendingImport"
)

var ksStates = []string{ksEnabled, ksDisabled, ksPendingDeletion, ksPendingImport}

// ksRow is one row of key-states.md: the cell of each reachable column as
// written there, and the line of the row.
type ksRow struct {
	line  int // 0: the operation has no row; see the comment at its entry
	cells map[string]string
}

func ksRowOf(line int, enabled, disabled, pendingDeletion, pendingImport string) ksRow {
	return ksRow{line: line, cells: map[string]string{
		ksEnabled: enabled, ksDisabled: disabled, ksPendingDeletion: pendingDeletion, ksPendingImport: pendingImport}}
}

// ksReference transcribes key-states.md, columns Enabled | Disabled |
// Pending deletion | Pending import, cell text as written there (spaces
// do not matter). The number is the line of the row in key-states.md.
var ksReference = map[string]ksRow{
	"CancelKeyDeletion":                   ksRowOf(10, "FAIL[4]", "FAIL[4]", "OK", "FAIL[4]"),
	"CreateAlias":                         ksRowOf(11, "OK", "OK", "FAIL[3]", "OK"),
	"CreateGrant":                         ksRowOf(12, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"Decrypt":                             ksRowOf(13, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"DeleteAlias":                         ksRowOf(14, "OK", "OK", "OK", "OK"),
	"DeleteImportedKeyMaterial":           ksRowOf(15, "OK [9]", "OK [9]", "OK [9]", "OK (No effect)"),
	"DescribeKey":                         ksRowOf(16, "OK", "OK", "OK", "OK"),
	"DisableKey":                          ksRowOf(17, "OK", "OK", "FAIL[3]", "FAIL[5]"),
	"DisableKeyRotation":                  ksRowOf(18, "? [7]", "FAIL [1] or [7]", "FAIL [3] or [7]", "FAIL[6]"),
	"EnableKey":                           ksRowOf(19, "OK", "OK", "FAIL[3]", "FAIL[5]"),
	"EnableKeyRotation":                   ksRowOf(20, "? [7]", "FAIL [1] or [7]", "FAIL [3] or [7]", "FAIL[6]"),
	"Encrypt":                             ksRowOf(21, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"GenerateDataKey":                     ksRowOf(22, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"GenerateDataKeyPair":                 ksRowOf(23, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"GenerateDataKeyPairWithoutPlaintext": ksRowOf(24, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"GenerateDataKeyWithoutPlaintext":     ksRowOf(25, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"GenerateMac":                         ksRowOf(26, "OK", "FAIL[1]", "FAIL [2] or [3]", "N/A"),
	"GetKeyPolicy":                        ksRowOf(27, "OK", "OK", "OK", "OK"),
	"GetKeyRotationStatus":                ksRowOf(28, "? [7]", "? [7]", "? [7]", "FAIL[6]"),
	"GetParametersForImport":              ksRowOf(29, "? [9]", "? [9]", "FAIL [8] or [9]", "OK"),
	"GetPublicKey":                        ksRowOf(30, "OK", "FAIL [1]", "FAIL [2] or [3]", "N/A"),
	"ImportKeyMaterial":                   ksRowOf(31, "? [9]", "? [9]", "FAIL [8] or [9]", "OK"),
	"ListAliases":                         ksRowOf(32, "OK", "OK", "OK", "OK"),
	"ListGrants":                          ksRowOf(33, "OK", "OK", "OK", "OK"),
	"ListKeyPolicies":                     ksRowOf(34, "OK", "OK", "OK", "OK"),
	"ListResourceTags":                    ksRowOf(35, "OK", "OK", "OK", "OK"),
	"PutKeyPolicy":                        ksRowOf(36, "OK", "OK", "OK", "OK"),
	"ReEncrypt":                           ksRowOf(37, "OK", "FAIL[1]", "FAIL [2] or [3]", "FAIL[5]"),
	"RetireGrant":                         ksRowOf(39, "OK", "OK", "OK", "OK"),
	"RevokeGrant":                         ksRowOf(40, "OK", "OK", "OK", "OK"),
	"ScheduleKeyDeletion":                 ksRowOf(41, "OK", "OK", "FAIL[3]", "OK"),
	"Sign":                                ksRowOf(42, "OK", "FAIL [1]", "FAIL [2] or [3]", "N/A"),
	"TagResource":                         ksRowOf(43, "OK", "OK", "FAIL[3]", "OK"),
	"UntagResource":                       ksRowOf(44, "OK", "OK", "FAIL[3]", "OK"),
	"UpdateAlias":                         ksRowOf(45, "OK", "OK", "?[10]", "OK"),
	"UpdateKeyDescription":                ksRowOf(46, "OK", "OK", "FAIL[3]", "OK"),
	"Verify":                              ksRowOf(48, "OK", "FAIL [1]", "FAIL [2] or [3]", "N/A"),
	"VerifyMac":                           ksRowOf(49, "OK", "FAIL[1]", "FAIL [2] or [3]", "N/A"),

	// Operations key-states.md has no row for. RotateKeyOnDemand belongs to
	// the rotation family of EnableKeyRotation (API reference: "On-demand
	// key rotation is supported only on symmetric encryption KMS keys ...
	// must be in a compatible key state"; its errors are DisabledException,
	// KMSInvalidStateException, UnsupportedOperationException), so it gets
	// the EnableKeyRotation row. ListKeyRotations is the read of the same
	// family and gets the GetKeyRotationStatus row. ListRetirableGrants
	// names no key at all (only a retiring principal); it lists grants of
	// keys in every state.
	"RotateKeyOnDemand":   ksRowOf(0, "? [7]", "FAIL [1] or [7]", "FAIL [3] or [7]", "FAIL[6]"),
	"ListKeyRotations":    ksRowOf(0, "? [7]", "? [7]", "? [7]", "FAIL[6]"),
	"ListRetirableGrants": ksRowOf(0, "OK", "OK", "OK", "OK"),
}

// ksNote is a note of key-states.md: the error, and the message where the
// note gives it (%s is the key ARN; "" means the note gives no message).
type ksNote struct {
	code string
	msg  string
}

// ksNotes transcribes the notes [1]..[10] of key-states.md (lines 52-61).
// The messages of [2] and [3] read "is pending deletion (or pending replica
// deletion)": without multi-Region keys only the first form applies. [11]
// to [15] belong to the columns left out.
var ksNotes = map[int]ksNote{
	1:  {"DisabledException", "%s is disabled."},
	2:  {"DisabledException", "%s is pending deletion."},
	3:  {"KMSInvalidStateException", "%s is pending deletion."},
	4:  {"KMSInvalidStateException", "%s is not pending deletion."},
	5:  {"KMSInvalidStateException", "%s is pending import."},
	6:  {"UnsupportedOperationException", "%s origin is EXTERNAL which is not valid for this operation."},
	7:  {"UnsupportedOperationException", ""}, // imported key material or custom key store
	8:  {"KMSInvalidStateException", ""},      // the key has imported key material
	9:  {"UnsupportedOperationException", ""}, // the key cannot or does not have imported key material
	10: {"KMSInvalidStateException", "%s is pending deletion."},
}

// ksKind is a type of key and the states the matrix puts it in.
type ksKind struct {
	name   string
	spec   types.KeySpec
	usage  types.KeyUsageType
	origin types.OriginType
	// imported: an EXTERNAL key gets material in its setup (its
	// PendingImport is reached with DeleteImportedKeyMaterial); an EXTERNAL
	// key without it never had material (PendingImport straight from
	// CreateKey Origin EXTERNAL), so it has no ciphertexts or grants and
	// the operations that need them are not run on it.
	imported bool
	states   []string
}

func (k *ksKind) external() bool { return k.origin == types.OriginTypeExternal }

// hasArtifacts: the key was usable once, so setup made a ciphertext,
// signature or MAC and grants under it.
func (k *ksKind) hasArtifacts() bool { return !k.external() || k.imported }

func (k *ksKind) encryption() bool { return k.usage == types.KeyUsageTypeEncryptDecrypt }
func (k *ksKind) symmetricEncryption() bool {
	return k.spec == types.KeySpecSymmetricDefault && k.usage == types.KeyUsageTypeEncryptDecrypt
}
func (k *ksKind) rsaEncryption() bool {
	return k.usage == types.KeyUsageTypeEncryptDecrypt && !k.symmetricEncryption()
}
func (k *ksKind) signing() bool    { return k.usage == types.KeyUsageTypeSignVerify }
func (k *ksKind) mac() bool        { return k.usage == types.KeyUsageTypeGenerateVerifyMac }
func (k *ksKind) asymmetric() bool { return k.signing() || k.rsaEncryption() }

// rotationUnsupported is the condition of note [7] ("If the KMS key has
// imported key material or is in a custom key store"), together with the
// key types the API reference of EnableKeyRotation, DisableKeyRotation,
// GetKeyRotationStatus and RotateKeyOnDemand excludes: "Automatic key
// rotation is supported only on symmetric encryption KMS keys. You cannot
// enable automatic rotation of asymmetric KMS keys, HMAC KMS keys, KMS keys
// with imported key material, or KMS keys in a custom key store." Read as
// note [7] is: for such a key the cell is [7] in every column that names
// [7], whatever the state ("FAIL [1] or [7]" is [7] for these keys).
func (k *ksKind) rotationUnsupported() bool { return !k.symmetricEncryption() || k.external() }

// The key types. Only symmetric encryption keys can have Origin EXTERNAL in
// kmsd (CreateKey rejects others), which is what the N/A cells of
// key-states.md assume too: Sign, Verify, GetPublicKey, GenerateMac and
// VerifyMac have no Pending import cell.
var (
	ksSymmetric   = &ksKind{name: "symmetric", spec: types.KeySpecSymmetricDefault, usage: types.KeyUsageTypeEncryptDecrypt, origin: types.OriginTypeAwsKms, states: []string{ksEnabled, ksDisabled, ksPendingDeletion}}
	ksRSASign     = &ksKind{name: "rsa-sign", spec: types.KeySpecRsa2048, usage: types.KeyUsageTypeSignVerify, origin: types.OriginTypeAwsKms, states: []string{ksEnabled, ksDisabled, ksPendingDeletion}}
	ksRSAEncrypt  = &ksKind{name: "rsa-encrypt", spec: types.KeySpecRsa2048, usage: types.KeyUsageTypeEncryptDecrypt, origin: types.OriginTypeAwsKms, states: []string{ksEnabled, ksDisabled, ksPendingDeletion}}
	ksECCSign     = &ksKind{name: "ecc-sign", spec: types.KeySpecEccNistP256, usage: types.KeyUsageTypeSignVerify, origin: types.OriginTypeAwsKms, states: []string{ksEnabled, ksDisabled, ksPendingDeletion}}
	ksHMAC        = &ksKind{name: "hmac", spec: types.KeySpecHmac256, usage: types.KeyUsageTypeGenerateVerifyMac, origin: types.OriginTypeAwsKms, states: []string{ksEnabled, ksDisabled, ksPendingDeletion}}
	ksExternal    = &ksKind{name: "external", spec: types.KeySpecSymmetricDefault, usage: types.KeyUsageTypeEncryptDecrypt, origin: types.OriginTypeExternal, imported: true, states: ksStates}
	ksExternalNew = &ksKind{name: "external-new", spec: types.KeySpecSymmetricDefault, usage: types.KeyUsageTypeEncryptDecrypt, origin: types.OriginTypeExternal, states: []string{ksPendingImport}}

	ksKinds = []*ksKind{ksSymmetric, ksRSASign, ksRSAEncrypt, ksECCSign, ksHMAC, ksExternal, ksExternalNew}
)

// ksWant is the outcome the reference gives for one cell.
type ksWant struct {
	ok    bool
	codes []string // any of these (FAIL [2] or [3] allows either)
	msg   string   // the exact message, "" if the reference gives none
	cite  string
}

var (
	ksFailOne = regexp.MustCompile(`^FAIL\[(\d+)\]$`)
	ksFailTwo = regexp.MustCompile(`^FAIL\[(\d+)\]or\[(\d+)\]$`)
)

// ksExpect interprets the reference cell of op's row for a key of kind in
// state. ok=false with na=true means the reference has no cell (N/A).
func ksExpect(op *ksOp, kind *ksKind, state, arn string) (w ksWant, na bool, err error) {
	row, ok := ksReference[op.row]
	if !ok {
		return w, false, fmt.Errorf("no reference row %q", op.row)
	}
	raw := row.cells[state]
	w.cite = fmt.Sprintf("key-states.md:%d %s/%s = %q", row.line, op.row, state, raw)
	if row.line == 0 {
		w.cite = fmt.Sprintf("%s/%s = %q (no row in key-states.md; see ksReference)", op.row, state, raw)
	}
	note := func(n int) ksWant {
		nt := ksNotes[n]
		msg := ""
		if nt.msg != "" {
			msg = fmt.Sprintf(nt.msg, arn)
		}
		return ksWant{codes: []string{nt.code}, msg: msg, cite: w.cite}
	}
	okWant := ksWant{ok: true, cite: w.cite}
	cell := strings.ReplaceAll(raw, " ", "")
	switch {
	case cell == "OK", cell == "OK(Noeffect)":
		return okWant, false, nil
	case cell == "N/A":
		return w, true, nil
	case cell == "?[7]":
		if kind.rotationUnsupported() {
			return note(7), false, nil
		}
		return okWant, false, nil
	case cell == "?[9]", cell == "OK[9]":
		// [9]: a key that cannot have imported material (Origin AWS_KMS)
		// gets UnsupportedOperationException; an EXTERNAL key works.
		if kind.external() {
			return okWant, false, nil
		}
		return note(9), false, nil
	case cell == "?[10]":
		// [10]: "If the source KMS key is pending deletion, the command
		// succeeds. If the destination KMS key is pending deletion, the
		// command fails".
		if op.role == ksRoleSource {
			return okWant, false, nil
		}
		return note(10), false, nil
	}
	if m := ksFailOne.FindStringSubmatch(cell); m != nil {
		n, _ := strconv.Atoi(m[1])
		return note(n), false, nil
	}
	if m := ksFailTwo.FindStringSubmatch(cell); m != nil {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		switch {
		case a == 2 && b == 3:
			// Both are named for the same cell: either error, the same
			// message.
			w := note(3)
			w.codes = []string{ksNotes[2].code, ksNotes[3].code}
			return w, false, nil
		case b == 7:
			if kind.rotationUnsupported() {
				return note(7), false, nil
			}
			return note(a), false, nil
		case a == 8 && b == 9:
			// [8] if the key has imported material (the EXTERNAL keys of
			// this state had it), [9] if it cannot have any.
			if kind.external() {
				return note(8), false, nil
			}
			return note(9), false, nil
		}
	}
	return w, false, fmt.Errorf("cannot interpret reference cell %q of %s", raw, w.cite)
}

// Roles of the key in operations that take two keys.
const (
	ksRoleSource      = "source"
	ksRoleDestination = "destination"
)

// ksOp is one operation of the matrix.
type ksOp struct {
	name    string // subtest name
	row     string // its row in ksReference
	role    string // for UpdateAlias and ReEncrypt: the role of the key under test
	applies func(*ksKind) bool
	// after is the state the key is in after the operation succeeded from
	// state from ("" when the reference does not say); nil: unchanged. A
	// failed operation never changes the state.
	after func(from string) string
	// run performs the operation on f's key with the real SDK client and
	// checks what it returned when it succeeded (a non-API error then).
	run func(ctx context.Context, c *kms.Client, f *ksFixture) error
	// effect, if set, reports whether the operation's effect is visible
	// afterwards; it must be after a success and must not be after a
	// failure (a rejected request changes nothing).
	effect func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error)
}

func ksAll(*ksKind) bool { return true }

// ksWithArtifacts: operations that need a ciphertext, signature, MAC or
// grant made while the key was usable.
func ksWithArtifacts(k *ksKind) bool { return k.hasArtifacts() }

func ksConst(state string) func(string) string { return func(string) string { return state } }

var (
	ksPlaintext = []byte("key-state matrix plaintext")
	ksMessage   = []byte("key-state matrix message")
	ksGrantee   = "arn:aws:iam::" + testAccount + ":role/ks-grantee"
	ksPolicy    = `{"Version":"2012-10-17","Id":"ks-matrix","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow",` +
		`"Principal":{"AWS":"arn:aws:iam::` + testAccount + `:root"},"Action":"kms:*","Resource":"*"}]}`
)

// ksEncAlg is the encryption algorithm for a key of kind (nil: default).
func ksEncAlg(k *ksKind) types.EncryptionAlgorithmSpec {
	if k.rsaEncryption() {
		return types.EncryptionAlgorithmSpecRsaesOaepSha256
	}
	return ""
}

func ksSignAlg(k *ksKind) types.SigningAlgorithmSpec {
	if k.spec == types.KeySpecRsa2048 {
		return types.SigningAlgorithmSpecRsassaPssSha256
	}
	return types.SigningAlgorithmSpecEcdsaSha256
}

// ksDecryptUnder decrypts blob under key id and compares it with want.
func ksDecryptUnder(ctx context.Context, c *kms.Client, id string, alg types.EncryptionAlgorithmSpec, blob, want []byte) error {
	out, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), CiphertextBlob: blob, EncryptionAlgorithm: alg})
	if err != nil {
		return fmt.Errorf("check: decrypting the result: %v", err)
	}
	if !bytes.Equal(out.Plaintext, want) {
		return errors.New("check: the result does not decrypt to the expected plaintext")
	}
	return nil
}

func ksCheckARN(what, got, want string) error {
	if got != want {
		return fmt.Errorf("check: %s is %q, want %q", what, got, want)
	}
	return nil
}

func ksGrantListed(ctx context.Context, c *kms.Client, keyID, grantID string) (bool, error) {
	var marker *string
	for {
		out, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(keyID), Marker: marker})
		if err != nil {
			return false, fmt.Errorf("check: ListGrants: %v", err)
		}
		for _, g := range out.Grants {
			if aws.ToString(g.GrantId) == grantID {
				return true, nil
			}
		}
		if !out.Truncated {
			return false, nil
		}
		marker = out.NextMarker
	}
}

func ksGrantNamed(ctx context.Context, c *kms.Client, keyID, name string) (bool, error) {
	out, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(keyID), Limit: aws.Int32(100)})
	if err != nil {
		return false, fmt.Errorf("check: ListGrants: %v", err)
	}
	return slices.ContainsFunc(out.Grants, func(g types.GrantListEntry) bool { return aws.ToString(g.Name) == name }), nil
}

func ksTags(ctx context.Context, c *kms.Client, keyID string) (map[string]string, error) {
	out, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(keyID), Limit: aws.Int32(50)})
	if err != nil {
		return nil, fmt.Errorf("check: ListResourceTags: %v", err)
	}
	tags := map[string]string{}
	for _, tg := range out.Tags {
		tags[aws.ToString(tg.TagKey)] = aws.ToString(tg.TagValue)
	}
	return tags, nil
}

// ksAliasTarget returns the key id an alias points at ("" if none).
func ksAliasTarget(ctx context.Context, c *kms.Client, name string) (string, error) {
	var marker *string
	for {
		out, err := c.ListAliases(ctx, &kms.ListAliasesInput{Marker: marker, Limit: aws.Int32(100)})
		if err != nil {
			return "", fmt.Errorf("check: ListAliases: %v", err)
		}
		for _, a := range out.Aliases {
			if aws.ToString(a.AliasName) == name {
				return aws.ToString(a.TargetKeyId), nil
			}
		}
		if !out.Truncated {
			return "", nil
		}
		marker = out.NextMarker
	}
}

// ksWrap wraps material for ImportKeyMaterial with RSAES_OAEP_SHA_256, as
// an AWS KMS BYOK client does.
func ksWrap(publicKeyDER, material []byte) ([]byte, error) {
	pk, err := x509.ParsePKIXPublicKey(publicKeyDER)
	if err != nil {
		return nil, fmt.Errorf("setup: wrapping public key: %v", err)
	}
	pub, ok := pk.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("setup: wrapping public key is %T", pk)
	}
	return rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, material, nil)
}

// ksOps is the operation axis. Operations on one key run only on the key
// types they are defined for (Sign on a symmetric key is a key-usage
// question, not a key-state one).
var ksOps = []*ksOp{
	// Cryptographic operations.
	{name: "Encrypt", row: "Encrypt", applies: (*ksKind).encryption, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(f.id), Plaintext: ksPlaintext, EncryptionAlgorithm: ksEncAlg(f.kind)})
		if err != nil {
			return err
		}
		if err := ksCheckARN("KeyId", aws.ToString(out.KeyId), f.arn); err != nil {
			return err
		}
		return ksDecryptUnder(ctx, c, f.id, ksEncAlg(f.kind), out.CiphertextBlob, ksPlaintext)
	}},
	{name: "Decrypt", row: "Decrypt", applies: ksAnd((*ksKind).encryption, ksWithArtifacts), run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(f.id), CiphertextBlob: f.ciphertext, EncryptionAlgorithm: ksEncAlg(f.kind)})
		if err != nil {
			return err
		}
		if !bytes.Equal(out.Plaintext, ksPlaintext) {
			return errors.New("check: wrong plaintext")
		}
		return ksCheckARN("KeyId", aws.ToString(out.KeyId), f.arn)
	}},
	{name: "ReEncrypt(source)", row: "ReEncrypt", role: ksRoleSource, applies: ksAnd((*ksKind).encryption, ksWithArtifacts), run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		peer := f.env.symPeer
		out, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: f.ciphertext, SourceKeyId: aws.String(f.id),
			SourceEncryptionAlgorithm: ksEncAlg(f.kind), DestinationKeyId: aws.String(peer.id)})
		if err != nil {
			return err
		}
		if err := ksCheckARN("SourceKeyId", aws.ToString(out.SourceKeyId), f.arn); err != nil {
			return err
		}
		return ksDecryptUnder(ctx, c, peer.id, "", out.CiphertextBlob, ksPlaintext)
	}},
	{name: "ReEncrypt(destination)", row: "ReEncrypt", role: ksRoleDestination, applies: (*ksKind).encryption, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		peer := f.env.symPeer
		out, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: peer.ciphertext, SourceKeyId: aws.String(peer.id),
			DestinationKeyId: aws.String(f.id), DestinationEncryptionAlgorithm: ksEncAlg(f.kind)})
		if err != nil {
			return err
		}
		if err := ksCheckARN("KeyId", aws.ToString(out.KeyId), f.arn); err != nil {
			return err
		}
		return ksDecryptUnder(ctx, c, f.id, ksEncAlg(f.kind), out.CiphertextBlob, ksPlaintext)
	}},
	{name: "GenerateDataKey", row: "GenerateDataKey", applies: (*ksKind).symmetricEncryption, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(f.id), KeySpec: types.DataKeySpecAes256})
		if err != nil {
			return err
		}
		if len(out.Plaintext) != 32 {
			return fmt.Errorf("check: data key of %d bytes", len(out.Plaintext))
		}
		return ksDecryptUnder(ctx, c, f.id, "", out.CiphertextBlob, out.Plaintext)
	}},
	{name: "GenerateDataKeyWithoutPlaintext", row: "GenerateDataKeyWithoutPlaintext", applies: (*ksKind).symmetricEncryption, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(f.id), KeySpec: types.DataKeySpecAes256})
		if err != nil {
			return err
		}
		dk, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(f.id), CiphertextBlob: out.CiphertextBlob})
		if err != nil || len(dk.Plaintext) != 32 {
			return fmt.Errorf("check: the data key does not decrypt to 32 bytes: %v", err)
		}
		return nil
	}},
	{name: "GenerateDataKeyPair", row: "GenerateDataKeyPair", applies: (*ksKind).symmetricEncryption, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(f.id), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
		if err != nil {
			return err
		}
		if _, err := x509.ParsePKIXPublicKey(out.PublicKey); err != nil {
			return fmt.Errorf("check: public key: %v", err)
		}
		return ksDecryptUnder(ctx, c, f.id, "", out.PrivateKeyCiphertextBlob, out.PrivateKeyPlaintext)
	}},
	{name: "GenerateDataKeyPairWithoutPlaintext", row: "GenerateDataKeyPairWithoutPlaintext", applies: (*ksKind).symmetricEncryption, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: aws.String(f.id), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
		if err != nil {
			return err
		}
		if _, err := x509.ParsePKIXPublicKey(out.PublicKey); err != nil {
			return fmt.Errorf("check: public key: %v", err)
		}
		priv, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(f.id), CiphertextBlob: out.PrivateKeyCiphertextBlob})
		if err != nil {
			return fmt.Errorf("check: decrypting the private key: %v", err)
		}
		if _, err := x509.ParsePKCS8PrivateKey(priv.Plaintext); err != nil {
			return fmt.Errorf("check: private key: %v", err)
		}
		return nil
	}},
	{name: "Sign", row: "Sign", applies: (*ksKind).signing, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(f.id), Message: ksMessage, MessageType: types.MessageTypeRaw, SigningAlgorithm: ksSignAlg(f.kind)})
		if err != nil {
			return err
		}
		return ksVerifyOutside(f, out.Signature)
	}},
	{name: "Verify", row: "Verify", applies: (*ksKind).signing, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(f.id), Message: ksMessage, MessageType: types.MessageTypeRaw,
			Signature: f.signature, SigningAlgorithm: ksSignAlg(f.kind)})
		if err != nil {
			return err
		}
		if !out.SignatureValid {
			return errors.New("check: SignatureValid is false")
		}
		return nil
	}},
	{name: "GetPublicKey", row: "GetPublicKey", applies: (*ksKind).asymmetric, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		if !bytes.Equal(out.PublicKey, f.publicKey) {
			return errors.New("check: another public key than while the key was enabled")
		}
		return nil
	}},
	{name: "GenerateMac", row: "GenerateMac", applies: (*ksKind).mac, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(f.id), Message: ksMessage, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		if err != nil {
			return err
		}
		if !bytes.Equal(out.Mac, f.mac) {
			return errors.New("check: HMAC differs from the one made while the key was enabled")
		}
		return nil
	}},
	{name: "VerifyMac", row: "VerifyMac", applies: (*ksKind).mac, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(f.id), Message: ksMessage, Mac: f.mac, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		if err != nil {
			return err
		}
		if !out.MacValid {
			return errors.New("check: MacValid is false")
		}
		return nil
	}},

	// Key management.
	{name: "DescribeKey", row: "DescribeKey", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		return ksCheckARN("Arn", aws.ToString(out.KeyMetadata.Arn), f.arn)
	}},
	{name: "UpdateKeyDescription", row: "UpdateKeyDescription", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String(f.id), Description: aws.String("ks-updated")})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(f.id)})
		if err != nil {
			return false, fmt.Errorf("check: DescribeKey: %v", err)
		}
		return aws.ToString(out.KeyMetadata.Description) == "ks-updated", nil
	}},
	{name: "EnableKey", row: "EnableKey", applies: ksAll, after: ksConst(ksEnabled), run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(f.id)})
		return err
	}},
	{name: "DisableKey", row: "DisableKey", applies: ksAll, after: ksConst(ksDisabled), run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(f.id)})
		return err
	}},
	{name: "ScheduleKeyDeletion", row: "ScheduleKeyDeletion", applies: ksAll, after: ksConst(ksPendingDeletion), run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(f.id), PendingWindowInDays: aws.Int32(7)})
		if err != nil {
			return err
		}
		if out.KeyState != types.KeyStatePendingDeletion {
			return fmt.Errorf("check: KeyState %s in the answer", out.KeyState)
		}
		return nil
	}},
	// The transitions of key-states.md: CancelKeyDeletion -> Disabled (the
	// EXTERNAL key here had material when it was scheduled).
	{name: "CancelKeyDeletion", row: "CancelKeyDeletion", applies: ksAll, after: ksConst(ksDisabled), run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(f.id)})
		return err
	}},

	// Tags.
	{name: "TagResource", row: "TagResource", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(f.id), Tags: []types.Tag{{TagKey: aws.String("ks-added"), TagValue: aws.String("1")}}})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		tags, err := ksTags(ctx, c, f.id)
		_, ok := tags["ks-added"]
		return ok, err
	}},
	{name: "ListResourceTags", row: "ListResourceTags", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(out.Tags, func(tg types.Tag) bool { return aws.ToString(tg.TagKey) == "ks-keep" }) {
			return errors.New("check: the tag ks-keep of CreateKey is not listed")
		}
		return nil
	}},
	{name: "UntagResource", row: "UntagResource", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(f.id), TagKeys: []string{"ks-drop"}})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		tags, err := ksTags(ctx, c, f.id)
		_, ok := tags["ks-drop"]
		return !ok, err
	}},

	// Aliases.
	{name: "CreateAlias", row: "CreateAlias", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/ks-created-" + f.id), TargetKeyId: aws.String(f.id)})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		target, err := ksAliasTarget(ctx, c, "alias/ks-created-"+f.id)
		return target == f.id, err
	}},
	{name: "ListAliases", row: "ListAliases", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(out.Aliases, func(a types.AliasListEntry) bool { return aws.ToString(a.AliasName) == f.aliasKeep }) {
			return fmt.Errorf("check: alias %s not listed", f.aliasKeep)
		}
		return nil
	}},
	{name: "DeleteAlias", row: "DeleteAlias", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(f.aliasDelete)})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		target, err := ksAliasTarget(ctx, c, f.aliasDelete)
		return target == "", err
	}},
	// ?[10]: the key under test is the alias's current key.
	{name: "UpdateAlias(source)", row: "UpdateAlias", role: ksRoleSource, applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(f.aliasMove), TargetKeyId: aws.String(f.peer.id)})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		target, err := ksAliasTarget(ctx, c, f.aliasMove)
		return target == f.peer.id, err
	}},
	// ?[10]: the key under test is the alias's new key.
	{name: "UpdateAlias(destination)", row: "UpdateAlias", role: ksRoleDestination, applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		name := "alias/ks-to-" + f.id
		if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(f.peer.id)}); err != nil {
			return fmt.Errorf("setup: CreateAlias on the peer: %v", err)
		}
		_, err := c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(f.id)})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		target, err := ksAliasTarget(ctx, c, "alias/ks-to-"+f.id)
		return target == f.id, err
	}},

	// Key policies.
	{name: "GetKeyPolicy", row: "GetKeyPolicy", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(f.id), PolicyName: aws.String("default")})
		if err != nil {
			return err
		}
		if !strings.Contains(aws.ToString(out.Policy), "Statement") {
			return fmt.Errorf("check: policy %q", aws.ToString(out.Policy))
		}
		return nil
	}},
	{name: "PutKeyPolicy", row: "PutKeyPolicy", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(f.id), PolicyName: aws.String("default"), Policy: aws.String(ksPolicy)})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		out, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(f.id), PolicyName: aws.String("default")})
		if err != nil {
			return false, fmt.Errorf("check: GetKeyPolicy: %v", err)
		}
		return strings.Contains(aws.ToString(out.Policy), "ks-matrix"), nil
	}},
	{name: "ListKeyPolicies", row: "ListKeyPolicies", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		if !slices.Equal(out.PolicyNames, []string{"default"}) {
			return fmt.Errorf("check: policy names %v", out.PolicyNames)
		}
		return nil
	}},

	// Grants.
	{name: "CreateGrant", row: "CreateGrant", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(f.id), GranteePrincipal: aws.String(ksGrantee),
			Operations: []types.GrantOperation{types.GrantOperationDescribeKey}, Name: aws.String("ks-created")})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		return ksGrantNamed(ctx, c, f.id, "ks-created")
	}},
	{name: "ListGrants", row: "ListGrants", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		if f.keepGrant != "" && !slices.ContainsFunc(out.Grants, func(g types.GrantListEntry) bool { return aws.ToString(g.GrantId) == f.keepGrant }) {
			return errors.New("check: the grant made while the key was enabled is not listed")
		}
		return nil
	}},
	{name: "ListRetirableGrants", row: "ListRetirableGrants", applies: ksWithArtifacts, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(f.retiring)})
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(out.Grants, func(g types.GrantListEntry) bool { return aws.ToString(g.GrantId) == f.keepGrant }) {
			return errors.New("check: the grant made while the key was enabled is not listed")
		}
		return nil
	}},
	{name: "RetireGrant", row: "RetireGrant", applies: ksWithArtifacts, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(f.arn), GrantId: aws.String(f.retireGrant)})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		listed, err := ksGrantListed(ctx, c, f.id, f.retireGrant)
		return !listed, err
	}},
	{name: "RevokeGrant", row: "RevokeGrant", applies: ksWithArtifacts, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(f.id), GrantId: aws.String(f.revokeGrant)})
		return err
	}, effect: func(ctx context.Context, c *kms.Client, f *ksFixture) (bool, error) {
		listed, err := ksGrantListed(ctx, c, f.id, f.revokeGrant)
		return !listed, err
	}},

	// Rotation.
	{name: "EnableKeyRotation", row: "EnableKeyRotation", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(f.id), RotationPeriodInDays: aws.Int32(100)})
		return err
	}},
	{name: "GetKeyRotationStatus", row: "GetKeyRotationStatus", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		// Setup enabled rotation. API reference: "The key rotation status
		// does not change when you disable a KMS key"; "While a KMS key is
		// pending deletion, its key rotation status is false".
		if want := f.state != ksPendingDeletion; out.KeyRotationEnabled != want {
			return fmt.Errorf("check: KeyRotationEnabled is %v in state %s, want %v", out.KeyRotationEnabled, f.state, want)
		}
		return nil
	}},
	{name: "DisableKeyRotation", row: "DisableKeyRotation", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: aws.String(f.id)})
		return err
	}},
	{name: "RotateKeyOnDemand", row: "RotateKeyOnDemand", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(f.id)})
		if err != nil {
			return err
		}
		return ksCheckARN("KeyId", aws.ToString(out.KeyId), f.id)
	}},
	{name: "ListKeyRotations", row: "ListKeyRotations", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(f.id)})
		return err
	}},

	// Imported key material.
	{name: "GetParametersForImport", row: "GetParametersForImport", applies: ksAll, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		out, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(f.id),
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			return err
		}
		if len(out.ImportToken) == 0 || len(out.PublicKey) == 0 {
			return errors.New("check: no token or public key")
		}
		return ksCheckARN("KeyId", aws.ToString(out.KeyId), f.arn)
	}},
	// A successful import makes a PendingImport key Enabled (the
	// transitions of key-states.md; API reference: the key state must be
	// PendingImport or Enabled and becomes Enabled). What a reimport does to
	// a Disabled key's state the reference does not say.
	{name: "ImportKeyMaterial", row: "ImportKeyMaterial", applies: ksAll, after: func(from string) string {
		switch from {
		case ksPendingImport, ksEnabled:
			return ksEnabled
		}
		return ""
	}, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		// Keys that cannot import get real, well-formed input: the import
		// parameters of another EXTERNAL key.
		params, material := f.env.foreignParams, make([]byte, 32)
		_, _ = rand.Read(material)
		if f.kind.external() {
			params = f.params
			if f.material != nil {
				material = f.material // a reimport must bring the same material
			}
		}
		wrapped, err := ksWrap(params.PublicKey, material)
		if err != nil {
			return err
		}
		_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: aws.String(f.id), ImportToken: params.ImportToken,
			EncryptedKeyMaterial: wrapped, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
		return err
	}},
	// DeleteImportedKeyMaterial: the key becomes PendingImport, except that
	// a key pending deletion stays so (API reference).
	{name: "DeleteImportedKeyMaterial", row: "DeleteImportedKeyMaterial", applies: ksAll, after: func(from string) string {
		if from == ksPendingDeletion {
			return ksPendingDeletion
		}
		return ksPendingImport
	}, run: func(ctx context.Context, c *kms.Client, f *ksFixture) error {
		_, err := c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(f.id)})
		return err
	}},
}

func ksAnd(a, b func(*ksKind) bool) func(*ksKind) bool {
	return func(k *ksKind) bool { return a(k) && b(k) }
}

// ksVerifyOutside checks a signature with the public key and the standard
// library.
func ksVerifyOutside(f *ksFixture, sig []byte) error {
	pk, err := x509.ParsePKIXPublicKey(f.publicKey)
	if err != nil {
		return fmt.Errorf("check: public key: %v", err)
	}
	digest := sha256.Sum256(ksMessage)
	switch pub := pk.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPSS(pub, gocrypto.SHA256, digest[:], sig, nil); err != nil {
			return fmt.Errorf("check: signature does not verify: %v", err)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			return errors.New("check: signature does not verify")
		}
	default:
		return fmt.Errorf("check: public key is %T", pk)
	}
	return nil
}

// ksFixture is a key of one type in one state, with what setup made under
// it while it was usable.
type ksFixture struct {
	env   *ksEnv
	kind  *ksKind
	state string
	id    string
	arn   string
	peer  *ksFixture // an Enabled key of the same type and usage (UpdateAlias)

	ciphertext []byte // ksPlaintext encrypted under the key
	signature  []byte // of ksMessage
	mac        []byte // of ksMessage
	publicKey  []byte

	keepGrant, retireGrant, revokeGrant string
	retiring                            string // retiring principal of its grants

	aliasKeep, aliasDelete, aliasMove string

	params   *kms.GetParametersForImportOutput // EXTERNAL keys
	material []byte                            // imported material (EXTERNAL keys that had some)
}

// ksEnv holds one server's fixtures: one key per type and state, replaced
// only when a cell moved it to another state.
type ksEnv struct {
	c             *kms.Client
	seq           int
	fixtures      map[string]*ksFixture
	peers         map[string]*ksFixture
	symPeer       *ksFixture
	foreignParams *kms.GetParametersForImportOutput
}

func newKsEnv(t *testing.T, srv *testserver.Server) *ksEnv {
	e := &ksEnv{c: srv.Client, fixtures: map[string]*ksFixture{}, peers: map[string]*ksFixture{}}
	e.symPeer = e.newFixture(t, ksSymmetric, ksEnabled)
	e.peers[ksSymmetric.name] = e.symPeer
	other := e.newFixture(t, ksExternalNew, ksPendingImport)
	e.foreignParams = other.params
	return e
}

func (e *ksEnv) fixture(t *testing.T, kind *ksKind, state string) *ksFixture {
	key := kind.name + "/" + state
	if f, ok := e.fixtures[key]; ok {
		return f
	}
	f := e.newFixture(t, kind, state)
	f.peer = e.peer(t, kind)
	e.fixtures[key] = f
	return f
}

// peer returns an Enabled key of the same type and usage as kind: for
// EXTERNAL kinds, a symmetric encryption key (same KeySpec and KeyUsage).
func (e *ksEnv) peer(t *testing.T, kind *ksKind) *ksFixture {
	k := kind
	if kind.external() {
		k = ksSymmetric
	}
	if p, ok := e.peers[k.name]; ok {
		return p
	}
	p := e.newFixture(t, k, ksEnabled)
	e.peers[k.name] = p
	return p
}

// newFixture creates a key of kind and brings it into state through the
// API, making ciphertexts, signatures, MACs, grants and aliases on the way
// while the key is usable.
func (e *ksEnv) newFixture(t *testing.T, kind *ksKind, state string) *ksFixture {
	t.Helper()
	ctx, c := context.Background(), e.c
	e.seq++
	f := &ksFixture{env: e, kind: kind, state: state, retiring: fmt.Sprintf("arn:aws:iam::%s:role/ks-retiring-%d", testAccount, e.seq)}
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: kind.spec, KeyUsage: kind.usage, Origin: kind.origin,
		Tags: []types.Tag{{TagKey: aws.String("ks-keep"), TagValue: aws.String("1")}, {TagKey: aws.String("ks-drop"), TagValue: aws.String("1")}}})
	require.NoError(t, err, "setup: CreateKey %s", kind.name)
	f.id, f.arn = aws.ToString(created.KeyMetadata.KeyId), aws.ToString(created.KeyMetadata.Arn)

	if kind.external() {
		require.Equal(t, types.KeyStatePendingImport, created.KeyMetadata.KeyState, "setup: CreateKey Origin EXTERNAL")
		f.params, err = c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(f.id),
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		require.NoError(t, err, "setup: GetParametersForImport")
		if kind.imported {
			f.material = make([]byte, 32)
			_, _ = rand.Read(f.material)
			wrapped, err := ksWrap(f.params.PublicKey, f.material)
			require.NoError(t, err)
			_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: aws.String(f.id), ImportToken: f.params.ImportToken,
				EncryptedKeyMaterial: wrapped, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
			require.NoError(t, err, "setup: ImportKeyMaterial")
		}
	}

	if kind.hasArtifacts() {
		switch {
		case kind.encryption():
			out, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(f.id), Plaintext: ksPlaintext, EncryptionAlgorithm: ksEncAlg(kind)})
			require.NoError(t, err, "setup: Encrypt")
			f.ciphertext = out.CiphertextBlob
		case kind.signing():
			out, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(f.id), Message: ksMessage, MessageType: types.MessageTypeRaw, SigningAlgorithm: ksSignAlg(kind)})
			require.NoError(t, err, "setup: Sign")
			f.signature = out.Signature
		case kind.mac():
			out, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(f.id), Message: ksMessage, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
			require.NoError(t, err, "setup: GenerateMac")
			f.mac = out.Mac
		}
		if kind.asymmetric() {
			out, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(f.id)})
			require.NoError(t, err, "setup: GetPublicKey")
			f.publicKey = out.PublicKey
		}
		if !kind.rotationUnsupported() {
			_, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(f.id)})
			require.NoError(t, err, "setup: EnableKeyRotation")
		}
		for _, g := range []*string{&f.keepGrant, &f.retireGrant, &f.revokeGrant} {
			out, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(f.id), GranteePrincipal: aws.String(ksGrantee),
				RetiringPrincipal: aws.String(f.retiring), Operations: []types.GrantOperation{types.GrantOperationDescribeKey}})
			require.NoError(t, err, "setup: CreateGrant")
			*g = aws.ToString(out.GrantId)
		}
	}
	for _, a := range []*string{&f.aliasKeep, &f.aliasDelete, &f.aliasMove} {
		e.seq++
		*a = fmt.Sprintf("alias/ks-%d", e.seq)
		_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(*a), TargetKeyId: aws.String(f.id)})
		require.NoError(t, err, "setup: CreateAlias")
	}

	switch {
	case state == ksDisabled:
		_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(f.id)})
		require.NoError(t, err, "setup: DisableKey")
	case state == ksPendingDeletion:
		_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(f.id), PendingWindowInDays: aws.Int32(30)})
		require.NoError(t, err, "setup: ScheduleKeyDeletion")
	case state == ksPendingImport && kind.imported:
		_, err = c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(f.id)})
		require.NoError(t, err, "setup: DeleteImportedKeyMaterial")
	}
	require.Equal(t, state, e.state(t, f.id), "setup: %s key is not %s", kind.name, state)
	return f
}

func (e *ksEnv) state(t *testing.T, id string) string {
	t.Helper()
	out, err := e.c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err, "DescribeKey")
	return string(out.KeyMetadata.KeyState)
}

// TestKeyStateMatrix runs every operation on a key of every type it applies
// to in every state kmsd can reach, and checks the outcome key-states.md
// gives: success, or the error (smithy.APIError.ErrorCode) and message of
// the note, and that a failure leaves the key's state and the operation's
// effect untouched.
func TestKeyStateMatrix(t *testing.T) {
	t.Parallel() // its own server; the cells share fixtures and run in order
	srv := testserver.Start(t)
	env := newKsEnv(t, srv)
	ctx := context.Background()
	for _, op := range ksOps {
		t.Run(op.name, func(t *testing.T) {
			for _, state := range ksStates {
				var kinds []*ksKind
				for _, k := range ksKinds {
					if slices.Contains(k.states, state) && op.applies(k) {
						kinds = append(kinds, k)
					}
				}
				if len(kinds) == 0 {
					continue
				}
				t.Run(state, func(t *testing.T) {
					for _, kind := range kinds {
						t.Run(kind.name, func(t *testing.T) { env.runCell(ctx, t, op, kind, state) })
					}
				})
			}
		})
	}
}

func (e *ksEnv) runCell(ctx context.Context, t *testing.T, op *ksOp, kind *ksKind, state string) {
	f := e.fixture(t, kind, state)
	want, na, err := ksExpect(op, kind, state, f.arn)
	require.NoError(t, err)
	require.False(t, na, "the matrix reaches a cell key-states.md marks N/A: %s on %s in %s", op.name, kind.name, state)

	callErr := op.run(ctx, e.c, f)

	// The state first: a cell that moved the key hands a fresh key to the
	// cells after it, whatever else it got wrong.
	got := e.state(t, f.id)
	if got != state {
		delete(e.fixtures, kind.name+"/"+state)
	}
	wantState := state
	if want.ok && callErr == nil && op.after != nil {
		wantState = op.after(state)
	}
	if wantState != "" && got != wantState {
		t.Errorf("key state after %s: %s, want %s", op.name, got, wantState)
	}

	var apiErr smithy.APIError
	isAPI := errors.As(callErr, &apiErr)
	switch {
	case want.ok && callErr != nil:
		t.Errorf("want success (%s), got %v", want.cite, callErr)
	case !want.ok && callErr == nil:
		t.Errorf("want %s (%s), got success", strings.Join(want.codes, " or "), want.cite)
	case !want.ok && !isAPI:
		t.Errorf("want %s (%s), got a non-API error: %v", strings.Join(want.codes, " or "), want.cite, callErr)
	case !want.ok:
		if !slices.Contains(want.codes, apiErr.ErrorCode()) {
			t.Errorf("want %s (%s), got %s: %s", strings.Join(want.codes, " or "), want.cite, apiErr.ErrorCode(), apiErr.ErrorMessage())
		} else if want.msg != "" && apiErr.ErrorMessage() != want.msg {
			t.Errorf("want message %q (%s), got %q", want.msg, want.cite, apiErr.ErrorMessage())
		}
	}

	if op.effect != nil {
		applied, err := op.effect(ctx, e.c, f)
		require.NoError(t, err)
		succeeded := callErr == nil
		if applied != succeeded {
			t.Errorf("%s: effect visible=%v after success=%v (a rejected request must change nothing)", op.name, applied, succeeded)
		}
	}
}

// TestKeyStateMatrixCoversReference checks the matrix itself: every row of
// ksReference is exercised by an operation, and every cell the matrix runs
// has an interpretation (no N/A, no cell text ksExpect cannot read).
func TestKeyStateMatrixCoversReference(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	for _, op := range ksOps {
		used[op.row] = true
		for _, kind := range ksKinds {
			if !op.applies(kind) {
				continue
			}
			for _, state := range kind.states {
				_, na, err := ksExpect(op, kind, state, keyARNPfx+"x")
				require.NoError(t, err, "%s/%s/%s", op.name, state, kind.name)
				require.False(t, na, "%s/%s/%s is N/A in key-states.md", op.name, state, kind.name)
			}
		}
	}
	for row := range ksReference {
		require.True(t, used[row], "no operation exercises the row %s", row)
	}
}

// Package clusterbench generates replicated-state workloads for the Raft
// and FSM benchmarks (cluster/ and fsm/ _test.go files): commands shaped and
// sized like the ones the service proposes, so throughput and memory figures
// measured with them carry over to a running kmsd.
//
//	# CreateKey commits through a real 3-node cluster (Raft over loopback,
//	# BoltDB with fsync), 64 concurrent callers; "compacting" snapshots
//	# and truncates the log every 2048 entries
//	go test -run '^$' -bench CreateKeyPropose -benchtime 20000x ./cluster/
//	# throughput and latency per tenth of 100,000 keys
//	go test -run '^$' -bench CreateKeyGrowth -benchtime 1x ./cluster/
//	# heap and RSS per key, snapshot allocation and peak (100,000 keys)
//	go test -run '^$' -bench CreateKeyMemory -benchtime 1x ./fsm/
//	# Apply cost with 0, 10,000 and 100,000 keys stored; StateHash at 100,000
//	go test -run '^$' -bench 'ApplyCreateKey|StateHashAfter' -benchtime 10000x ./fsm/
//
// KMSD_BENCH_KEYS and KMSD_BENCH_WORKERS change the key count and callers.
package clusterbench

import (
	"fmt"
	"math/rand/v2"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

// Account and region of the generated keys.
const (
	Account = "111122223333"
	Region  = "us-east-1"
)

// t0 is the first command's time (unix nanoseconds); each command is 1ms
// later than the one before.
const t0 int64 = 1_700_000_000_000_000_000

// CreateKeys generates CreateKey commands like service.CreateKey proposes
// for a symmetric key created by the load generator (bench/cmd/load): a
// random UUID key id and request id, the default key policy, a description,
// no tags, and one version of 32 random bytes really wrapped under a domain
// key (61 bytes). It is deterministic for a seed. Not safe for concurrent
// use.
type CreateKeys struct {
	rng       *rand.ChaCha8
	domainKey *crypto.Secret
	dkID      string
	policy    string
	n         int64
}

// NewCreateKeys returns a generator seeded with seed.
func NewCreateKeys(seed uint64) *CreateKeys {
	var s [32]byte
	for i := range 4 {
		s[i*8] = byte(seed >> (8 * i))
	}
	g := &CreateKeys{rng: rand.NewChaCha8(s)}
	dk := make([]byte, crypto.KeySize)
	g.read(dk)
	g.domainKey = crypto.NewSecret(dk)
	g.dkID = g.uuid()
	// The service's defaultKeyPolicy for Account, byte for byte.
	g.policy = `{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::` + Account + `:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`
	return g
}

// DomainKeyID is the id of the domain key the material is wrapped under.
func (g *CreateKeys) DomainKeyID() string { return g.dkID }

func (g *CreateKeys) read(b []byte) {
	_, _ = g.rng.Read(b) // ChaCha8.Read never fails
}

func (g *CreateKeys) uuid() string {
	var b [16]byte
	g.read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return crypto.FormatKeyID(b, false)
}

// Next returns the next command.
func (g *CreateKeys) Next() *fsm.Command {
	now := t0 + g.n*1_000_000
	g.n++
	id := g.uuid()
	arn := "arn:aws:kms:" + Region + ":" + Account + ":key/" + id
	var vid [16]byte
	g.read(vid[:])
	raw := make([]byte, crypto.KeySize)
	g.read(raw)
	material := crypto.NewSecret(raw)
	clear(raw)
	wrapped, err := crypto.WrapKeyMaterial(g.rng, g.domainKey, g.dkID, arn, vid, material)
	material.Zero()
	if err != nil {
		panic(fmt.Sprintf("clusterbench: wrap material: %v", err)) // only a bad domain key size
	}
	return &fsm.Command{
		Type:      fsm.CmdCreateKey,
		RequestID: g.uuid(),
		Time:      now,
		CreateKey: &fsm.CreateKeyCmd{Key: fsm.Key{
			KeyID:       id,
			ARN:         arn,
			AccountID:   Account,
			CreatedAt:   now,
			Description: "kmsd bench load (CreateKey op)",
			KeyUsage:    "ENCRYPT_DECRYPT",
			KeySpec:     "SYMMETRIC_DEFAULT",
			Origin:      "AWS_KMS",
			KeyManager:  "CUSTOMER",
			State:       fsm.StateEnabled,
			Policy:      g.policy,
			Versions: []fsm.KeyVersion{{
				VersionID:       vid,
				DomainKeyID:     g.dkID,
				WrappedMaterial: wrapped,
				CreatedAt:       now,
			}},
		}},
	}
}

// NextEncoded returns the next command encoded for the Raft log.
func (g *CreateKeys) NextEncoded() []byte {
	b, err := fsm.Encode(g.Next())
	if err != nil {
		panic(fmt.Sprintf("clusterbench: encode: %v", err)) // the command is well formed
	}
	return b
}

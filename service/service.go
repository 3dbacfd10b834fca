// Package service implements the AWS KMS operations: validation beyond the
// wire shapes, key-state rules, key resolution (ids, ARNs, aliases), crypto
// through the crypto package, and mutations proposed as Raft commands
// through a Proposer. It touches neither HTTP nor disks.
package service

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

// Proposer commits a command to the replicated log and returns once this
// node's FSM has applied it. resp is the FSM's Apply result when the
// command was applied through this node, or nil when another node (the
// leader) proposed it for us: the outcome is then read from the local FSM
// by request id. An error means the outcome is unknown; proposing the same
// bytes again (same request id) is safe because Apply deduplicates it, and
// the Proposer does that once across a leader change.
//
// ReadBarrier returns once the local FSM holds every write committed before
// the call, for reads that ask for strong consistency.
type Proposer interface {
	Propose(ctx context.Context, cmd []byte) (resp any, index uint64, err error)
	ReadBarrier(ctx context.Context) error
	IsLeader() bool
}

// Config configures a Service.
type Config struct {
	Region    string
	AccountID string
	FSM       *fsm.FSM
	Proposer  Proposer
	RootKey   *crypto.RootKey
	Logger    *slog.Logger
	// Now is the clock; it defaults to time.Now. Tests move it forward.
	Now func() time.Time
	// Rand is the source of key material, ids and salts; default crypto/rand.
	Rand io.Reader
	// DomainKeyRotation is how old the current domain key may get before the
	// leader adds a new one. Default 24h.
	DomainKeyRotation time.Duration
	// MaterialCacheSize bounds the unwrapped key versions kept in memory.
	MaterialCacheSize int
	// CiphertextFormat is the ciphertext blob format Encrypt, ReEncrypt and
	// GenerateDataKey write: 0 (the default) for crypto.BlobVersion, or 1
	// for the format kmsd wrote before the cached AES-CMAC derivation, which
	// nodes not yet upgraded can open (for a rolling upgrade). Both formats
	// are always opened.
	CiphertextFormat byte
	// OnKeyUse, if set, is called once for each authorized request action
	// on a key (usage metering), with the resolved key id and the KMS
	// action name (Encrypt, ReEncryptFrom, DescribeKey, ...). It counts the
	// attempt: the operation may still fail after authorization. It must be
	// cheap and safe for concurrent use (metrics.Metrics.ObserveKeyRequest).
	OnKeyUse func(keyID, op string)
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	switch {
	case c.Region == "":
		return errors.New("service: region is required")
	case len(c.AccountID) != 12:
		return errors.New("service: account id must be 12 digits")
	case c.FSM == nil || c.Proposer == nil || c.RootKey == nil:
		return errors.New("service: FSM, Proposer and RootKey are required")
	}
	for _, r := range c.AccountID {
		if r < '0' || r > '9' {
			return errors.New("service: account id must be 12 digits")
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = crand.Reader
	}
	if c.DomainKeyRotation <= 0 {
		c.DomainKeyRotation = 24 * time.Hour
	}
	if c.MaterialCacheSize <= 0 {
		c.MaterialCacheSize = 10000
	}
	if c.CiphertextFormat > crypto.BlobVersion {
		return fmt.Errorf("service: ciphertext format %d: this kmsd writes formats 1 to %d", c.CiphertextFormat, crypto.BlobVersion)
	}
	return nil
}

// Service implements the KMS operations of one region.
type Service struct {
	cfg      Config
	fsm      *fsm.FSM
	proposer Proposer
	log      *slog.Logger

	materials   *crypto.MaterialCache
	materialIDs materialIDCache

	dkMu       sync.Mutex
	domainKeys map[string]*crypto.Secret // unwrapped domain keys by id

	policies policyCache // parsed key and identity policies
}

// New builds a Service from a validated Config.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{
		cfg:        cfg,
		fsm:        cfg.FSM,
		proposer:   cfg.Proposer,
		log:        cfg.Logger,
		materials:  crypto.NewMaterialCache(cfg.MaterialCacheSize),
		domainKeys: map[string]*crypto.Secret{},
	}, nil
}

// Close drops every unwrapped secret the service holds.
func (s *Service) Close() {
	s.materials.Purge()
	s.dkMu.Lock()
	for id, dk := range s.domainKeys {
		dk.Zero()
		delete(s.domainKeys, id)
	}
	s.dkMu.Unlock()
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// readBarrier makes a metadata read linearizable when the caller asked for
// it (X-Kmsd-Consistency: strong); other reads use this node's applied state.
func (s *Service) readBarrier(ctx context.Context) error {
	ri, _ := RequestInfoFrom(ctx)
	if ri.Consistency != ConsistencyStrong {
		return nil
	}
	if err := s.proposer.ReadBarrier(ctx); err != nil {
		s.log.Warn("read barrier failed", "err", err)
		return newError(ErrDependencyTimeout, "A strongly consistent read could not be served in time; retry it.")
	}
	return nil
}

// requestID returns the id of the request in ctx, or a fresh one for work
// the service starts itself.
func (s *Service) requestID(ctx context.Context) string {
	if ri, ok := RequestInfoFrom(ctx); ok && ri.RequestID != "" {
		return ri.RequestID
	}
	return s.newUUID()
}

// newUUID draws a random (version 4) UUID.
func (s *Service) newUUID() string {
	var b [16]byte
	s.mustRead(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return crypto.FormatKeyID(b, false)
}

// mustRead fills b from the configured random source. A failing system
// random source leaves nothing safe to do.
func (s *Service) mustRead(b []byte) {
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		panic(fmt.Sprintf("service: random source failed: %v", err))
	}
}

// propose commits cmd and turns the FSM's business error into a KMS error.
func (s *Service) propose(ctx context.Context, cmd *fsm.Command) error {
	if cmd.RequestID == "" {
		cmd.RequestID = s.requestID(ctx)
	}
	if cmd.Time == 0 {
		cmd.Time = s.now().UnixNano()
	}
	b, err := fsm.Encode(cmd)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	resp, _, err := s.proposer.Propose(ctx, b)
	if err != nil {
		s.log.Warn("proposal failed", "type", cmd.Type, "request_id", cmd.RequestID, "err", err)
		return newError(ErrDependencyTimeout, "The request could not be committed in time; retry it.")
	}
	res, ok := resp.(*fsm.Result)
	if resp == nil {
		res, ok = s.fsm.ResultOf(cmd.RequestID)
	}
	if !ok {
		return fmt.Errorf("service: no apply result for request %s (%T)", cmd.RequestID, resp)
	}
	if res.Err != nil {
		return fromFSMError(res.Err)
	}
	return nil
}

// fromFSMError maps the FSM's business errors to KMS errors.
func fromFSMError(e *fsm.Error) error {
	kind := ErrInternal
	switch {
	case errors.Is(e, fsm.ErrNotFound):
		kind = ErrNotFound
	case errors.Is(e, fsm.ErrAlreadyExists):
		kind = ErrAlreadyExists
	case errors.Is(e, fsm.ErrInvalidState):
		kind = ErrInvalidState
	case errors.Is(e, fsm.ErrDisabled):
		kind = ErrDisabled
	case errors.Is(e, fsm.ErrLimitExceeded):
		kind = ErrLimitExceeded
	case errors.Is(e, fsm.ErrPrecondition):
		kind = ErrInvalidState
	case errors.Is(e, fsm.ErrIncorrectKeyMaterial):
		kind = ErrIncorrectKeyMaterial
	case errors.Is(e, fsm.ErrInvalidImportToken):
		kind = ErrInvalidImportToken
	case errors.Is(e, fsm.ErrExpiredImportToken):
		kind = ErrExpiredImportToken
	}
	return &Error{Kind: kind, Message: e.Message}
}

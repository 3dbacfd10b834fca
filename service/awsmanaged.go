package service

import (
	"context"
	"crypto/sha256"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

// AWS managed keys: symmetric encryption keys that kmsd creates on behalf of
// an integrated service, named by the alias alias/aws/<service>. Callers
// cannot create, change or delete them or their aliases; their material
// rotates every 365 days, and that cannot be changed.

const (
	keyManagerAWS = "AWS"
	// awsManagedRotationDays is the fixed rotation period of AWS managed keys.
	awsManagedRotationDays = 365
)

// awsManagedAutoCreate are the services whose alias/aws/<service> key is
// created on first use when a caller names the alias in Encrypt,
// GenerateDataKey* or ReEncrypt (destination), with the name used in the
// key's description.
var awsManagedAutoCreate = map[string]string{
	"dynamodb":       "DynamoDB",
	"ebs":            "EBS",
	"lambda":         "Lambda",
	"rds":            "RDS",
	"s3":             "S3",
	"secretsmanager": "Secrets Manager",
	"sns":            "SNS",
	"sqs":            "SQS",
	"ssm":            "SSM",
}

var awsServiceNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// awsManagedDescription is AWS's description of an AWS managed key.
func awsManagedDescription(serviceName string) string {
	display, ok := awsManagedAutoCreate[serviceName]
	if !ok {
		display = serviceName
	}
	return "Default key that protects my " + display + " data when no other key is defined"
}

// awsManagedKeyID is the key id of a service's AWS managed key. It is
// derived from the account, region and service so that concurrent creations
// (on any node) collide in the FSM instead of leaving a second key behind.
func (s *Service) awsManagedKeyID(serviceName string) string {
	sum := sha256.Sum256([]byte("kmsd aws managed key\x00" + s.cfg.AccountID + "\x00" + s.cfg.Region + "\x00" + serviceName))
	var b [16]byte
	copy(b[:], sum[:16])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return crypto.FormatKeyID(b, false)
}

// AWSManagedKey returns the id of the AWS managed key of serviceName (the key
// alias/aws/<serviceName> names), creating the key and its alias if they do
// not exist yet. It is idempotent and safe to call concurrently, on any node.
// It is an internal path: it does no authorization.
func (s *Service) AWSManagedKey(ctx context.Context, serviceName string) (string, error) {
	if !awsServiceNamePattern.MatchString(serviceName) {
		return "", ValidationError("Service name %q is not valid for an AWS managed key.", serviceName)
	}
	name := reservedAliasPrefix + serviceName
	if a, ok := s.fsm.Alias(name); ok {
		return a.TargetKeyID, nil
	}
	retry, err := s.catchUpAfterMiss(ctx, ErrNotFound)
	if err != nil {
		return "", err
	}
	if retry {
		if a, ok := s.fsm.Alias(name); ok {
			return a.TargetKeyID, nil
		}
	}

	id := s.awsManagedKeyID(serviceName)
	if _, ok := s.fsm.Key(id); !ok {
		if err := s.createAWSManagedKey(ctx, id, serviceName); err != nil && !errors.Is(err, ErrAlreadyExists) {
			return "", err
		}
	}
	// Own request ids: the caller's request (an Encrypt creating the key on
	// first use) proposes two commands, and the FSM deduplicates by id.
	err = s.propose(ctx, &fsm.Command{Type: fsm.CmdCreateAlias, RequestID: s.newUUID(),
		Alias: &fsm.AliasCmd{Name: name, TargetKeyID: id}})
	if errors.Is(err, ErrAlreadyExists) {
		if a, ok := s.fsm.Alias(name); ok {
			return a.TargetKeyID, nil
		}
	}
	if err != nil {
		return "", err
	}
	return id, nil
}

// createAWSManagedKey proposes the AWS managed key id of serviceName.
func (s *Service) createAWSManagedKey(ctx context.Context, id, serviceName string) error {
	dkID, dk, err := s.currentDomainKey(ctx)
	if err != nil {
		return err
	}
	arn := s.keyARN(id)
	now := s.now()
	version, err := s.newKeyVersionFor(dkID, dk, arn, now, specSymmetricDefault)
	if err != nil {
		return err
	}
	key := fsm.Key{
		KeyID:              id,
		ARN:                arn,
		AccountID:          s.cfg.AccountID,
		CreatedAt:          now.UnixNano(),
		Description:        awsManagedDescription(serviceName),
		KeyUsage:           usageEncryptDecrypt,
		KeySpec:            specSymmetricDefault,
		Origin:             originAWSKMS,
		KeyManager:         keyManagerAWS,
		State:              fsm.StateEnabled,
		Policy:             s.defaultKeyPolicy(),
		Versions:           []fsm.KeyVersion{version},
		RotationEnabled:    true,
		RotationPeriodDays: awsManagedRotationDays,
		NextRotation:       now.Add(awsManagedRotationDays * 24 * time.Hour).UnixNano(),
	}
	return s.propose(ctx, &fsm.Command{Type: fsm.CmdCreateKey, RequestID: s.newUUID(), Time: now.UnixNano(),
		CreateKey: &fsm.CreateKeyCmd{Key: key}})
}

// autoCreateService returns the service whose AWS managed key ref names
// (alias/aws/<service> or its alias ARN in this region and account) when
// that service's key is created on first use.
func (s *Service) autoCreateService(ref string) (string, bool) {
	name := ref
	if strings.HasPrefix(ref, "arn:") {
		name = strings.TrimPrefix(ref, "arn:aws:kms:"+s.cfg.Region+":"+s.cfg.AccountID+":")
	}
	svc, ok := strings.CutPrefix(name, reservedAliasPrefix)
	if !ok {
		return "", false
	}
	_, ok = awsManagedAutoCreate[svc]
	return svc, ok
}

// resolveOrCreateManaged is resolveKey(ref, anyKeyRef) for encryption-side
// operations: a missing alias/aws/<service> of an allow-listed service is
// created on first use, as AWS does.
func (s *Service) resolveOrCreateManaged(ctx context.Context, ref string) (*fsm.Key, error) {
	k, err := s.resolveKey(ref, anyKeyRef)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return k, err
	}
	svc, ok := s.autoCreateService(ref)
	if !ok {
		return nil, err
	}
	if _, cerr := s.AWSManagedKey(ctx, svc); cerr != nil {
		return nil, cerr
	}
	return s.resolveKey(ref, anyKeyRef)
}

// checkCustomerManaged rejects operations callers may not perform on AWS
// managed keys.
func checkCustomerManaged(k *fsm.Key) error {
	if k.KeyManager == keyManagerAWS {
		return newError(ErrUnsupportedOp, "%s is an AWS managed key. You cannot perform this operation on an AWS managed key.", k.ARN)
	}
	return nil
}

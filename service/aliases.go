package service

import (
	"context"
	"regexp"
	"strings"
	"time"

	"github.com/kmsd/kmsd/fsm"
)

const (
	reservedAliasPrefix   = "alias/aws/"
	defaultListAliasLimit = 50
	maxListAliasLimit     = 100
)

var aliasNamePattern = regexp.MustCompile(`^[a-zA-Z0-9:/_-]+$`)

// checkAliasName applies AWS's alias naming rules for aliases callers manage.
func checkAliasName(name string) error {
	switch {
	case !strings.HasPrefix(name, aliasPrefix) || len(name) == len(aliasPrefix):
		return newError(ErrInvalidAliasName, "Alias must start with the prefix \"alias/\" followed by a name. Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
	case strings.HasPrefix(name, reservedAliasPrefix):
		return newError(ErrInvalidAliasName, "Alias names cannot begin with alias/aws/. That prefix is reserved for AWS managed keys.")
	case len(name) > 256 || !aliasNamePattern.MatchString(name):
		return newError(ErrInvalidAliasName, "Alias name %s is not valid: use 1-256 of a-z A-Z 0-9 : / _ -.", name)
	}
	return nil
}

// aliasTarget resolves the key an alias may point at: a customer managed
// key named by id or ARN.
func (s *Service) aliasTarget(ctx context.Context, ref, action string) (*fsm.Key, error) {
	k, err := s.resolveKeyFresh(ctx, ref, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, action, ref); err != nil {
		return nil, err
	}
	if k.KeyManager != keyManagerCustomer {
		return nil, newError(ErrAccessDenied, "An alias cannot point at the AWS managed key %s.", k.ARN)
	}
	return k, nil
}

// CreateAlias creates an alias for a customer managed key.
func (s *Service) CreateAlias(ctx context.Context, in *AliasInput) (*Empty, error) {
	if err := checkAliasName(*in.AliasName); err != nil {
		return nil, err
	}
	k, err := s.aliasTarget(ctx, *in.TargetKeyId, "CreateAlias")
	if err != nil {
		return nil, err
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdCreateAlias,
		Alias: &fsm.AliasCmd{Name: *in.AliasName, TargetKeyID: k.KeyID}})
}

// UpdateAlias points an alias at another key of the same type and usage.
func (s *Service) UpdateAlias(ctx context.Context, in *AliasInput) (*Empty, error) {
	if err := checkAliasName(*in.AliasName); err != nil {
		return nil, err
	}
	k, err := s.aliasTarget(ctx, *in.TargetKeyId, "UpdateAlias")
	if err != nil {
		return nil, err
	}
	cur, ok := s.fsm.Alias(*in.AliasName)
	if !ok {
		retry, err := s.catchUpAfterMiss(ctx, ErrNotFound)
		if err != nil {
			return nil, err
		}
		if retry {
			cur, ok = s.fsm.Alias(*in.AliasName)
		}
	}
	if !ok {
		return nil, newError(ErrNotFound, "Alias %s is not found.", s.aliasARN(*in.AliasName))
	}
	if old, ok := s.fsm.Key(cur.TargetKeyID); ok {
		// The caller needs kms:UpdateAlias on the key the alias leaves too.
		if err := s.authorizeKey(ctx, old, "UpdateAlias", *in.AliasName); err != nil {
			return nil, err
		}
	}
	if old, ok := s.fsm.Key(cur.TargetKeyID); ok && (old.KeySpec != k.KeySpec || old.KeyUsage != k.KeyUsage) {
		return nil, ValidationError("Alias %s cannot be changed from a %s %s key to a %s %s key.", *in.AliasName, old.KeySpec, old.KeyUsage, k.KeySpec, k.KeyUsage)
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdUpdateAlias,
		Alias: &fsm.AliasCmd{Name: *in.AliasName, TargetKeyID: k.KeyID}})
}

// DeleteAlias deletes an alias; the key is unaffected.
func (s *Service) DeleteAlias(ctx context.Context, in *DeleteAliasInput) (*Empty, error) {
	name := *in.AliasName
	if strings.HasPrefix(name, reservedAliasPrefix) {
		return nil, newError(ErrInvalidAliasName, "Aliases beginning with alias/aws/ are managed by AWS.")
	}
	a, ok := s.fsm.Alias(name)
	if !ok {
		retry, err := s.catchUpAfterMiss(ctx, ErrNotFound)
		if err != nil {
			return nil, err
		}
		if retry {
			a, ok = s.fsm.Alias(name)
		}
	}
	if !ok {
		return nil, newError(ErrNotFound, "Alias %s is not found.", s.aliasARN(name))
	}
	if k, ok := s.fsm.Key(a.TargetKeyID); ok {
		if err := s.authorizeKey(ctx, k, "DeleteAlias", name); err != nil {
			return nil, err
		}
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdDeleteAlias, Alias: &fsm.AliasCmd{Name: name}})
}

// ListAliases lists aliases in name order, optionally those of one key.
func (s *Service) ListAliases(ctx context.Context, in *ListAliasesInput) (*ListAliasesOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	after, err := decodeMarker("aliases", in.Marker)
	if err != nil {
		return nil, err
	}
	keyID := ""
	if in.KeyId != nil {
		k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
		if err != nil {
			return nil, err
		}
		if err := s.authorizeKey(ctx, k, "ListAliases", *in.KeyId); err != nil {
			return nil, err
		}
		keyID = k.KeyID
	} else if err := s.authorize(ctx, authzRequest{action: "ListAliases"}); err != nil {
		return nil, err
	}
	aliases, more := s.fsm.ListAliases(keyID, after, limitOr(in.Limit, defaultListAliasLimit, maxListAliasLimit))
	out := &ListAliasesOutput{Aliases: make([]AliasListEntry, 0, len(aliases)), Truncated: more}
	for _, a := range aliases {
		out.Aliases = append(out.Aliases, AliasListEntry{
			AliasName:       a.Name,
			AliasArn:        s.aliasARN(a.Name),
			TargetKeyId:     a.TargetKeyID,
			CreationDate:    NewTimestamp(time.Unix(0, a.CreatedAt)),
			LastUpdatedDate: NewTimestamp(time.Unix(0, a.UpdatedAt)),
		})
	}
	if more {
		out.NextMarker = encodeMarker("aliases", aliases[len(aliases)-1].Name)
	}
	return out, nil
}

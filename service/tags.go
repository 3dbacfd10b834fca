package service

import (
	"context"
	"slices"

	"github.com/kmsd/kmsd/fsm"
)

const maxListTagsLimit = 50

// TagResource adds tags to a key or replaces the values of existing ones.
func (s *Service) TagResource(ctx context.Context, in *TagResourceInput) (*Empty, error) {
	k, err := s.resolveKeyFresh(ctx, *in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "TagResource", *in.KeyId); err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	tags, err := checkTags(in.Tags)
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		return nil, newError(ErrTag, "At least one tag is required.")
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdTagResource,
		TagResource: &fsm.TagResourceCmd{KeyID: k.KeyID, Tags: tags}})
}

// UntagResource removes tags from a key; absent tag keys are ignored.
func (s *Service) UntagResource(ctx context.Context, in *UntagResourceInput) (*Empty, error) {
	k, err := s.resolveKeyFresh(ctx, *in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "UntagResource", *in.KeyId); err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	for _, t := range in.TagKeys {
		if n := len([]rune(t)); n == 0 || n > 128 {
			return nil, ValidationError("1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]")
		}
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdUntagResource,
		UntagResource: &fsm.UntagResourceCmd{KeyID: k.KeyID, TagKeys: slices.Clone(in.TagKeys)}})
}

// ListResourceTags lists a key's tags in tag key order.
func (s *Service) ListResourceTags(ctx context.Context, in *ListResourceTagsInput) (*ListResourceTagsOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	k, err := s.resolveKeyFresh(ctx, *in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "ListResourceTags", *in.KeyId); err != nil {
		return nil, err
	}
	after, err := decodeMarker("tags", in.Marker)
	if err != nil {
		return nil, err
	}
	limit := limitOr(in.Limit, maxListTagsLimit, maxListTagsLimit)
	out := &ListResourceTagsOutput{Tags: []Tag{}}
	for _, key := range k.SortedTagKeys() {
		if key <= after {
			continue
		}
		if len(out.Tags) == limit {
			out.Truncated = true
			out.NextMarker = encodeMarker("tags", *out.Tags[len(out.Tags)-1].TagKey)
			break
		}
		tk, tv := key, k.Tags[key]
		out.Tags = append(out.Tags, Tag{TagKey: &tk, TagValue: &tv})
	}
	return out, nil
}

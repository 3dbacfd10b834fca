package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// describeParallelism bounds the concurrent DescribeKey calls of keys list.
const describeParallelism = 8

// keyView is a key as kmsctl shows it (--output json uses these names,
// which follow KMS's KeyMetadata).
type keyView struct {
	KeyID        string            `json:"KeyId"`
	Arn          string            `json:"Arn,omitempty"`
	KeyState     string            `json:"KeyState"`
	Enabled      bool              `json:"Enabled"`
	KeyUsage     string            `json:"KeyUsage,omitempty"`
	KeySpec      string            `json:"KeySpec,omitempty"`
	CreationDate *time.Time        `json:"CreationDate,omitempty"`
	DeletionDate *time.Time        `json:"DeletionDate,omitempty"`
	Description  string            `json:"Description"`
	Aliases      []string          `json:"Aliases"`
	Tags         map[string]string `json:"Tags,omitempty"`
}

func newKeyView(md *types.KeyMetadata) keyView {
	v := keyView{
		KeyID:        deref(md.KeyId),
		Arn:          deref(md.Arn),
		KeyState:     string(md.KeyState),
		Enabled:      md.Enabled,
		KeyUsage:     string(md.KeyUsage),
		KeySpec:      string(md.KeySpec),
		CreationDate: utc(md.CreationDate),
		DeletionDate: utc(md.DeletionDate),
		Description:  deref(md.Description),
		Aliases:      []string{},
	}
	return v
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func keysListCommand() *command {
	return &command{
		name:  "keys list",
		short: "List every key with its state, usage, spec, creation date, aliases and description.",
		run:   keysList,
	}
}

func keysList(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("keys list takes no arguments, got %q", args)
	}
	c := e.client()

	var ids []string
	p := kms.NewListKeysPaginator(c, &kms.ListKeysInput{})
	for p.HasMorePages() {
		rctx, cancel := e.reqCtx(ctx)
		page, err := p.NextPage(rctx)
		cancel()
		if err != nil {
			return err
		}
		for _, k := range page.Keys {
			ids = append(ids, deref(k.KeyId))
		}
	}
	aliases, err := listAliases(ctx, e, c, nil)
	if err != nil {
		return err
	}

	// DescribeKey each, a few at a time, keeping ListKeys' order.
	views := make([]*keyView, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, describeParallelism)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			rctx, cancel := e.reqCtx(ctx)
			defer cancel()
			out, err := c.DescribeKey(rctx, &kms.DescribeKeyInput{KeyId: &id})
			if err != nil {
				var nf *types.NotFoundException
				if !errors.As(err, &nf) { // a key deleted since ListKeys is just gone
					errs[i] = err
				}
				return
			}
			v := newKeyView(out.KeyMetadata)
			if a := aliases[v.KeyID]; len(a) > 0 {
				v.Aliases = a
			}
			views[i] = &v
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	list := make([]keyView, 0, len(views))
	for _, v := range views {
		if v != nil {
			list = append(list, *v)
		}
	}

	if e.json() {
		return e.writeJSON(list)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tSTATE\tUSAGE\tSPEC\tCREATED\tALIASES\tDESCRIPTION")
	for _, v := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sanitize(v.KeyID), orDash(v.KeyState), orDash(v.KeyUsage),
			orDash(v.KeySpec), fmtTime(v.CreationDate), orDash(sanitize(strings.Join(v.Aliases, ","))), orDash(sanitize(v.Description)))
	}
	return tw.Flush()
}

// listAliases returns alias names by target key id, sorted; keyID limits
// the listing to one key (a key id or key ARN).
func listAliases(ctx context.Context, e *env, c *kms.Client, keyID *string) (map[string][]string, error) {
	m := map[string][]string{}
	p := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{KeyId: keyID})
	for p.HasMorePages() {
		rctx, cancel := e.reqCtx(ctx)
		page, err := p.NextPage(rctx)
		cancel()
		if err != nil {
			return nil, err
		}
		for _, a := range page.Aliases {
			if a.TargetKeyId == nil || a.AliasName == nil {
				continue
			}
			m[*a.TargetKeyId] = append(m[*a.TargetKeyId], *a.AliasName)
		}
	}
	for _, names := range m {
		slices.Sort(names)
	}
	return m, nil
}

func keysCreateCommand() *command {
	var (
		description string
		alias       string
		tags        kvFlag
	)
	return &command{
		name:  "keys create",
		short: "Create a symmetric encryption key, optionally with tags and an alias.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&description, "description", "", "description of the key")
			fs.StringVar(&alias, "alias", "", "create this alias (alias/NAME) for the key")
			fs.Var(&tags, "tag", "tag the key with `key=value` (repeatable)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) > 0 {
				return usagef("keys create takes no arguments, got %q", args)
			}
			if alias != "" && !strings.HasPrefix(alias, "alias/") {
				return usagef("--alias %q: must start with alias/", alias)
			}
			tagMap, err := tags.asMap("tag")
			if err != nil {
				return err
			}
			in := &kms.CreateKeyInput{}
			if description != "" {
				in.Description = &description
			}
			for _, p := range tags.pairs {
				in.Tags = append(in.Tags, types.Tag{TagKey: &p[0], TagValue: &p[1]})
			}
			c := e.client()
			rctx, cancel := e.reqCtx(ctx)
			out, err := c.CreateKey(rctx, in)
			cancel()
			if err != nil {
				return err
			}
			v := newKeyView(out.KeyMetadata)
			v.Tags = tagMap
			if alias != "" {
				rctx, cancel := e.reqCtx(ctx)
				_, err := c.CreateAlias(rctx, &kms.CreateAliasInput{AliasName: &alias, TargetKeyId: &v.KeyID})
				cancel()
				if err != nil {
					fmt.Fprintf(e.stderr, "kmsctl: created key %s, but not its alias\n", v.KeyID)
					return err
				}
				v.Aliases = []string{alias}
			}
			return printKey(e, v)
		},
	}
}

func keysDescribeCommand() *command {
	return &command{
		name:  "keys describe",
		args:  "KEY",
		short: "Describe one key, its aliases and tags. KEY is a key id, key ARN, alias name or alias ARN.",
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("keys describe takes one KEY argument, got %d", len(args))
			}
			c := e.client()
			rctx, cancel := e.reqCtx(ctx)
			out, err := c.DescribeKey(rctx, &kms.DescribeKeyInput{KeyId: &args[0]})
			cancel()
			if err != nil {
				return err
			}
			v := newKeyView(out.KeyMetadata)
			aliases, err := listAliases(ctx, e, c, &v.KeyID)
			if err != nil {
				return err
			}
			if a := aliases[v.KeyID]; len(a) > 0 {
				v.Aliases = a
			}
			tp := kms.NewListResourceTagsPaginator(c, &kms.ListResourceTagsInput{KeyId: &v.KeyID})
			for tp.HasMorePages() {
				rctx, cancel := e.reqCtx(ctx)
				page, err := tp.NextPage(rctx)
				cancel()
				if err != nil {
					return err
				}
				for _, t := range page.Tags {
					if v.Tags == nil {
						v.Tags = map[string]string{}
					}
					v.Tags[deref(t.TagKey)] = deref(t.TagValue)
				}
			}
			return printKey(e, v)
		},
	}
}

// printKey shows one key: JSON, or one "FIELD value" line per field.
func printKey(e *env, v keyView) error {
	if e.json() {
		return e.writeJSON(v)
	}
	return writeKeyTable(e.stdout, v)
}

func writeKeyTable(w io.Writer, v keyView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, val string) { fmt.Fprintf(tw, "%s\t%s\n", k, val) }
	row("KEY ID", sanitize(v.KeyID))
	row("ARN", orDash(sanitize(v.Arn)))
	row("STATE", orDash(v.KeyState))
	row("USAGE", orDash(v.KeyUsage))
	row("SPEC", orDash(v.KeySpec))
	row("CREATED", fmtTime(v.CreationDate))
	if v.DeletionDate != nil {
		row("DELETION", fmtTime(v.DeletionDate))
	}
	row("DESCRIPTION", orDash(sanitize(v.Description)))
	row("ALIASES", orDash(sanitize(strings.Join(v.Aliases, ", "))))
	keys := make([]string, 0, len(v.Tags))
	for k := range v.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tags := make([]string, len(keys))
	for i, k := range keys {
		tags[i] = k + "=" + v.Tags[k]
	}
	row("TAGS", orDash(sanitize(strings.Join(tags, ", "))))
	return tw.Flush()
}

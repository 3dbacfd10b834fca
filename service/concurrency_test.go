package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// TestConcurrentMixedOperations runs 16 goroutines of 25 mixed operations
// each against one node (run it with -race). Operations on keys that other
// goroutines disable may fail with DisabledException; nothing else may fail,
// and the node's final state adds up.
func TestConcurrentMixedOperations(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	// Shared keys every goroutine uses and toggles.
	const sharedKeys = 3
	var shared []string
	for i := 0; i < sharedKeys; i++ {
		id, _ := mkKey(t, c)
		mkAlias(t, c, fmt.Sprintf("alias/shared-%d", i), id)
		shared = append(shared, id)
	}

	const workers, opsPerWorker = 16, 25
	var creates atomic.Int64
	var disabledSeen atomic.Int64
	errs := make(chan error, workers*opsPerWorker)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			var own []string // keys this worker created; only it touches them
			fail := func(op string, err error) {
				errs <- fmt.Errorf("worker %d %s: %w", w, op, err)
			}
			// tolerate accepts the errors a shared key that another worker
			// disabled may cause.
			tolerate := func(op string, err error) bool {
				if err == nil {
					return true
				}
				var de *types.DisabledException
				if errors.As(err, &de) {
					disabledSeen.Add(1)
					return false
				}
				fail(op, err)
				return false
			}
			for i := 0; i < opsPerWorker; i++ {
				key := shared[r.IntN(sharedKeys)]
				if len(own) > 0 && r.IntN(2) == 0 {
					key = own[r.IntN(len(own))]
				}
				ref := key
				if r.IntN(3) == 0 {
					ref = keyARNPfx + key
				}
				switch op := r.IntN(7); op {
				case 0: // CreateKey
					out, err := c.CreateKey(ctx, &kms.CreateKeyInput{
						Description: aws.String(fmt.Sprintf("worker %d op %d", w, i)),
						Tags:        []types.Tag{{TagKey: aws.String("worker"), TagValue: aws.String(fmt.Sprint(w))}},
					})
					if err != nil {
						fail("CreateKey", err)
						continue
					}
					creates.Add(1)
					own = append(own, aws.ToString(out.KeyMetadata.KeyId))
				case 1, 2: // Encrypt then Decrypt
					pt := []byte(fmt.Sprintf("w%d-i%d-%d", w, i, r.Uint64()))
					ectx := map[string]string{"w": fmt.Sprint(w), "i": fmt.Sprint(i)}
					enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ref), Plaintext: pt, EncryptionContext: ectx})
					if !tolerate("Encrypt", err) {
						continue
					}
					if aws.ToString(enc.KeyId) != keyARNPfx+key {
						fail("Encrypt", fmt.Errorf("KeyId %s, want the ARN of %s", aws.ToString(enc.KeyId), key))
					}
					dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ectx})
					if !tolerate("Decrypt", err) {
						continue
					}
					if !bytes.Equal(dec.Plaintext, pt) {
						fail("Decrypt", fmt.Errorf("plaintext mismatch"))
					}
				case 3: // GenerateDataKey
					gdk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(ref), KeySpec: types.DataKeySpecAes256})
					if !tolerate("GenerateDataKey", err) {
						continue
					}
					if len(gdk.Plaintext) != 32 {
						fail("GenerateDataKey", fmt.Errorf("%d bytes", len(gdk.Plaintext)))
					}
				case 4: // Disable then Enable
					if _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(ref)}); err != nil {
						fail("DisableKey", err)
					}
					if _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(ref)}); err != nil {
						fail("EnableKey", err)
					}
				case 5: // Tag, untag
					tk := fmt.Sprintf("w%02d", w)
					if _, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(ref),
						Tags: []types.Tag{{TagKey: aws.String(tk), TagValue: aws.String(fmt.Sprint(i))}}}); err != nil {
						fail("TagResource", err)
					}
					if r.IntN(2) == 0 {
						if _, err := c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(ref), TagKeys: []string{tk}}); err != nil {
							fail("UntagResource", err)
						}
					}
				case 6: // Reads
					md, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(fmt.Sprintf("alias/shared-%d", r.IntN(sharedKeys)))})
					if err != nil {
						fail("DescribeKey", err)
					} else if s := md.KeyMetadata.KeyState; s != types.KeyStateEnabled && s != types.KeyStateDisabled {
						fail("DescribeKey", fmt.Errorf("state %s", s))
					}
					if _, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(5)}); err != nil {
						fail("ListKeys", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	require.Empty(t, all, "unexpected errors")
	t.Logf("%d keys created, %d operations refused with DisabledException", creates.Load(), disabledSeen.Load())

	// Every worker enabled what it disabled last: all keys end Enabled.
	ids := listAllKeys(t, c)
	require.Len(t, ids, sharedKeys+int(creates.Load()))
	for _, id := range ids {
		md := describe(t, c, id)
		require.Equal(t, types.KeyStateEnabled, md.KeyState, id)
		require.True(t, md.Enabled, id)
	}
	for i, id := range shared {
		require.Equal(t, id, aws.ToString(describe(t, c, fmt.Sprintf("alias/shared-%d", i)).KeyId))
	}
	// Tags are consistent (at most one per worker, value in range).
	for _, id := range shared {
		out, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		require.LessOrEqual(t, len(out.Tags), workers)
	}
}

// TestConcurrentAliasCreation races many CreateAlias calls for the same
// names: exactly one wins each name, the others get AlreadyExistsException.
func TestConcurrentAliasCreation(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	var keys []string
	for i := 0; i < 4; i++ {
		id, _ := mkKey(t, c)
		keys = append(keys, id)
	}
	const names, racers = 5, 8
	var wins [names]atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, names*racers)
	for n := 0; n < names; n++ {
		for r := 0; r < racers; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(fmt.Sprintf("alias/race-%d", n)), TargetKeyId: aws.String(keys[r%len(keys)])})
				var ae *types.AlreadyExistsException
				switch {
				case err == nil:
					wins[n].Add(1)
				case errors.As(err, &ae):
				default:
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for n := range wins {
		require.Equal(t, int32(1), wins[n].Load(), "alias/race-%d", n)
	}
	require.Len(t, listAllAliases(t, c, nil), names)
}

// TestConcurrentFirstKeysAndDeletion creates the first keys of a fresh node
// concurrently (racing to create the region's first domain key), then
// races ScheduleKeyDeletion on one key: exactly one call wins.
func TestConcurrentFirstKeysAndDeletion(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	const n = 16
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
			errs[i] = err
			if err == nil {
				ids[i] = aws.ToString(out.KeyMetadata.KeyId)
			}
		}()
	}
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i])
	}
	require.ElementsMatch(t, ids, listAllKeys(t, c))
	for _, id := range ids {
		blob := encrypt(t, c, id, []byte(id), nil)
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
		require.NoError(t, err)
		require.Equal(t, id, string(dec.Plaintext))
	}

	var won, lost atomic.Int32
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(ids[0]), PendingWindowInDays: aws.Int32(int32(7 + i))})
			var ise *types.KMSInvalidStateException
			switch {
			case err == nil:
				won.Add(1)
			case errors.As(err, &ise):
				lost.Add(1)
			default:
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for i := range errs {
		require.NoError(t, errs[i])
	}
	require.Equal(t, int32(1), won.Load())
	require.Equal(t, int32(n-1), lost.Load())
	md := describe(t, c, ids[0])
	require.Equal(t, types.KeyStatePendingDeletion, md.KeyState)
	w := aws.ToInt32(md.PendingDeletionWindowInDays)
	require.True(t, w >= 7 && w < 7+n, "window %d", w)
	requireTimeNear(t, srv.Clock.Now().Add(time.Duration(w)*24*time.Hour), md.DeletionDate, time.Minute)
}

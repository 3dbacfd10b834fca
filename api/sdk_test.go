package api

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsd/kmsd/service"
)

func sdkClient(url string) *kms.Client {
	return kms.New(kms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDSDKTEST", "secret", ""),
		RetryMaxAttempts: 1,
	})
}

func TestAWSSDK(t *testing.T) {
	e := newEnv(t, nil)
	c := sdkClient(e.srv.URL)
	ctx := context.Background()

	out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/x")})
	if err != nil {
		t.Fatalf("DescribeKey: %v", err)
	}
	md := out.KeyMetadata
	if aws.ToString(md.KeyId) != fakeKeyID || aws.ToString(md.Arn) != fakeArn || !md.Enabled ||
		md.KeyState != types.KeyStateEnabled || md.KeySpec != types.KeySpecSymmetricDefault ||
		len(md.EncryptionAlgorithms) != 1 {
		t.Errorf("metadata %+v", md)
	}
	if md.CreationDate == nil || !md.CreationDate.Equal(fixedTime) {
		t.Errorf("CreationDate = %v, want %v", md.CreationDate, fixedTime)
	}
	if info, _ := e.fake.last(); info.Caller.AccessKeyID != "AKIDSDKTEST" || info.RequestID == "" {
		t.Errorf("request info %+v", info)
	}

	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("hello"),
		EncryptionContext: map[string]string{"a": "b"}})
	if err != nil || string(enc.CiphertextBlob) != "ct:hello" || enc.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("Encrypt: %+v %v", enc, err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "hello" {
		t.Fatalf("Decrypt: %+v %v", dec, err)
	}
	sched, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String("k"), PendingWindowInDays: aws.Int32(7)})
	if err != nil || sched.DeletionDate == nil || !sched.DeletionDate.Equal(fixedTime) || aws.ToInt32(sched.PendingWindowInDays) != 7 {
		t.Fatalf("ScheduleKeyDeletion: %+v %v", sched, err)
	}
	if _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String("k")}); err != nil {
		t.Fatalf("EnableKey: %v", err)
	}
	al, err := c.ListAliases(ctx, &kms.ListAliasesInput{})
	if err != nil || len(al.Aliases) != 1 || !al.Aliases[0].CreationDate.Equal(fixedTime) {
		t.Fatalf("ListAliases: %+v %v", al, err)
	}

	// A service error arrives typed.
	e.fake.set(&service.Error{Kind: service.ErrNotFound, Message: "Key 'arn:x' does not exist"}, nil)
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("nope")})
	var nf *types.NotFoundException
	if !errors.As(err, &nf) || nf.ErrorMessage() != "Key 'arn:x' does not exist" {
		t.Fatalf("want *types.NotFoundException, got %T %v", err, err)
	}
	e.fake.set(&service.Error{Kind: service.ErrDisabled, Message: "disabled"}, nil)
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")})
	var de *types.DisabledException
	if !errors.As(err, &de) {
		t.Fatalf("want *types.DisabledException, got %T %v", err, err)
	}
	e.fake.set(nil, nil)

	// An api-level validation error arrives as a generic API error with our code.
	_, err = c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(5000)})
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
		t.Fatalf("want ValidationException, got %v", err)
	}
}

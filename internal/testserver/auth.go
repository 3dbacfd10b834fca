package testserver

import (
	"crypto/rand"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/internal/sdkhttp"
)

// StartWithAuth starts a node whose callers are authenticated with SigV4
// against credsJSON (the content of a -credentials-file) instead of all
// being the account root. Use ClientFor for a client of one credential.
func StartWithAuth(t testing.TB, credsJSON []byte) *Server {
	t.Helper()
	cf, err := api.ParseCredentials(credsJSON)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, crypto.KeySize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, DataDir: t.TempDir(), rootRaw: raw, Clock: &Clock{t: time.Now()}}
	s.authFor = func(log *slog.Logger) api.Authenticator {
		a, err := api.NewSigV4Authenticator(api.SigV4Config{Region: Region, AccountID: AccountID, Credentials: cf, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// ClientFor returns an SDK client of the server signing with one credential.
func (s *Server) ClientFor(accessKeyID, secret string) *kms.Client {
	return kms.New(kms.Options{
		Region:           Region,
		BaseEndpoint:     aws.String(s.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(accessKeyID, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       sdkhttp.OwnBody(nil),
	})
}

func (s *Server) authenticator(log *slog.Logger) api.Authenticator {
	if s.authFor != nil {
		return s.authFor(log)
	}
	return &api.DevAuthenticator{AccountID: AccountID, Logger: log}
}

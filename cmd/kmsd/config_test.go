package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *Config)
		wantErr string
	}{
		{
			name: "dev defaults",
			args: []string{"-dev"},
			check: func(t *testing.T, c *Config) {
				require.True(t, c.Dev)
				require.Equal(t, "kmsd-dev", c.NodeID)
				require.Equal(t, "us-east-1", c.Region)
				require.Equal(t, "111122223333", c.AccountID)
				require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
				require.Equal(t, time.Second, c.MaintenanceTick)
				require.False(t, c.RequireAESNI)
				require.Equal(t, 2, c.CiphertextFormat)
			},
		},
		{
			name:  "require-aesni from the environment",
			args:  []string{"-dev"},
			env:   map[string]string{"KMSD_REQUIRE_AESNI": "true"},
			check: func(t *testing.T, c *Config) { require.True(t, c.RequireAESNI) },
		},
		{
			name: "environment fills flags",
			env: map[string]string{"KMSD_DEV": "true", "KMSD_HTTP_ADDR": "127.0.0.1:9999",
				"KMSD_ROOT_KEY_FILE": "/rk", "KMSD_BOOTSTRAP_EXPECT": "1", "KMSD_ACCOUNT_ID": "222233334444"},
			check: func(t *testing.T, c *Config) {
				require.True(t, c.Dev)
				require.Equal(t, "127.0.0.1:9999", c.HTTPAddr)
				require.Equal(t, "/rk", c.RootKeyFile)
				require.Equal(t, 1, c.BootstrapExpect)
				require.Equal(t, "222233334444", c.AccountID)
			},
		},
		{
			name: "flag wins over environment",
			args: []string{"-dev", "-http-addr", "127.0.0.1:7000", "-region", "eu-west-1"},
			env:  map[string]string{"KMSD_HTTP_ADDR": "127.0.0.1:9999", "KMSD_REGION": "us-west-2"},
			check: func(t *testing.T, c *Config) {
				require.Equal(t, "127.0.0.1:7000", c.HTTPAddr)
				require.Equal(t, "eu-west-1", c.Region)
			},
		},
		{
			name: "single node outside dev",
			args: []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-credentials-file", "creds.json", "-insecure-plain-http"},
			check: func(t *testing.T, c *Config) {
				require.False(t, c.Dev)
				require.Equal(t, "n1", c.NodeID)
				require.Equal(t, "creds.json", c.CredentialsFile)
			},
		},
		{
			name:    "credentials file required outside dev",
			args:    []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1"},
			wantErr: "-credentials-file is required outside -dev",
		},
		{
			name: "insecure-no-auth instead of a credentials file",
			args: []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-no-auth", "-insecure-plain-http"},
			check: func(t *testing.T, c *Config) {
				require.True(t, c.InsecureNoAuth)
				require.Empty(t, c.CredentialsFile)
			},
		},
		{
			name: "credentials file from the environment",
			args: []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-plain-http"},
			env:  map[string]string{"KMSD_CREDENTIALS_FILE": "/run/kmsd/credentials.json"},
			check: func(t *testing.T, c *Config) {
				require.Equal(t, "/run/kmsd/credentials.json", c.CredentialsFile)
			},
		},
		{
			name: "KMSD_INSECURE_NO_AUTH",
			args: []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-plain-http"},
			env:  map[string]string{"KMSD_INSECURE_NO_AUTH": "true"},
			check: func(t *testing.T, c *Config) {
				require.True(t, c.InsecureNoAuth)
			},
		},
		{
			name:    "insecure-no-auth and a credentials file exclude each other",
			args:    []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-no-auth", "-credentials-file", "c.json"},
			wantErr: "exclude each other",
		},
		{
			name:    "insecure-no-auth and a credentials file exclude each other in dev too",
			args:    []string{"-dev", "-credentials-file", "c.json"},
			env:     map[string]string{"KMSD_INSECURE_NO_AUTH": "1"},
			wantErr: "exclude each other",
		},
		{
			name:  "debug pprof off by default",
			args:  []string{"-dev"},
			check: func(t *testing.T, c *Config) { require.Empty(t, c.DebugPprofAddr) },
		},
		{
			name:  "debug pprof on loopback",
			args:  []string{"-dev", "-debug-pprof-addr", "127.0.0.1:6060"},
			check: func(t *testing.T, c *Config) { require.Equal(t, "127.0.0.1:6060", c.DebugPprofAddr) },
		},
		{
			name:    "debug pprof refuses a non-loopback address",
			args:    []string{"-dev", "-debug-pprof-addr", "0.0.0.0:6060"},
			wantErr: "must be a loopback address",
		},
		{
			name:    "debug pprof refuses a host name other than localhost",
			args:    []string{"-dev", "-debug-pprof-addr", "example.com:6060"},
			wantErr: "must be a loopback address",
		},
		{
			name: "dev needs no credentials file",
			args: []string{"-dev"},
			check: func(t *testing.T, c *Config) {
				require.Empty(t, c.CredentialsFile)
				require.False(t, c.InsecureNoAuth)
			},
		},
		{
			name: "dev with a credentials file",
			args: []string{"-dev", "-credentials-file", "c.json"},
			check: func(t *testing.T, c *Config) {
				require.True(t, c.Dev)
				require.Equal(t, "c.json", c.CredentialsFile)
			},
		},
		{
			name: "no TLS by default",
			args: []string{"-dev"},
			check: func(t *testing.T, c *Config) {
				require.Empty(t, c.TLSCert)
				require.Empty(t, c.TLSKey)
				require.Empty(t, c.ClusterTLSCA)
				require.True(t, c.ClusterTLSVerifyHostname)
				require.False(t, c.InsecurePlainHTTP)
			},
		},
		{
			name: "TLS and cluster mutual TLS",
			args: []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "3", "-insecure-no-auth",
				"-tls-cert", "n1.pem", "-tls-key", "n1-key.pem", "-cluster-tls-ca", "ca.pem", "-cluster-tls-verify-hostname=false"},
			check: func(t *testing.T, c *Config) {
				require.Equal(t, "n1.pem", c.TLSCert)
				require.Equal(t, "n1-key.pem", c.TLSKey)
				require.Equal(t, "ca.pem", c.ClusterTLSCA)
				require.False(t, c.ClusterTLSVerifyHostname)
			},
		},
		{
			name: "TLS flags from the environment",
			args: []string{"-dev"},
			env: map[string]string{"KMSD_TLS_CERT": "/etc/kmsd/n.pem", "KMSD_TLS_KEY": "/etc/kmsd/n-key.pem",
				"KMSD_CLUSTER_TLS_CA": "/etc/kmsd/ca.pem", "KMSD_CLUSTER_TLS_VERIFY_HOSTNAME": "false"},
			check: func(t *testing.T, c *Config) {
				require.Equal(t, "/etc/kmsd/n.pem", c.TLSCert)
				require.Equal(t, "/etc/kmsd/n-key.pem", c.TLSKey)
				require.Equal(t, "/etc/kmsd/ca.pem", c.ClusterTLSCA)
				require.False(t, c.ClusterTLSVerifyHostname)
			},
		},
		{
			name:  "insecure-plain-http outside dev",
			args:  []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-no-auth", "-insecure-plain-http"},
			check: func(t *testing.T, c *Config) { require.True(t, c.InsecurePlainHTTP) },
		},
		{
			name:  "ciphertext format 1",
			args:  []string{"-dev", "-ciphertext-format", "1"},
			check: func(t *testing.T, c *Config) { require.Equal(t, 1, c.CiphertextFormat) },
		},
		{name: "ciphertext format 0", args: []string{"-dev", "-ciphertext-format", "0"}, wantErr: "-ciphertext-format 0: want 1 to 2"},
		{name: "ciphertext format 3", args: []string{"-dev"}, env: map[string]string{"KMSD_CIPHERTEXT_FORMAT": "3"}, wantErr: "-ciphertext-format 3"},
		{name: "tls-cert without tls-key", args: []string{"-dev", "-tls-cert", "c.pem"}, wantErr: "-tls-cert and -tls-key go together"},
		{name: "tls-key without tls-cert", args: []string{"-dev", "-tls-key", "k.pem"}, wantErr: "-tls-cert and -tls-key go together"},
		{name: "cluster CA needs a node certificate", args: []string{"-dev", "-cluster-tls-ca", "ca.pem"}, wantErr: "-cluster-tls-ca needs -tls-cert"},
		{
			name:    "plain transport and cluster mutual TLS exclude each other",
			args:    []string{"-dev", "-tls-cert", "c.pem", "-tls-key", "k.pem", "-cluster-tls-ca", "ca.pem"},
			env:     map[string]string{"KMSD_INSECURE_PLAIN_HTTP": "true"},
			wantErr: "exclude each other",
		},
		{
			name:    "plain HTTP refused outside dev",
			args:    []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-no-auth"},
			wantErr: "-tls-cert and -tls-key are required outside -dev",
		},
		{
			name: "plain Raft refused outside dev",
			args: []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-no-auth",
				"-tls-cert", "c.pem", "-tls-key", "k.pem"},
			wantErr: "-cluster-tls-ca is required outside -dev",
		},
		{
			name: "https API with plain Raft when acknowledged",
			args: []string{"-node-id", "n1", "-data-dir", "d1", "-root-key-file", "rk", "-bootstrap-expect", "1", "-insecure-no-auth",
				"-tls-cert", "c.pem", "-tls-key", "k.pem", "-insecure-plain-http"},
			check: func(t *testing.T, c *Config) { require.True(t, c.InsecurePlainHTTP) },
		},
		{name: "data dir required outside dev", args: []string{"-root-key-file", "rk"}, wantErr: "-data-dir"},
		{name: "root key required outside dev", args: []string{"-data-dir", "d"}, wantErr: "-root-key-file"},
		{name: "bootstrap or join required outside dev", args: []string{"-data-dir", "d", "-root-key-file", "rk"}, wantErr: "-bootstrap-expect"},
		{name: "bad env value", env: map[string]string{"KMSD_BOOTSTRAP_EXPECT": "three"}, wantErr: "KMSD_BOOTSTRAP_EXPECT"},
		{name: "stray argument", args: []string{"-dev", "extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"-nope"}, wantErr: "not defined"},
		{
			// DESIGN.md §6's line plus what issue 5 made mandatory outside
			// -dev: a credentials file and TLS (API and between nodes).
			name: "cluster flags as in DESIGN.md",
			args: []string{"-node-id", "n1", "-region", "us-east-1", "-data-dir", "d1", "-http-addr", "127.0.0.1:8080",
				"-raft-addr", "127.0.0.1:8300", "-gossip-addr", "127.0.0.1:8301", "-bootstrap-expect", "3",
				"-join", "127.0.0.1:8311,127.0.0.1:8321", "-root-key-file", "rk", "-credentials-file", "creds.json",
				"-tls-cert", "n1.pem", "-tls-key", "n1-key.pem", "-cluster-tls-ca", "ca.pem"},
			check: func(t *testing.T, c *Config) {
				require.Equal(t, []string{"127.0.0.1:8311", "127.0.0.1:8321"}, c.Join)
				require.Equal(t, 3, c.BootstrapExpect)
				require.Equal(t, "127.0.0.1:8301", c.GossipAddr)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, env(tc.env))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

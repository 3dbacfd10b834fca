package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsd/kmsd/api"
)

func TestQuotaFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	base := []string{"-dev"}
	tests := []struct {
		args    []string
		env     map[string]string
		want    string
		wantErr bool
	}{
		{args: nil, want: "off"},
		{args: []string{"-quota", "aws"}, want: "aws"},
		{args: []string{"-quota-file", "/q.json"}, want: "aws"},
		{args: []string{"-quota", "aws", "-quota-file", "/q.json"}, want: "aws"},
		{env: map[string]string{"KMSD_QUOTA": "aws"}, want: "aws"},
		{args: []string{"-quota", "off", "-quota-file", "/q.json"}, wantErr: true},
		{args: []string{"-quota", "fast"}, wantErr: true},
	}
	for _, tt := range tests {
		getenv := noEnv
		if tt.env != nil {
			getenv = func(k string) string { return tt.env[k] }
		}
		c, err := parseConfig(append(append([]string(nil), base...), tt.args...), getenv)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%v %v: accepted", tt.args, tt.env)
			}
			continue
		}
		if err != nil || c.Quota != tt.want {
			t.Errorf("%v %v: quota %q, err %v; want %q", tt.args, tt.env, c.Quota, err, tt.want)
		}
	}
}

func TestQuotaLimiterFromFlags(t *testing.T) {
	if l, err := api.QuotaLimiterFor("off", ""); l != nil || err != nil {
		t.Errorf("off: %v %v", l, err)
	}
	if l, err := api.QuotaLimiterFor("aws", ""); l == nil || err != nil {
		t.Errorf("aws: %v %v", l, err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(good, []byte(`{"default": {"CreateKey": 100}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"default": {"CreateKeys": 100}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if l, err := api.QuotaLimiterFor("aws", good); l == nil || err != nil {
		t.Errorf("good file: %v %v", l, err)
	}
	if _, err := api.QuotaLimiterFor("aws", bad); err == nil {
		t.Error("a file with an unknown group was accepted")
	}
	if _, err := api.QuotaLimiterFor("aws", filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file was accepted")
	}
}

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// awsCLIv2 finds the aws CLI version 2 (Debian's awscli package installs
// it as /usr/bin/aws; a v1 earlier in PATH is skipped).
func awsCLIv2(t *testing.T) string {
	t.Helper()
	for _, path := range []string{"/usr/bin/aws", "/usr/local/bin/aws"} {
		if out, err := exec.Command(path, "--version").CombinedOutput(); err == nil && strings.HasPrefix(string(out), "aws-cli/2") {
			return path
		}
	}
	if path, err := exec.LookPath("aws"); err == nil {
		if out, err := exec.Command(path, "--version").CombinedOutput(); err == nil && strings.HasPrefix(string(out), "aws-cli/2") {
			return path
		}
	}
	t.Skip("aws CLI v2 not installed (apt-get install -y awscli); skipping the aws CLI e2e test")
	return ""
}

type awsCLI struct {
	t        *testing.T
	bin      string
	endpoint string
	env      []string
}

// run runs `aws --endpoint-url E kms ARGS... --output json` and returns its
// stdout, failing the test on error.
func (a *awsCLI) run(args ...string) map[string]any {
	a.t.Helper()
	out, stderr, err := a.exec(args...)
	require.NoError(a.t, err, "aws %s: %s", strings.Join(args, " "), stderr)
	var v map[string]any
	if len(strings.TrimSpace(out)) == 0 {
		return v
	}
	require.NoError(a.t, json.Unmarshal([]byte(out), &v), out)
	return v
}

// fail runs a command that must fail and returns its stderr.
func (a *awsCLI) fail(args ...string) string {
	a.t.Helper()
	_, stderr, err := a.exec(args...)
	require.Error(a.t, err, "aws %s should fail", strings.Join(args, " "))
	return stderr
}

func (a *awsCLI) exec(args ...string) (string, string, error) {
	full := append([]string{"--endpoint-url", a.endpoint, "--output", "json", "kms"}, args...)
	cmd := exec.Command(a.bin, full...)
	cmd.Env = a.env
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestAWSCLI drives `kmsd -dev` with the aws CLI v2 through the foundation
// issue's acceptance tour.
func TestAWSCLI(t *testing.T) {
	bin := awsCLIv2(t)
	p := startDev(t, t.TempDir())
	home := t.TempDir()
	a := &awsCLI{t: t, bin: bin, endpoint: p.endpoint, env: []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_ACCESS_KEY_ID=AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_PAGER=",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
	}}

	created := a.run("create-key", "--description", "cli tour")
	meta := created["KeyMetadata"].(map[string]any)
	keyID := meta["KeyId"].(string)
	require.Equal(t, "Enabled", meta["KeyState"])
	require.Equal(t, "SYMMETRIC_DEFAULT", meta["KeySpec"])

	plainFile := filepath.Join(home, "plain.txt")
	require.NoError(t, os.WriteFile(plainFile, []byte("attack at dawn"), 0o600))
	enc := a.run("encrypt", "--key-id", keyID, "--plaintext", "fileb://"+plainFile,
		"--encryption-context", "purpose=test,team=platform")
	ctB64 := enc["CiphertextBlob"].(string)
	ct, err := base64.StdEncoding.DecodeString(ctB64)
	require.NoError(t, err)
	ctFile := filepath.Join(home, "ct.bin")
	require.NoError(t, os.WriteFile(ctFile, ct, 0o600))

	dec := a.run("decrypt", "--ciphertext-blob", "fileb://"+ctFile, "--encryption-context", "purpose=test,team=platform")
	pt, err := base64.StdEncoding.DecodeString(dec["Plaintext"].(string))
	require.NoError(t, err)
	require.Equal(t, "attack at dawn", string(pt))
	require.Contains(t, dec["KeyId"], keyID)

	// A different encryption context must not decrypt.
	stderr := a.fail("decrypt", "--ciphertext-blob", "fileb://"+ctFile, "--encryption-context", "purpose=other")
	require.Contains(t, stderr, "InvalidCiphertextException")

	gdk := a.run("generate-data-key", "--key-id", keyID, "--key-spec", "AES_256")
	dk, err := base64.StdEncoding.DecodeString(gdk["Plaintext"].(string))
	require.NoError(t, err)
	require.Len(t, dk, 32)
	require.NotEmpty(t, gdk["CiphertextBlob"])

	a.run("create-alias", "--alias-name", "alias/cli-tour", "--target-key-id", keyID)
	byAlias := a.run("describe-key", "--key-id", "alias/cli-tour")
	require.Equal(t, keyID, byAlias["KeyMetadata"].(map[string]any)["KeyId"])

	for i := 0; i < 6; i++ {
		a.run("create-key")
	}
	page := a.run("list-keys", "--page-size", "2", "--max-items", "5")
	require.Len(t, page["Keys"], 5)
	require.NotEmpty(t, page["NextToken"], "7 keys, 5 shown: the CLI must offer a NextToken")
	rest := a.run("list-keys", "--page-size", "2", "--starting-token", page["NextToken"].(string))
	require.Len(t, rest["Keys"], 2)

	a.run("disable-key", "--key-id", keyID)
	stderr = a.fail("encrypt", "--key-id", keyID, "--plaintext", "fileb://"+plainFile)
	require.Contains(t, stderr, "DisabledException")

	sched := a.run("schedule-key-deletion", "--key-id", keyID, "--pending-window-in-days", "7")
	require.Equal(t, "PendingDeletion", sched["KeyState"])
	require.EqualValues(t, 7, sched["PendingWindowInDays"])
	require.NotEmpty(t, sched["DeletionDate"])

	stderr = a.fail("describe-key", "--key-id", "alias/does-not-exist")
	require.Contains(t, stderr, "NotFoundException")
}

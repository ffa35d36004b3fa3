package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func flags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "callvault.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	cfg, file, err := LoadConfig(flags(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if file != "" && file != DefaultConfigFile {
		t.Fatalf("file = %q", file)
	}
	if cfg.DataDir != "./callvault-data" || cfg.HTTP.Listen != "127.0.0.1:8080" || cfg.ShutdownTimeout != 10*time.Second || cfg.Storage.FlushInterval != time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	if got := cfg.MasterKeyFile(); got != "callvault-data.key" {
		t.Fatalf("master key file %q, want beside the data dir", got)
	}
}

func TestPrecedence(t *testing.T) {
	p := writeConfig(t, "data_dir: /from/file\nhttp:\n  listen: 127.0.0.1:9000\nlog:\n  level: warn\n")
	env := []string{"CALLVAULT_HTTP_LISTEN=127.0.0.1:9100", "CALLVAULT_LOG_LEVEL=debug", "CALLVAULT_CAPTURE_INTERFACES=eth1, eth2"}
	cfg, _, err := LoadConfig(flags(t, "--config", p, "--http", "127.0.0.1:9200"), env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/from/file" {
		t.Errorf("data_dir = %q, want the file's", cfg.DataDir)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9200" {
		t.Errorf("http.listen = %q, want the flag's", cfg.HTTP.Listen)
	}
	if cfg.Log.Level != "debug" {
		t.Errorf("log.level = %q, want the environment's", cfg.Log.Level)
	}
	if strings.Join(cfg.Capture.Interfaces, "|") != "eth1|eth2" {
		t.Errorf("capture.interfaces = %q", cfg.Capture.Interfaces)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cases := []struct {
		name, body string
		env        []string
		want       []string
	}{
		{"unknown key", "http:\n  lisen: 127.0.0.1:1\n", nil, []string{`"http.lisen"`, `did you mean "http.listen"`}},
		{"unknown section", "captur:\n  bpf: udp\n", nil, []string{`"captur.bpf"`}},
		{"wrong type bool", "http:\n  tls: maybe\n", nil, []string{"http.tls"}},
		{"wrong type list", "capture:\n  interfaces: 7\n", nil, []string{"capture.interfaces"}},
		{"wrong type duration", "shutdown_timeout: soon\n", nil, []string{"shutdown_timeout"}},
		{"impossible port", "http:\n  listen: 127.0.0.1:70000\n", nil, []string{"http.listen", "65535"}},
		{"impossible level", "log:\n  level: loud\n", nil, []string{"log.level", "debug, info, warn, error"}},
		{"impossible flush", "storage:\n  flush_interval: 5s\n", nil, []string{"storage.flush_interval", "at most 1s"}},
		{"archive without dir", "storage:\n  archive_after_days: 30\n", nil, []string{"storage.archive_dir"}},
		{"impossible preservation period", "storage:\n  preserve_days: -5\n", nil, []string{"storage.preserve_days", "0 (hold indefinitely)"}},
		{"bad env", "", []string{"CALLVAULT_HTTP_TLS=perhaps"}, []string{"http.tls"}},
		{"not yaml", "http: [\n", nil, []string{"callvault.yaml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, c.body)
			_, _, err := LoadConfig(flags(t, "--config", p), c.env)
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	p := writeConfig(t, "keys:\n  passphrase: correct horse battery staple\n")
	cfg, _, err := LoadConfig(flags(t, "--config", p), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Print()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "horse") || !strings.Contains(string(out), "passphrase: '********'") && !strings.Contains(string(out), `passphrase: "********"`) {
		t.Fatalf("secret not masked:\n%s", out)
	}
	if cfg.Keys.Passphrase != "correct horse battery staple" {
		t.Fatal("Print changed the config itself")
	}
}

package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebPackage builds the .deb with nfpm (as `make package` does), unpacks
// it with dpkg-deb and checks its files, conffiles and maintainer scripts,
// and that the packaged binary runs.
func TestDebPackage(t *testing.T) {
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skipf("dpkg-deb not installed (%v): Debian's dpkg is needed to unpack the package", err)
	}
	out := t.TempDir()
	cmd := exec.Command("go", "tool", "nfpm", "package", "--config", "packaging/nfpm.yaml", "--packager", "deb", "--target", out)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CALLVAULT_BIN="+binary, "VERSION=0.1.0~test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nfpm: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "*.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one .deb, got %v", debs)
	}
	root := filepath.Join(out, "root")
	control := filepath.Join(out, "control")
	for _, args := range [][]string{{"-x", debs[0], root}, {"-e", debs[0], control}} {
		if b, err := exec.Command("dpkg-deb", args...).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb %v: %v\n%s", args, err, b)
		}
	}
	files := map[string]os.FileMode{
		"usr/bin/callvault":                        0o755,
		"lib/systemd/system/callvault.service":     0o644,
		"etc/callvault/callvault.yaml":             0o640,
		"usr/share/doc/callvault/README.md":        0,
		"usr/share/doc/callvault/configuration.md": 0,
	}
	for f, mode := range files {
		fi, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Errorf("package lacks /%s", f)
			continue
		}
		if mode != 0 && fi.Mode().Perm() != mode {
			t.Errorf("/%s has mode %v, want %v", f, fi.Mode().Perm(), mode)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if c := read(filepath.Join(control, "conffiles")); !strings.Contains(c, "/etc/callvault/callvault.yaml") {
		t.Errorf("the config is not a conffile: %q", c)
	}
	ctl := read(filepath.Join(control, "control"))
	for _, w := range []string{"Package: callvault", "Version: 0.1.0~test", "Depends: adduser, libmp3lame0"} {
		if !strings.Contains(ctl, w) {
			t.Errorf("control lacks %q:\n%s", w, ctl)
		}
	}
	if p := read(filepath.Join(control, "preinst")); !strings.Contains(p, "adduser --system") || !strings.Contains(p, "callvault") {
		t.Errorf("preinst does not create the callvault system user:\n%s", p)
	}
	post := read(filepath.Join(control, "postinst"))
	for _, w := range []string{"/etc/callvault/master.key", "daemon-reload"} {
		if !strings.Contains(post, w) {
			t.Errorf("postinst lacks %q", w)
		}
	}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		if b, err := exec.Command("sh", "-n", filepath.Join(control, s)).CombinedOutput(); err != nil {
			t.Errorf("%s is not valid sh: %v %s", s, err, b)
		}
	}
	// The config shipped must be one the binary accepts.
	o, e, code := runCLI(t, t.TempDir(), nil, "config", "print", "--config", filepath.Join(root, "etc/callvault/callvault.yaml"))
	if code != 0 {
		t.Errorf("the packaged example config is rejected: %s%s", o, e)
	}
	o, e, code = runCLIWith(t, filepath.Join(root, "usr/bin/callvault"), "version")
	if code != 0 || !strings.Contains(o, "callvault") {
		t.Errorf("packaged binary: exit %d %s%s", code, o, e)
	}
}

func runCLIWith(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	saved := binary
	binary = bin
	defer func() { binary = saved }()
	return runCLI(t, t.TempDir(), nil, args...)
}

// TestSystemdUnit checks the unit's hardening and that systemd-analyze
// verify accepts it (with ExecStart pointed at the built binary, since the
// test machine has no /usr/bin/callvault).
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skipf("systemd-analyze not installed (%v): Debian's systemd package provides it", err)
	}
	b, err := os.ReadFile("../systemd/callvault.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, w := range []string{
		"User=callvault", "StateDirectory=callvault", "ConfigurationDirectory=callvault",
		"AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n",
		"CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
		"LoadCredential=master-key:",
	} {
		if !strings.Contains(unit, w) {
			t.Errorf("unit lacks %q", strings.TrimSpace(w))
		}
	}
	p := filepath.Join(t.TempDir(), "callvault.service")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(unit, "/usr/bin/callvault", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

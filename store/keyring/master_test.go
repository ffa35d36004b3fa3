package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKeyFileCreates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "callvault")
	path := filepath.Join(dir, "master.key")
	key, err := LoadOrCreateKeyFile(path, testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != KeySize {
		t.Fatalf("key is %d bytes", len(key))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("key dir mode %04o, want 0700", di.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if want := hex.EncodeToString(key) + "\n"; string(data) != want {
		t.Fatalf("file holds %q, want %q", data, want)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("key dir holds %d entries, want 1", len(entries))
	}
	// Loading again returns the same key and does not consume randomness.
	again, err := LoadOrCreateKeyFile(path, &failingRand{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, key) {
		t.Fatal("second load returned a different key")
	}
}

func TestLoadKeyFileAcceptsHandMadeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	want := bytes.Repeat([]byte{0xab}, KeySize)
	// As `openssl rand -hex 32 > k` would write it, upper case, CRLF.
	if err := os.WriteFile(path, []byte(strings.ToUpper(hex.EncodeToString(want))+"\r\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	got, err := LoadOrCreateKeyFile(path, &failingRand{})
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %x, %v", got, err)
	}
}

func TestLoadKeyFileRefuses(t *testing.T) {
	good := hex.EncodeToString(bytes.Repeat([]byte{1}, KeySize)) + "\n"
	cases := []struct {
		name    string
		content string
		mode    os.FileMode
		want    error
		msg     string
	}{
		{"group readable", good, 0o640, ErrKeyFileMode, "mode 0640"},
		{"world readable", good, 0o604, ErrKeyFileMode, "mode 0604"},
		{"group writable", good, 0o620, ErrKeyFileMode, "mode 0620"},
		{"short", good[:62] + "\n", 0o600, ErrKeyLength, "62 hex digits"},
		{"long", "00" + good, 0o600, ErrKeyLength, "66 hex digits"},
		{"empty", "", 0o600, ErrKeyLength, "0 hex digits"},
		{"not hex", strings.Repeat("zz", KeySize), 0o600, ErrKeyEncoding, "hex digits"},
		{"raw bytes", string(bytes.Repeat([]byte{0xfe}, KeySize)), 0o600, ErrKeyEncoding, "hex digits"},
		{"huge", strings.Repeat("0", 10000), 0o600, ErrKeyLength, "longer than 256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreateKeyFile(path, testRand(1))
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, c.want, c.msg)
			}
			// A refused file is never replaced.
			data, _ := os.ReadFile(path)
			if string(data) != c.content {
				t.Fatal("refused key file was modified")
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		path := t.TempDir()
		if err := os.Chmod(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKeyFile(path, testRand(1)); !errors.Is(err, ErrNotRegular) {
			t.Fatalf("got %v, want ErrNotRegular", err)
		}
	})
	t.Run("broken randomness", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "k")
		if _, err := LoadOrCreateKeyFile(path, &failingRand{}); err == nil {
			t.Fatal("created a key without randomness")
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("failed create left a key file: %v", err)
		}
	})
	t.Run("parent is a file", func(t *testing.T) {
		parent := filepath.Join(t.TempDir(), "f")
		if err := os.WriteFile(parent, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateKeyFile(filepath.Join(parent, "k"), testRand(1)); err == nil {
			t.Fatal("created a key under a regular file")
		}
	})
}

// TestLoadOrCreateKeyFileRace: processes starting together agree on one key.
func TestLoadOrCreateKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = LoadOrCreateKeyFile(path, testRand(byte(i)))
		}()
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("goroutine %d got a different key", i)
		}
	}
}

func TestParseMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb, 0xff, 0x3e}, 11)[:KeySize]
	ok := []struct{ name, in string }{
		{"hex", hex.EncodeToString(key)},
		{"HEX", strings.ToUpper(hex.EncodeToString(key))},
		{"hex with newline", hex.EncodeToString(key) + "\n"},
		{"base64", base64.StdEncoding.EncodeToString(key)},
		{"base64 raw", base64.RawStdEncoding.EncodeToString(key)},
		{"base64 url", base64.URLEncoding.EncodeToString(key)},
		{"base64 raw url", "  " + base64.RawURLEncoding.EncodeToString(key) + "\t"},
	}
	for _, c := range ok {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseMasterKey(c.in)
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("got %x, %v", got, err)
			}
		})
	}
	bad := []struct {
		name, in string
		want     error
		msg      string
	}{
		{"empty", "", ErrKeyEncoding, "empty"},
		{"spaces", "   ", ErrKeyEncoding, "empty"},
		{"short hex", hex.EncodeToString(key[:31]), ErrKeyLength, "62 hex digits"},
		{"long hex", hex.EncodeToString(append(key, 0)), ErrKeyLength, "66 hex digits"},
		{"short base64", base64.StdEncoding.EncodeToString(key[:16]), ErrKeyLength, "16 bytes"},
		{"long base64", base64.StdEncoding.EncodeToString(append(key, 1, 2)), ErrKeyLength, "34 bytes"},
		{"garbage", "not a key at all!", ErrKeyEncoding, "17 characters"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseMasterKey(c.in)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, c.want, c.msg)
			}
		})
	}
}

func TestFromCredential(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{0x5a}, KeySize)
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o400); err != nil {
			t.Fatal(err)
		}
	}
	write("raw", key)
	write("hex", []byte(hex.EncodeToString(key)+"\n"))
	write("b64", []byte(base64.StdEncoding.EncodeToString(key)))
	write("short", key[:20]) // "ZZZ…": valid base64 of 15 bytes
	write("binary", bytes.Repeat([]byte{0xff}, 20))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"raw", "hex", "b64"} {
		got, err := FromCredential(dir, name)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("%s: got %x, %v", name, got, err)
		}
	}
	bad := []struct {
		dir, name string
		want      error
	}{
		{"", "master", ErrCredential},
		{dir, "", ErrCredential},
		{dir, "..", ErrCredential},
		{dir, "../etc/passwd", ErrCredential},
		{dir, "a\x00b", ErrCredential},
		{dir, "missing", fs.ErrNotExist},
		{dir, "sub", ErrNotRegular},
		{dir, "short", ErrKeyLength},
		{dir, "binary", ErrKeyEncoding},
	}
	for _, c := range bad {
		if _, err := FromCredential(c.dir, c.name); !errors.Is(err, c.want) {
			t.Errorf("FromCredential(%q, %q): got %v, want %v", c.dir, c.name, err, c.want)
		}
	}
}

func TestFromPassphrase(t *testing.T) {
	fast := Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}
	salt, err := NewSalt(testRand(1))
	if err != nil {
		t.Fatal(err)
	}
	salt2, _ := NewSalt(testRand(2))
	a, err := FromPassphrase([]byte("correct horse"), salt, fast)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := FromPassphrase([]byte("correct horse"), salt, fast)
	c, _ := FromPassphrase([]byte("correct horsf"), salt, fast)
	d, _ := FromPassphrase([]byte("correct horse"), salt2, fast)
	e, _ := FromPassphrase([]byte("correct horse"), salt, Argon2Params{Time: 2, MemoryKiB: 64, Threads: 1})
	if len(a) != KeySize || !bytes.Equal(a, b) {
		t.Fatal("derivation is not deterministic")
	}
	for i, other := range [][]byte{c, d, e} {
		if bytes.Equal(a, other) {
			t.Fatalf("variant %d derived the same key", i)
		}
	}
	// The derived key works as a master key.
	blob, err := mustNew(t).Seal(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(c, blob, testRand(1)); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("wrong passphrase: got %v, want ErrWrongMasterKey", err)
	}

	bad := []struct {
		name       string
		pass, salt []byte
		p          Argon2Params
		msg        string
	}{
		{"empty passphrase", nil, salt, fast, "empty passphrase"},
		{"short salt", []byte("x"), salt[:8], fast, "salt is 8 bytes"},
		{"zero time", []byte("x"), salt, Argon2Params{0, 64, 1}, "time 0"},
		{"huge time", []byte("x"), salt, Argon2Params{1000, 64, 1}, "time 1000"},
		{"zero threads", []byte("x"), salt, Argon2Params{1, 64, 0}, "threads 0"},
		{"too little memory", []byte("x"), salt, Argon2Params{1, 15, 2}, "memory 15 KiB"},
		{"too much memory", []byte("x"), salt, Argon2Params{1, 8 << 20, 1}, "memory 8388608 KiB"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromPassphrase(c.pass, c.salt, c.p)
			if !errors.Is(err, ErrPassphrase) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want ErrPassphrase mentioning %q", err, c.msg)
			}
		})
	}
}

func TestFromPassphraseDefaultParams(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 64 MiB argon2id derivation in -short mode")
	}
	salt := bytes.Repeat([]byte{3}, SaltSize)
	k1, err := FromPassphrase([]byte("pw"), salt, DefaultArgon2Params())
	if err != nil {
		t.Fatal(err)
	}
	k2, err := FromPassphrase([]byte("pw"), salt, Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2})
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("default params differ from the documented 3/64MiB/2: %v", err)
	}
}

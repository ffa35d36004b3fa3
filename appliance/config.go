package appliance

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// DefaultConfigFile is read when --config is not given and the file exists.
const DefaultConfigFile = "/etc/callvault/callvault.yaml"

// EnvPrefix prefixes every environment variable that sets a config key:
// CALLVAULT_HTTP_LISTEN sets http.listen.
const EnvPrefix = "CALLVAULT"

// Config is the whole effective configuration. Only this package reads it
// from viper; every subsystem gets its own typed Config built from it.
type Config struct {
	DataDir         string        `mapstructure:"data_dir" yaml:"data_dir"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout" yaml:"shutdown_timeout"`
	Log             LogConfig     `mapstructure:"log" yaml:"log"`
	HTTP            HTTPConfig    `mapstructure:"http" yaml:"http"`
	Keys            KeysConfig    `mapstructure:"keys" yaml:"keys"`
	Storage         StorageConfig `mapstructure:"storage" yaml:"storage"`
	Capture         CaptureConfig `mapstructure:"capture" yaml:"capture"`
	Cluster         ClusterConfig `mapstructure:"cluster" yaml:"cluster"`
}

// LogConfig selects the slog handler.
type LogConfig struct {
	Level  string `mapstructure:"level" yaml:"level"`
	Format string `mapstructure:"format" yaml:"format"`
}

// HTTPConfig is the web UI and API listener.
type HTTPConfig struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
	TLS    bool   `mapstructure:"tls" yaml:"tls"`
	Cert   string `mapstructure:"cert_file" yaml:"cert_file"`
	Key    string `mapstructure:"key_file" yaml:"key_file"`
}

// KeysConfig says where the master key comes from. The master key never
// lives inside the data directory (ARCHITECTURE rule 5).
type KeysConfig struct {
	MasterKeyFile string `mapstructure:"master_key_file" yaml:"master_key_file"`
	Passphrase    string `mapstructure:"passphrase" yaml:"passphrase"`
	Credential    string `mapstructure:"credential" yaml:"credential"`
}

// StorageConfig covers the hot tier (the data directory) and the archive tier.
type StorageConfig struct {
	FlushInterval        time.Duration `mapstructure:"flush_interval" yaml:"flush_interval"`
	ArchiveDir           string        `mapstructure:"archive_dir" yaml:"archive_dir"`
	ArchiveAfterDays     int           `mapstructure:"archive_after_days" yaml:"archive_after_days"`
	HotHighWatermark     int           `mapstructure:"hot_high_watermark_pct" yaml:"hot_high_watermark_pct"`
	TierInterval         time.Duration `mapstructure:"tier_interval" yaml:"tier_interval"`
	PurgeInterval        time.Duration `mapstructure:"purge_interval" yaml:"purge_interval"`
	MinFreeBytes         int64         `mapstructure:"min_free_bytes" yaml:"min_free_bytes"`
	DefaultRetentionDays int           `mapstructure:"default_retention_days" yaml:"default_retention_days"`
	// PreserveDays is how far a Preserve without an end date pushes a
	// recording's deletion date out (from the later of now and its
	// current date); 0 holds it indefinitely.
	PreserveDays int `mapstructure:"preserve_days" yaml:"preserve_days"`
}

// CaptureConfig is passive capture from mirrored traffic.
type CaptureConfig struct {
	Interfaces     []string      `mapstructure:"interfaces" yaml:"interfaces"`
	BPF            string        `mapstructure:"bpf" yaml:"bpf"`
	SIPPorts       []int         `mapstructure:"sip_ports" yaml:"sip_ports"`
	DetectSIP      bool          `mapstructure:"detect_sip" yaml:"detect_sip"`
	LocalNetworks  []string      `mapstructure:"local_networks" yaml:"local_networks"`
	LocalNumbers   []string      `mapstructure:"local_numbers" yaml:"local_numbers"`
	TrunkAddresses []string      `mapstructure:"trunk_addresses" yaml:"trunk_addresses"`
	RTPTimeout     time.Duration `mapstructure:"rtp_timeout" yaml:"rtp_timeout"`
	HoldTimeout    time.Duration `mapstructure:"hold_timeout" yaml:"hold_timeout"`
}

// defaults is the built-in configuration: `callvault serve` with no file,
// no environment and no flags runs on exactly this.
func defaults() map[string]any {
	return map[string]any{
		"data_dir":                       "./callvault-data",
		"shutdown_timeout":               "10s",
		"log.level":                      "info",
		"log.format":                     "auto",
		"http.listen":                    "127.0.0.1:8080",
		"http.tls":                       false,
		"http.cert_file":                 "",
		"http.key_file":                  "",
		"keys.master_key_file":           "",
		"keys.passphrase":                "",
		"keys.credential":                "master-key",
		"storage.flush_interval":         "1s",
		"storage.archive_dir":            "",
		"storage.archive_after_days":     0,
		"storage.hot_high_watermark_pct": 0,
		"storage.tier_interval":          "10m",
		"storage.purge_interval":         "1h",
		"storage.min_free_bytes":         int64(256 << 20),
		"storage.default_retention_days": 0,
		"storage.preserve_days":          0,
		"capture.interfaces":             []string{},
		"capture.bpf":                    "",
		"capture.sip_ports":              []int{5060, 5080},
		"capture.detect_sip":             true,
		"capture.local_networks":         []string{},
		"capture.local_numbers":          []string{},
		"capture.trunk_addresses":        []string{},
		"capture.rtp_timeout":            "30s",
		"capture.hold_timeout":           "2h",
		"cluster.addr":                   "",
		"cluster.advertise":              "",
		"cluster.join":                   "",
		"cluster.join_token":             "",
		"cluster.replicas":               3,
	}
}

// Flags that override config keys. cmd registers them on serve and every
// command that opens the data directory.
var flagKeys = map[string]string{
	"data-dir":  "data_dir",
	"http":      "http.listen",
	"log-level": "log.level",
	// serve only (cmd registers them there): the cluster (issue 8).
	"cluster-addr": "cluster.addr",
	"join":         "cluster.join",
	"join-token":   "cluster.join_token",
}

// AddFlags registers --config and the key-overriding flags on fs.
func AddFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "configuration file (default "+DefaultConfigFile+" if it exists)")
	fs.String("data-dir", "", "data directory (config key data_dir, default ./callvault-data)")
	fs.String("http", "", "HTTP listen address (config key http.listen, default 127.0.0.1:8080)")
	fs.String("log-level", "", "log level: debug, info, warn, error (config key log.level)")
}

// LoadConfig builds the effective configuration from, in rising order of
// precedence: built-in defaults, the config file, CALLVAULT_* variables,
// and flags. It fails on unknown keys, wrong types and impossible values,
// naming the key.
func LoadConfig(fs *pflag.FlagSet, environ []string) (Config, string, error) {
	v := viper.New()
	known := defaults()
	for k, val := range known {
		v.SetDefault(k, val)
	}

	file := ""
	if fs != nil {
		if f := fs.Lookup("config"); f != nil {
			file = f.Value.String()
		}
	}
	if file == "" {
		if _, err := os.Stat(DefaultConfigFile); err == nil {
			file = DefaultConfigFile
		}
	}
	if file != "" {
		v.SetConfigFile(file)
		if ext := filepath.Ext(file); ext != ".yaml" && ext != ".yml" && ext != ".json" && ext != ".toml" {
			v.SetConfigType("yaml")
		}
		if err := v.ReadInConfig(); err != nil {
			return Config{}, file, fmt.Errorf("config file %s: %w", file, err)
		}
		if err := checkKeys(v, known, file); err != nil {
			return Config{}, file, err
		}
	}

	// Environment: only known keys are looked up, so CALLVAULT_MASTER_KEY and
	// CALLVAULT_ADMIN_PASSWORD (read elsewhere) never collide with config keys.
	env := envMap(environ)
	for k := range known {
		name := EnvPrefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(k))
		if val, ok := env[name]; ok {
			_, isList := known[k].([]string)
			if _, ok := known[k].([]int); ok {
				isList = true
			}
			if isList {
				v.Set(k, splitList(val))
			} else {
				v.Set(k, val)
			}
		}
	}

	if fs != nil {
		for flag, key := range flagKeys {
			if f := fs.Lookup(flag); f != nil && f.Changed {
				v.Set(key, f.Value.String())
			}
		}
	}

	var cfg Config
	err := v.UnmarshalExact(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			stringToScalarHook(),
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return Config{}, file, fmt.Errorf("config: %w", cleanDecodeError(err))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, file, err
	}
	return cfg, file, nil
}

// stringToScalarHook converts strings (from the environment and flags) to
// the bool and integer fields they set, and nothing else: a YAML `tls: yes
// please` still fails with the key's name.
func stringToScalarHook() mapstructure.DecodeHookFuncType {
	return func(from, to reflect.Type, data any) (any, error) {
		s, ok := data.(string)
		if !ok || from.Kind() != reflect.String {
			return data, nil
		}
		switch to.Kind() {
		case reflect.Bool:
			switch strings.ToLower(s) {
			case "true", "1", "yes", "on":
				return true, nil
			case "false", "0", "no", "off", "":
				return false, nil
			}
			return nil, fmt.Errorf("%q is not a boolean (true or false)", s)
		case reflect.Int, reflect.Int64:
			if to == reflect.TypeOf(time.Duration(0)) {
				return data, nil
			}
			var n int64
			if _, err := fmt.Sscan(s, &n); err != nil {
				return nil, fmt.Errorf("%q is not a whole number", s)
			}
			return n, nil
		}
		return data, nil
	}
}

func cleanDecodeError(err error) error {
	// mapstructure lists every failure; keep them, drop its preamble.
	msg := err.Error()
	if i := strings.Index(msg, "decoding:"); i >= 0 {
		msg = strings.TrimSpace(msg[i+len("decoding:"):])
	}
	msg = strings.ReplaceAll(msg, "\n* ", "; ")
	msg = strings.TrimPrefix(msg, "* ")
	return errors.New(msg)
}

// checkKeys rejects keys in the file that Callvault does not know, with a
// suggestion when the key is a likely typo.
func checkKeys(v *viper.Viper, known map[string]any, file string) error {
	var bad []string
	for _, k := range v.AllKeys() {
		if _, ok := known[k]; ok {
			continue
		}
		msg := fmt.Sprintf("unknown key %q", k)
		if s := closest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		bad = append(bad, msg)
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	allowed := make([]string, 0, len(known))
	for k := range known {
		allowed = append(allowed, k)
	}
	sort.Strings(allowed)
	return fmt.Errorf("config file %s: %s; allowed keys: %s", file, strings.Join(bad, "; "), strings.Join(allowed, ", "))
}

// closest returns the known key within edit distance 3 of k, if any.
func closest(k string, known map[string]any) string {
	best, bestD := "", 4
	keys := make([]string, 0, len(known))
	for c := range known {
		keys = append(keys, c)
	}
	sort.Strings(keys)
	for _, c := range keys {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Validate checks values that decode fine but cannot work.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "must not be empty")
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > 10*time.Minute {
		bad("shutdown_timeout", "%s is out of range; allowed: more than 0 and at most 10m", c.ShutdownTimeout)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "%q is not allowed; allowed: debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"auto", "text", "json"}, c.Log.Format) {
		bad("log.format", "%q is not allowed; allowed: auto, text, json", c.Log.Format)
	}
	if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		bad("http.listen", "%q is not host:port (%v)", c.HTTP.Listen, err)
	} else if n, err := parsePort(port); err != nil || n > 65535 {
		bad("http.listen", "port %q is not a number from 0 to 65535", port)
	}
	if (c.HTTP.Cert == "") != (c.HTTP.Key == "") {
		bad("http.cert_file", "cert_file and key_file must be set together")
	}
	if c.Storage.FlushInterval <= 0 || c.Storage.FlushInterval > time.Second {
		bad("storage.flush_interval", "%s is out of range; allowed: more than 0 and at most 1s (a crash may lose at most this much audio)", c.Storage.FlushInterval)
	}
	if c.Storage.ArchiveAfterDays < 0 {
		bad("storage.archive_after_days", "%d is negative; allowed: 0 (off) or more", c.Storage.ArchiveAfterDays)
	}
	if c.Storage.HotHighWatermark < 0 || c.Storage.HotHighWatermark > 100 {
		bad("storage.hot_high_watermark_pct", "%d is out of range; allowed: 0 (off) to 100", c.Storage.HotHighWatermark)
	}
	if (c.Storage.ArchiveAfterDays > 0 || c.Storage.HotHighWatermark > 0) && c.Storage.ArchiveDir == "" {
		bad("storage.archive_dir", "must be set when archive_after_days or hot_high_watermark_pct is set")
	}
	if c.Storage.PurgeInterval != 0 && c.Storage.PurgeInterval < time.Second {
		bad("storage.purge_interval", "%s is too short; allowed: 0 (off) or at least 1s", c.Storage.PurgeInterval)
	}
	if c.Storage.TierInterval < time.Second {
		bad("storage.tier_interval", "%s is too short; allowed: at least 1s", c.Storage.TierInterval)
	}
	if c.Storage.MinFreeBytes < 0 {
		bad("storage.min_free_bytes", "%d is negative", c.Storage.MinFreeBytes)
	}
	if c.Storage.DefaultRetentionDays < 0 {
		bad("storage.default_retention_days", "%d is negative; allowed: 0 (keep forever) or more", c.Storage.DefaultRetentionDays)
	}
	if c.Storage.PreserveDays < 0 || c.Storage.PreserveDays > 36525 {
		bad("storage.preserve_days", "%d is not allowed; allowed: 0 (hold indefinitely) to 36525 (100 years)", c.Storage.PreserveDays)
	}
	for i, p := range c.Capture.SIPPorts {
		if p < 1 || p > 65535 {
			bad(fmt.Sprintf("capture.sip_ports[%d]", i), "%d is not a port; allowed: 1 to 65535", p)
		}
	}
	for i, n := range c.Capture.LocalNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad(fmt.Sprintf("capture.local_networks[%d]", i), "%q is not a network in CIDR form (e.g. 10.0.0.0/8)", n)
		}
	}
	for i, a := range c.Capture.TrunkAddresses {
		if _, err := netip.ParseAddr(a); err != nil {
			bad(fmt.Sprintf("capture.trunk_addresses[%d]", i), "%q is not an IP address", a)
		}
	}
	if c.Capture.RTPTimeout < time.Second {
		bad("capture.rtp_timeout", "%s is too short; allowed: at least 1s", c.Capture.RTPTimeout)
	}
	if c.Capture.HoldTimeout < c.Capture.RTPTimeout {
		bad("capture.hold_timeout", "%s is shorter than capture.rtp_timeout", c.Capture.HoldTimeout)
	}
	if c.Keys.Credential == "" || strings.ContainsAny(c.Keys.Credential, "/\\") {
		bad("keys.credential", "%q must be a plain file name", c.Keys.Credential)
	}
	return errors.Join(errs...)
}

func parsePort(s string) (int, error) {
	var n int
	_, err := fmt.Sscan(s, &n)
	if err == nil && (n < 0 || fmt.Sprint(n) != s) {
		err = fmt.Errorf("bad port")
	}
	return n, err
}

// MasterKeyFile is where the master key file is, by default beside (never
// inside) the data directory.
func (c Config) MasterKeyFile() string {
	if c.Keys.MasterKeyFile != "" {
		return c.Keys.MasterKeyFile
	}
	return filepath.Clean(c.DataDir) + ".key"
}

// Print writes the effective configuration as YAML with secrets masked.
func (c Config) Print() ([]byte, error) {
	masked := c
	if masked.Keys.Passphrase != "" {
		masked.Keys.Passphrase = "********"
	}
	return yaml.Marshal(masked)
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

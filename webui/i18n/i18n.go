// Package i18n holds the web UI's message catalogs, one JSON file per
// language under catalogs/, and picks the language of a request.
//
// English is the reference catalog: Load refuses to start with a catalog
// that lacks one of its keys or has keys English does not, so a missing
// translation is a start-up error and a test failure, never a blank label
// in front of a user. Messages are plain strings; placeholders such as
// {n} are filled in by the page scripts, which get the whole catalog of
// the page's language embedded as JSON (pages.go), so the server and the
// browser read the same words.
//
// The language comes from the cookie the language picker sets, else from
// the browser's Accept-Language (RFC 9110 §12.5.4), else English.
package i18n

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

//go:embed catalogs/*.json
var catalogFS embed.FS

// Errors from Load and ParseAcceptLanguage.
var (
	// ErrCatalog: a catalog is missing, unreadable, or its keys differ from
	// English's (the message names the language and the keys).
	ErrCatalog = errors.New("i18n: bad catalog")
	// ErrHeader: an Accept-Language header too long to be honest.
	ErrHeader = errors.New("i18n: bad Accept-Language")
)

// Fallback is the language used when nothing else matches, and the
// reference every other catalog is checked against.
const Fallback = "en"

// maxHeader bounds the Accept-Language header we parse; browsers send a
// few dozen bytes.
const maxHeader = 4096

// Lang describes one language of the UI.
type Lang struct {
	Code string // ISO 639-1: en, de, …
	Name string // the language's name in itself, for the picker
	RTL  bool   // written right to left
}

// Languages lists the UI's languages in the picker's order.
func Languages() []Lang {
	return []Lang{
		{Code: "en", Name: "English"},
		{Code: "de", Name: "Deutsch"},
		{Code: "fr", Name: "Français"},
		{Code: "es", Name: "Español"},
		{Code: "it", Name: "Italiano"},
		{Code: "pl", Name: "Polski"},
		{Code: "ar", Name: "العربية", RTL: true},
	}
}

// Catalog is the messages of one language. It is immutable after Load.
type Catalog struct {
	lang Lang
	msgs map[string]string
}

// T returns the message for key. An unknown key returns the key itself in
// brackets, so a typo shows on the page and in tests instead of vanishing.
func (c *Catalog) T(key string) string {
	if m, ok := c.msgs[key]; ok {
		return m
	}
	return "[" + key + "]"
}

// Has reports whether key is in the catalog.
func (c *Catalog) Has(key string) bool {
	_, ok := c.msgs[key]
	return ok
}

// Code is the language code (the value of <html lang>).
func (c *Catalog) Code() string { return c.lang.Code }

// Dir is "rtl" or "ltr" (the value of <html dir>).
func (c *Catalog) Dir() string {
	if c.lang.RTL {
		return "rtl"
	}
	return "ltr"
}

// Messages returns a copy of every message, for the page scripts.
func (c *Catalog) Messages() map[string]string {
	out := make(map[string]string, len(c.msgs))
	for k, v := range c.msgs {
		out[k] = v
	}
	return out
}

// Keys returns the catalog's keys, sorted.
func (c *Catalog) Keys() []string {
	keys := make([]string, 0, len(c.msgs))
	for k := range c.msgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Bundle is every language's catalog.
type Bundle struct {
	langs []Lang
	cats  map[string]*Catalog
}

// Load reads the embedded catalogs and checks each against English.
func Load() (*Bundle, error) {
	b := &Bundle{langs: Languages(), cats: map[string]*Catalog{}}
	for _, l := range b.langs {
		raw, err := catalogFS.ReadFile("catalogs/" + l.Code + ".json")
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCatalog, l.Code, err)
		}
		var msgs map[string]string
		if err := json.Unmarshal(raw, &msgs); err != nil {
			return nil, fmt.Errorf("%w: %s.json: %v", ErrCatalog, l.Code, err)
		}
		b.cats[l.Code] = &Catalog{lang: l, msgs: msgs}
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	return b, nil
}

// check compares every catalog's keys with English's and refuses empty
// messages.
func (b *Bundle) check() error {
	ref := b.cats[Fallback]
	for _, l := range b.langs {
		c := b.cats[l.Code]
		var missing, extra, empty []string
		for k := range ref.msgs {
			if !c.Has(k) {
				missing = append(missing, k)
			}
		}
		for k, v := range c.msgs {
			if !ref.Has(k) {
				extra = append(extra, k)
			}
			if strings.TrimSpace(v) == "" {
				empty = append(empty, k)
			}
		}
		if len(missing)+len(extra)+len(empty) > 0 {
			slices.Sort(missing)
			slices.Sort(extra)
			slices.Sort(empty)
			return fmt.Errorf("%w: %s: %d keys missing %v, %d not in English %v, %d empty %v",
				ErrCatalog, l.Code, len(missing), missing, len(extra), extra, len(empty), empty)
		}
	}
	return nil
}

// Languages lists the bundle's languages in the picker's order.
func (b *Bundle) Languages() []Lang { return slices.Clone(b.langs) }

// Get returns the catalog of a language code.
func (b *Bundle) Get(code string) (*Catalog, bool) {
	c, ok := b.cats[code]
	return c, ok
}

// Pick chooses the catalog for a request: the picked language (the
// cookie's value) if it is one of ours, else the first language of
// Accept-Language we have, else English.
func (b *Bundle) Pick(picked, acceptLanguage string) *Catalog {
	if c, ok := b.cats[picked]; ok {
		return c
	}
	tags, _ := ParseAcceptLanguage(acceptLanguage)
	for _, t := range tags {
		if c, ok := b.cats[t]; ok {
			return c
		}
	}
	return b.cats[Fallback]
}

// ParseAcceptLanguage returns the primary language subtags of an
// Accept-Language header, lower case, best first (by q, then by order),
// without duplicates and without those with q=0. "de-CH, fr;q=0.8, *"
// gives [de fr]. Malformed entries are skipped; a header longer than 4 KiB
// is refused whole with ErrHeader.
func ParseAcceptLanguage(h string) ([]string, error) {
	if len(h) > maxHeader {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrHeader, len(h), maxHeader)
	}
	type entry struct {
		tag string
		q   float64
		pos int
	}
	var es []entry
	for i, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(part, ";")
		tag = strings.ToLower(strings.TrimSpace(tag))
		primary, _, _ := strings.Cut(tag, "-")
		if !isAlpha(primary) || len(primary) > 8 {
			continue // "*" and garbage
		}
		q := 1.0
		ok := true
		for _, p := range strings.Split(params, ";") {
			name, val, found := strings.Cut(strings.TrimSpace(p), "=")
			if !found || !strings.EqualFold(strings.TrimSpace(name), "q") {
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil || v < 0 || v > 1 || v != v {
				ok = false
				break
			}
			q = v
		}
		if !ok || q == 0 {
			continue
		}
		es = append(es, entry{tag: primary, q: q, pos: i})
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].q > es[j].q })
	out := make([]string, 0, len(es))
	for _, e := range es {
		if !slices.Contains(out, e.tag) {
			out = append(out, e.tag)
		}
	}
	return out, nil
}

func isAlpha(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

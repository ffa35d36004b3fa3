package i18n

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestCatalogsComplete fails when any catalog lacks a key English has (or
// has one English lacks, or an empty message): Load refuses such a set.
func TestCatalogsComplete(t *testing.T) {
	b, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	en, _ := b.Get("en")
	for _, l := range Languages() {
		c, ok := b.Get(l.Code)
		if !ok {
			t.Fatalf("no catalog for %s", l.Code)
		}
		for _, k := range en.Keys() {
			if !c.Has(k) {
				t.Errorf("%s lacks %q", l.Code, k)
			}
		}
		if len(c.Keys()) != len(en.Keys()) {
			t.Errorf("%s has %d keys, English %d", l.Code, len(c.Keys()), len(en.Keys()))
		}
		// Placeholders must survive translation, or the page shows "{n}".
		for _, k := range en.Keys() {
			for _, ph := range placeholders(en.T(k)) {
				if !strings.Contains(c.T(k), ph) {
					t.Errorf("%s %q lacks placeholder %s: %q", l.Code, k, ph, c.T(k))
				}
			}
		}
	}
}

// TestCheckCatchesGaps: the check itself finds a missing, an extra and an
// empty key (so TestCatalogsComplete cannot pass by accident).
func TestCheckCatchesGaps(t *testing.T) {
	mk := func(de map[string]string) *Bundle {
		b := &Bundle{langs: []Lang{{Code: "en"}, {Code: "de"}}, cats: map[string]*Catalog{
			"en": {lang: Lang{Code: "en"}, msgs: map[string]string{"a": "A", "b": "B"}},
			"de": {lang: Lang{Code: "de"}, msgs: de},
		}}
		return b
	}
	for name, de := range map[string]map[string]string{
		"missing": {"a": "A"},
		"extra":   {"a": "A", "b": "B", "c": "C"},
		"empty":   {"a": "A", "b": " "},
	} {
		err := mk(de).check()
		if !errors.Is(err, ErrCatalog) || !strings.Contains(err.Error(), "de") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := mk(map[string]string{"a": "x", "b": "y"}).check(); err != nil {
		t.Errorf("complete catalog refused: %v", err)
	}
}

func placeholders(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, s[i:i+j+1])
		s = s[i+j+1:]
	}
}

func TestPick(t *testing.T) {
	b, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cookie, header, want, dir string }{
		{"", "", "en", "ltr"},
		{"", "de-CH,de;q=0.9,en;q=0.8", "de", "ltr"},
		{"", "ja, fr;q=0.5", "fr", "ltr"},
		{"", "ar-EG", "ar", "rtl"},
		{"", "en;q=0.1, pl;q=0.9", "pl", "ltr"},
		{"", "it;q=0, es;q=0.2", "es", "ltr"},
		{"it", "de", "it", "ltr"},      // the picked language wins
		{"xx", "es", "es", "ltr"},      // a cookie naming no catalog is ignored
		{"", "*;q=1, zz", "en", "ltr"}, // nothing we have
	} {
		got := b.Pick(c.cookie, c.header)
		if got.Code() != c.want || got.Dir() != c.dir {
			t.Errorf("Pick(%q, %q) = %s %s, want %s %s", c.cookie, c.header, got.Code(), got.Dir(), c.want, c.dir)
		}
	}
}

func TestParseAcceptLanguage(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", []string{}},
		{"de-CH, fr;q=0.8, *", []string{"de", "fr"}},
		{"fr;q=0.3, de;q=0.7, de-AT", []string{"de", "fr"}},
		{"EN-us", []string{"en"}},
		{"es;q=abc, it", []string{"it"}},
		{"pl;q=2, ar;q=0.5", []string{"ar"}},
		{";;;,,,=", []string{}},
		{"x1;q=1", []string{}},
	} {
		got, err := ParseAcceptLanguage(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseAcceptLanguage(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	if _, err := ParseAcceptLanguage(strings.Repeat("de,", 2000)); !errors.Is(err, ErrHeader) {
		t.Errorf("huge header: %v", err)
	}
}

func TestUnknownKeyVisible(t *testing.T) {
	b, _ := Load()
	c, _ := b.Get("de")
	if got := c.T("no.such.key"); got != "[no.such.key]" {
		t.Errorf("unknown key gives %q", got)
	}
}

// FuzzAcceptLanguage: any header gives sorted, unique, lower-case primary
// tags of letters only, or ErrHeader; never a panic.
func FuzzAcceptLanguage(f *testing.F) {
	for _, s := range []string{"", "de-CH, fr;q=0.8, *", "en;q=0.1,ar;q=NaN", "a;q=1e309", ";q=", "pl;q=-0", "zh-Hant-TW;q=0.5;foo=bar"} {
		f.Add(s)
	}
	b, err := Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tags, err := ParseAcceptLanguage(h)
		if err != nil {
			if !errors.Is(err, ErrHeader) || len(h) <= maxHeader {
				t.Fatalf("error %v for %d bytes", err, len(h))
			}
			return
		}
		seen := map[string]bool{}
		for _, tag := range tags {
			if !isAlpha(tag) || len(tag) > 8 || seen[tag] {
				t.Fatalf("bad tag %q in %v", tag, tags)
			}
			seen[tag] = true
		}
		if c := b.Pick("", h); c == nil {
			t.Fatal("no catalog")
		}
	})
}

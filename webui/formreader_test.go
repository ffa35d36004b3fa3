package webui

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"strings"
	"testing"
	"testing/iotest"
)

// formPartOut is what a reader made of one part.
type formPartOut struct {
	name   string
	header string
	body   string
}

// readAllParts reads every part of body with formReader, handing the body
// out in reads of at most step bytes (0: the whole body through WriteTo).
// A negative step hands the body out in reads of at most -step bytes and
// reads each part as the store's ReadFrom does, in reads of many sizes,
// with every read allowed to go straight to the body's reader
// (readDirect).
func readAllParts(body []byte, boundary string, step int) ([]formPartOut, error) {
	var r io.Reader = bytes.NewReader(body)
	direct := step < 0
	if direct {
		step = -step
	}
	if step > 0 {
		r = iotest.OneByteReader(r)
		if step > 1 {
			r = &stepReader{r: bytes.NewReader(body), step: step}
		}
	}
	fr := newFormReader(r, boundary)
	if direct {
		fr.minDirect = 1
	}
	var out []formPartOut
	for {
		p, err := fr.NextPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		var b []byte
		if direct {
			b, err = readSizes(p, []int{5, 64 << 10, 1, 1000, 65000, 77})
		} else if step == 0 {
			// The upload's way: WriteTo, straight from the read buffer.
			var buf bytes.Buffer
			_, err = p.WriteTo(&buf)
			b = buf.Bytes()
		} else {
			b, err = io.ReadAll(p)
		}
		if err != nil {
			return out, err
		}
		out = append(out, formPartOut{p.FormName(), headerString(p.Header), string(b)})
	}
}

// readSizes reads r to its end in reads of the given sizes, in turn.
func readSizes(r io.Reader, sizes []int) ([]byte, error) {
	var out []byte
	buf := make([]byte, 64<<10)
	for i := 0; ; i++ {
		n, err := r.Read(buf[:sizes[i%len(sizes)]])
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// readAllPartsStd does the same with mime/multipart.
func readAllPartsStd(body []byte, boundary string) ([]formPartOut, error) {
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var out []formPartOut
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return out, err
		}
		out = append(out, formPartOut{p.FormName(), headerString(p.Header), string(b)})
	}
}

func headerString(h map[string][]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(h) {
		b.WriteString(k + ": " + strings.Join(h[k], "|") + "\n")
	}
	return b.String()
}

func sortedKeys(h map[string][]string) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

// stepReader returns at most step bytes per Read.
type stepReader struct {
	r    io.Reader
	step int
}

func (s *stepReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.step)]) }

// formSeeds are bodies for boundary "B": the upload's layout, odd but
// valid framing, and broken framing.
var formSeeds = []string{
	"--B\r\nContent-Disposition: form-data; name=jsondata\r\n\r\n{\"a\":1}\r\n--B\r\nContent-Disposition: form-data; name=attachment; filename=a.wav\r\nContent-Type: audio/wave\r\n\r\nRIFF....WAVE\r\n--B--\r\n",
	"preamble line\r\n--B \t\r\nX: y\r\n\r\nbody with \r\n--Bx and \r\n--B- inside\r\n--B\r\n\r\n\r\n--B--",
	"--B\nContent-Disposition: form-data; name=a\n\nLF body\n--B\n\n--B--\n",
	"--B\r\nContent-Disposition: form-data; name=q\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo=\r\n world\r\n--B--\r\n",
	"--B\r\n\r\n--B\r\n\r\n\r\n--B--  \r\nepilogue",
	"--B--\r\n",
	"--B\r\nX: y\r\n\r\ncut off",
	"--B\r\nX: y\r\n\r\nbody\r\n--B",
	"--B\r\nX: y\r\n\r\nbody\r\n--Bjunk\r\n",
	"--B\r\nX: y\r\n\r\nbody\r\n--B--junk\r\n",
	"--B\r\nbad header line\r\n\r\nbody\r\n--B--\r\n",
	"--B\r\n \r\n\r\nbody\r\n--B--\r\n",
	"no boundary at all",
	"",
}

// TestFormReaderMatchesMultipart: on every seed, in whole, one-byte and
// odd-sized reads, formReader returns exactly the parts mime/multipart
// returns, and fails where it fails.
func TestFormReaderMatchesMultipart(t *testing.T) {
	for _, seed := range formSeeds {
		checkFormReader(t, []byte(seed))
	}
	// A body far larger than the read block, with delimiter look-alikes
	// straddling block edges.
	var big bytes.Buffer
	big.WriteString("--B\r\nContent-Disposition: form-data; name=attachment\r\n\r\n")
	for i := 0; big.Len() < 3*formBufSize; i++ {
		big.WriteString(strings.Repeat("x", 1000+i%977))
		big.WriteString("\r\n--B" + string(rune('a'+i%26)))
	}
	big.WriteString("\r\n--B--\r\n")
	checkFormReader(t, big.Bytes())
}

func checkFormReader(t *testing.T, body []byte) {
	t.Helper()
	want, werr := readAllPartsStd(body, "B")
	for _, step := range []int{0, 1, 7, 4093, -1, -7, -4093, -(1 << 20)} {
		got, err := readAllParts(body, "B", step)
		if werr == nil {
			if errors.Is(err, io.ErrUnexpectedEOF) && strings.Contains(err.Error(), "inside a part's header") && len(got) == len(want) {
				// mime/multipart reports a body cut off inside a part's
				// header as the end of the parts (textproto's io.EOF
				// comes through as is); formReader calls it cut off.
				continue
			}
			if err != nil {
				t.Fatalf("step %d, body %q: mime/multipart reads %d parts, formReader fails: %v", step, clip(string(body)), len(want), err)
			}
			if len(got) != len(want) {
				t.Fatalf("step %d, body %q: %d parts, mime/multipart %d", step, clip(string(body)), len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("step %d, body %q: part %d:\n got %q\nwant %q", step, clip(string(body)), i, got[i], want[i])
				}
			}
			continue
		}
		// mime/multipart cannot read a line longer than its 4 KiB buffer
		// where it looks for a boundary line; formReader can. Apart from
		// that, what it refuses formReader refuses too.
		if err == nil && !strings.Contains(werr.Error(), "buffer full") {
			t.Fatalf("step %d, body %q: mime/multipart fails (%v), formReader reads %d parts", step, clip(string(body)), werr, len(got))
		}
	}
}

// TestFormReaderCutOff: a body that ends early, after its first boundary
// line, is io.ErrUnexpectedEOF: the handler's "cut off".
func TestFormReaderCutOff(t *testing.T) {
	full := []byte(formSeeds[0])
	// Before the first boundary line is whole there is no multipart body
	// yet ("no boundary"), which the handler reports as malformed.
	for cut := len("--B\r\n"); cut < len(full)-len("\r\n--B--\r\n"); cut++ {
		_, err := readAllParts(full[:cut], "B", 0)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d (%q): %v, want io.ErrUnexpectedEOF", cut, full[:cut], err)
		}
	}
}

// FuzzFormReader: on any body formReader never panics, and agrees with
// mime/multipart (checkFormReader).
func FuzzFormReader(f *testing.F) {
	for _, s := range formSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFormReader(t, body)
	})
}

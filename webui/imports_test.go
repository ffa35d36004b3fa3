package webui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/callvault/callvault/store/meta"
)

// byteImporter stands in for the capture engine (the real one is tested
// end to end in test/cluster_import_e2e_test.go): it reads the stream and
// refuses what does not start like a pcap.
type byteImporter struct {
	mu      sync.Mutex
	got     []byte
	name    string
	started chan struct{} // closed when an import begins; nil: not watched
	release chan struct{} // an import waits for it; nil: does not wait
}

func (b *byteImporter) Import(_ context.Context, name string, r io.Reader) (any, int, error) {
	if b.started != nil {
		close(b.started)
		<-b.release
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0, err
	}
	if !bytes.HasPrefix(data, []byte{0xd4, 0xc3, 0xb2, 0xa1}) {
		return nil, 0, fmt.Errorf("%w: %s: no pcap magic", ErrBadCapture, name)
	}
	b.mu.Lock()
	b.got, b.name = data, name
	b.mu.Unlock()
	return map[string]any{"calls": []any{}, "packets": 0}, 0, nil
}

// TestImportRoute: an installation admin's capture reaches the importer
// as sent and is audited; a file that is not a capture is a 400; a tenant
// admin and a user are refused; a second import while one runs is a 409.
func TestImportRoute(t *testing.T) {
	imp := &byteImporter{}
	e := newEnv(t, func(_ *Config, d *Data) { d.Imports = imp })
	e.addUser("boss", meta.RoleAdmin)
	e.addUser("agent", meta.RoleUser)
	pcap := append([]byte{0xd4, 0xc3, 0xb2, 0xa1}, bytes.Repeat([]byte{7}, 100_000)...)

	post := func(who, name string, body []byte) response {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/imports?name="+name, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.tcpdump.pcap")
		return e.do(basic(req, who))
	}
	if r := post("boss", "../../etc/trunk.pcap", pcap); r.code != http.StatusCreated {
		t.Fatalf("import: %d %s", r.code, r.body)
	}
	if !bytes.Equal(imp.got, pcap) || imp.name != "trunk.pcap" {
		t.Fatalf("importer got %d bytes named %q", len(imp.got), imp.name)
	}
	page, err := e.st.Meta().SearchAudit(meta.AuditQuery{Action: meta.AuditUpload, Limit: 10})
	if err != nil || len(page.Entries) == 0 || !strings.Contains(page.Entries[0].Detail, "trunk.pcap") {
		t.Fatalf("audit: %+v %v", page, err)
	}
	if r := post("boss", "notes.txt", []byte("hello")); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), "no pcap magic") {
		t.Fatalf("a text file: %d %s", r.code, r.body)
	}
	if r := post("agent", "x.pcap", pcap); r.code != http.StatusForbidden {
		t.Fatalf("a user: %d", r.code)
	}

	// One at a time.
	imp.started, imp.release = make(chan struct{}), make(chan struct{})
	done := make(chan response)
	go func() { done <- post("boss", "first.pcap", pcap) }()
	<-imp.started
	if r := post("boss", "second.pcap", pcap); r.code != http.StatusConflict {
		t.Fatalf("a second import while one runs: %d %s", r.code, r.body)
	}
	close(imp.release)
	if r := <-done; r.code != http.StatusCreated {
		t.Fatalf("first import: %d %s", r.code, r.body)
	}
}

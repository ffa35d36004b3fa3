package webui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// fakeCluster stands in for the raft node (the real one is tested in
// package cluster and end to end in test/cluster_e2e_test.go); it records
// what the handlers asked for.
type fakeCluster struct {
	*meta.DB
	removed []string
	waitErr error
	noCA    bool
}

func (f *fakeCluster) ClusterStatus(context.Context) (any, error) {
	return map[string]any{"leader": "node-a", "nodes": []map[string]any{{"id": "node-a", "state": "Leader", "voter": true}}}, nil
}

func (f *fakeCluster) ClusterToken() (string, time.Time, error) {
	if f.noCA {
		return "", time.Time{}, errors.New("cluster: this node does not hold the cluster CA")
	}
	return "cvj1.secret.fp.addr", time.Unix(1_900_000_000, 0).UTC(), nil
}

func (f *fakeCluster) ClusterRemove(_ context.Context, id string) error {
	if id != "node-b" {
		return fmt.Errorf("%w: no member %q", meta.ErrNotFound, id)
	}
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeCluster) WaitCommitted(context.Context) error { return f.waitErr }

// withFakeCluster makes newEnv's server a cluster member.
func withFakeCluster(_ *Config, d *Data) { d.Admin = &fakeCluster{DB: d.Admin.(*meta.DB)} }

// TestClusterRoutes: a cluster member's admin sees status, gets a token,
// removes a member; the answers and error statuses are what the CLI
// relies on; non-admins are refused.
func TestClusterRoutes(t *testing.T) {
	fc := &fakeCluster{}
	e := newEnv(t, func(_ *Config, d *Data) {
		fc.DB = d.Admin.(*meta.DB)
		d.Admin = fc
	})
	e.addUser("boss", meta.RoleAdmin)
	e.addUser("agent", meta.RoleUser)

	r := e.do(basic(httptest.NewRequest(http.MethodGet, "/api/v1/cluster", nil), "boss"))
	var st struct {
		Leader string
		Nodes  []struct{ ID, State string }
	}
	if r.code != 200 {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	r.json(t, &st)
	if st.Leader != "node-a" || len(st.Nodes) != 1 || st.Nodes[0].State != "Leader" {
		t.Fatalf("status body %s", r.body)
	}

	r = e.do(basic(httptest.NewRequest(http.MethodPost, "/api/v1/cluster/tokens", nil), "boss"))
	var tok tokenResponse
	if r.code != 201 {
		t.Fatalf("token: %d %s", r.code, r.body)
	}
	r.json(t, &tok)
	if tok.Token != "cvj1.secret.fp.addr" || tok.Expires.IsZero() {
		t.Fatalf("token body %s", r.body)
	}
	fc.noCA = true
	if r = e.do(basic(httptest.NewRequest(http.MethodPost, "/api/v1/cluster/tokens", nil), "boss")); r.code != 409 {
		t.Fatalf("token without the CA: %d %s, want 409", r.code, r.body)
	}

	if r = e.do(basic(httptest.NewRequest(http.MethodDelete, "/api/v1/cluster/nodes/node-b", nil), "boss")); r.code != 204 || len(fc.removed) != 1 {
		t.Fatalf("remove: %d %s (removed %v)", r.code, r.body, fc.removed)
	}
	if r = e.do(basic(httptest.NewRequest(http.MethodDelete, "/api/v1/cluster/nodes/node-z", nil), "boss")); r.code != 404 {
		t.Fatalf("remove unknown: %d %s, want 404", r.code, r.body)
	}

	if r = e.do(basic(httptest.NewRequest(http.MethodGet, "/api/v1/cluster/wait", nil), "agent")); r.code != 200 {
		t.Fatalf("wait: %d %s", r.code, r.body)
	}
	fc.waitErr = errors.New("cluster: no leader")
	if r = e.do(basic(httptest.NewRequest(http.MethodGet, "/api/v1/cluster/wait", nil), "agent")); r.code != 503 {
		t.Fatalf("wait without a leader: %d %s, want 503", r.code, r.body)
	}

	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/api/v1/cluster", nil),
		httptest.NewRequest(http.MethodPost, "/api/v1/cluster/tokens", nil),
		httptest.NewRequest(http.MethodDelete, "/api/v1/cluster/nodes/node-b", nil),
	} {
		if r = e.do(basic(req, "agent")); r.code != 403 {
			t.Fatalf("%s %s as a user: %d, want 403", req.Method, req.URL.Path, r.code)
		}
	}
}

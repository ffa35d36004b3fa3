package webui

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui/i18n"
)

// clusterIDs are the elements static/cluster.js needs; it looks each up
// without checking, so the template and the script must agree.
var clusterIDs = []string{"cluster", "h-cluster", "cluster-summary", "c-leader", "c-term", "c-commit", "c-applied", "c-replicas",
	"cluster-nodes", "c-updated", "cluster-join-form", "c-new-data", "c-new-http", "c-new-cluster", "c-token", "c-token-box",
	"c-expires", "c-token-value", "c-copy-token", "c-command", "c-copy-command"}

// TestAdminClusterSection (issue 8): the admin page has the cluster
// section only on a cluster member and only for the installation's admins;
// a single node's page has no trace of it (no section, no link to it).
func TestAdminClusterSection(t *testing.T) {
	t.Run("single node", func(t *testing.T) {
		e := newEnv(t, nil)
		e.addUser("admin", meta.RoleAdmin)
		r := e.page(e.signIn("admin"), "/admin")
		if r.code != 200 {
			t.Fatalf("admin page: %d", r.code)
		}
		for _, id := range clusterIDs {
			if has(r.body, id) {
				t.Errorf("a single node's admin page has #%s", id)
			}
		}
		if strings.Contains(string(r.body), "#h-cluster") {
			t.Error("a single node's admin page links to the cluster section")
		}
		if !has(r.body, "storage") {
			t.Error("the rest of the admin page is missing")
		}
	})

	t.Run("cluster member", func(t *testing.T) {
		e := newEnv(t, withFakeCluster)
		e.addUser("admin", meta.RoleAdmin)
		e.addUser("sup", meta.RoleSupervisor)
		if _, err := e.st.Apply(context.Background(), &meta.CreateTenant{Tenant: meta.Tenant{ID: "acme", Name: "Acme"}}); err != nil {
			t.Fatal(err)
		}
		acme := e.addUser("acme-admin", meta.RoleAdmin, func(u *meta.User) { u.Tenant = "acme" })

		r := e.page(e.signIn("admin"), "/admin")
		if r.code != 200 {
			t.Fatalf("admin page: %d", r.code)
		}
		for _, id := range clusterIDs {
			if !has(r.body, id) {
				t.Errorf("the cluster member's admin page lacks #%s", id)
			}
		}
		body := string(r.body)
		if !strings.Contains(body, `href="#h-cluster"`) {
			t.Error("no link to the cluster section in the page's contents")
		}
		// The token and the command line are shell text: left to right
		// even on an Arabic page.
		for _, id := range []string{"c-token-value", "c-command", "c-new-data"} {
			i := strings.Index(body, `id="`+id+`"`)
			if end := strings.IndexByte(body[i:], '>'); i < 0 || end < 0 || !strings.Contains(body[i:i+end], `dir="ltr"`) {
				t.Errorf("#%s is not dir=ltr", id)
			}
		}

		// A tenant's admin manages the tenant, not the installation's nodes.
		sid, _ := e.srv.sess.create(acme.ID, acme.Username, string(acme.Role))
		r = e.page(&http.Cookie{Name: sessionCookie, Value: sid}, "/admin")
		if r.code != 200 || has(r.body, "cluster") || has(r.body, "cluster-join-form") {
			t.Errorf("tenant admin: %d, cluster section present: %v", r.code, has(r.body, "cluster"))
		}
		// Other roles have no admin page at all.
		if r = e.page(e.signIn("sup"), "/admin"); r.code != 404 || has(r.body, "cluster") {
			t.Errorf("supervisor: %d, cluster section present: %v", r.code, has(r.body, "cluster"))
		}

		// The section's script is served from the embedded assets.
		if r = e.page(nil, "/static/cluster.js"); r.code != 200 || !strings.Contains(string(r.body), "/api/v1/cluster/tokens") {
			t.Errorf("/static/cluster.js: %d (%d bytes)", r.code, len(r.body))
		}
	})
}

// TestClusterStateMessages: every state a member reports (hashicorp/raft's
// RaftState names and the status's "unreachable") has its message in every
// language; an unknown one would show untranslated.
func TestClusterStateMessages(t *testing.T) {
	b, err := i18n.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range b.Languages() {
		c, _ := b.Get(l.Code)
		for _, s := range []string{"Leader", "Follower", "Candidate", "Shutdown", "unreachable"} {
			if !c.Has("cluster.state-" + s) {
				t.Errorf("%s: no message cluster.state-%s", l.Code, s)
			}
		}
	}
}

package webui

import (
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// TestAdminRoutes: groups with restricted permissions take effect for
// their members, a user's role and groups change, the last admin keeps
// the role, retention policies are set per tenant and group, and tenants
// are the installation's admins' business.
func TestAdminRoutes(t *testing.T) {
	f := newFixture(t)
	if r := f.send("admin", "POST", "/api/v1/groups", `{"name":"Night Shift","supervisors":["`+f.users["sup"].ID+`"],"permissions":{"play":true}}`); r.code != 201 || !strings.Contains(string(r.body), `"id":"night-shift"`) {
		t.Fatalf("create group: %d %s", r.code, r.body)
	}
	if r := f.send("admin", "POST", "/api/v1/groups", `{"name":"Night Shift"}`); r.code != 409 {
		t.Errorf("duplicate group: %d %s", r.code, r.body)
	}
	if r := f.send("admin", "POST", "/api/v1/groups", `{"name":"X","supervisors":["nobody"]}`); r.code != 400 {
		t.Errorf("unknown supervisor: %d %s", r.code, r.body)
	}
	// alice joins the group: its permissions (play only) restrict her.
	alice := f.users["alice"]
	r := f.send("admin", "PUT", "/api/v1/users/"+alice.ID, `{"displayName":"Alice","role":"user","groups":["night-shift"],"supervisedGroups":[],"permissions":{"play":true,"download":true,"notes":true}}`)
	if r.code != 200 || !strings.Contains(string(r.body), `"groups":["night-shift"]`) {
		t.Fatalf("update user: %d %s", r.code, r.body)
	}
	if r := f.send("alice", "GET", "/api/v1/me", ""); !strings.Contains(string(r.body), `"actions":["account","view","play"]`) {
		t.Errorf("the group's permissions do not restrict its member: %s", r.body)
	}
	if r := f.send("admin", "PUT", "/api/v1/users/"+alice.ID, `{"role":"user","groups":["nosuch"]}`); r.code != 400 {
		t.Errorf("unknown group: %d %s", r.code, r.body)
	}
	// The default tenant's only enabled admins cannot all be demoted.
	admins := 0
	us, _ := f.st.Meta().Users("")
	for _, u := range us {
		if u.Role == meta.RoleAdmin && !u.Disabled {
			admins++
		}
	}
	demoted := 0
	for _, u := range us {
		if u.Role != meta.RoleAdmin || u.Disabled {
			continue
		}
		r := f.send("admin", "PUT", "/api/v1/users/"+u.ID, `{"role":"user","groups":[],"supervisedGroups":[],"permissions":{}}`)
		if r.code == 200 {
			demoted++
		} else if r.code != 409 {
			t.Fatalf("demote %s: %d %s", u.Username, r.code, r.body)
		}
		if u.Username == "admin" {
			break // admin demoted itself last or was refused
		}
	}
	if demoted >= admins {
		t.Fatalf("all %d admins demoted", admins)
	}

	if r := f.send(`t2\t2admin`, "PUT", "/api/v1/retention", `{"days":90}`); r.code != 200 || !strings.Contains(string(r.body), `"tenantDays":90`) {
		t.Fatalf("tenant retention: %d %s", r.code, r.body)
	}
	if days, ok, _ := f.st.Meta().RetentionFor("t2", "g9"); !ok || days != 90 {
		t.Fatalf("t2's new recordings get %d %v", days, ok)
	}
	if r := f.send(`t2\t2admin`, "PUT", "/api/v1/retention", `{"group":"night-shift","days":7}`); r.code != 400 {
		t.Errorf("another tenant's group: %d %s", r.code, r.body)
	}
	if r := f.send(`t2\t2admin`, "POST", "/api/v1/tenants", `{"name":"Evil"}`); r.code != 403 {
		t.Errorf("tenant admin creating a tenant: %d", r.code)
	}
	if es := f.auditEntries(t, meta.AuditQuery{Action: meta.AuditConfig}); len(es) == 0 || !strings.Contains(es[0].Detail, "90 days") {
		t.Errorf("retention change not audited: %+v", es)
	}
}

// TestRetentionRecompute: PUT /api/v1/retention with recompute applies the
// new policy to the tenant's existing recordings (a held one's date only
// moves later), says how many changed, and audits it; without recompute
// existing recordings keep their dates.
func TestRetentionRecompute(t *testing.T) {
	f := newFixture(t)
	plain := f.freshRecording(t, false)
	held := f.freshRecording(t, true)
	date := func(id string) time.Time {
		rec, err := f.st.Meta().Recording(id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.DeleteAfter
	}
	heldBefore := date(held)
	start := f.clock.Now().Add(-time.Hour).UTC()

	if r := f.send("admin", "PUT", "/api/v1/retention", `{"days":30}`); r.code != 200 || strings.Contains(string(r.body), "recomputed") {
		t.Fatalf("set without recompute: %d %s", r.code, r.body)
	}
	if !date(plain).IsZero() {
		t.Fatalf("an existing recording got %v without recompute", date(plain))
	}
	r := f.send("admin", "PUT", "/api/v1/retention", `{"days":30,"recompute":true}`)
	var out retentionJSON
	r.json(t, &out)
	if r.code != 200 || out.Recomputed == nil || *out.Recomputed < 1 {
		t.Fatalf("recompute: %d %s", r.code, r.body)
	}
	if want := start.AddDate(0, 0, 30); !date(plain).Equal(want) {
		t.Errorf("plain recording: delete after %v, want %v", date(plain), want)
	}
	if !date(held).Equal(heldBefore) {
		t.Errorf("held recording: delete after %v, was %v (a hold's date never moves earlier)", date(held), heldBefore)
	}
	es := f.auditEntries(t, meta.AuditQuery{Action: meta.AuditConfig})
	if len(es) == 0 || !strings.Contains(es[0].Detail, "existing recordings") {
		t.Errorf("recompute not audited: %+v", es)
	}
}

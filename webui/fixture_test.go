package webui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
	"github.com/google/uuid"
)

// fixture is a server over a real store with two tenants, every role,
// and recordings uploaded through the API: the world the route × role and
// leak tests run in.
//
//	tenant ""  admin, sup (supervises g1), alice (g1), bob (g2), rec
//	           (record-only, g1), aud (auditor), victim (user, for
//	           disable/enable), and np-<role>: the roles with every
//	           permission withheld
//	tenant t2  t2admin, carol (g9), t2aud
//
//	target     alice's call, preserved, with audio: what most routes act on
//	other      another preserved call of alice (the far end of links)
//	bobRec     bob's call, with planted strings: alice, rec and aud must never see it
//	carolRec   carol's call in t2, with planted strings: tenant "" must never see it
type fixture struct {
	*testEnv
	users    map[string]meta.User // by login name
	target   string
	other    string
	bobRec   string
	carolRec string
	// planted are strings that only appear in bobRec and carolRec.
	plantedBob, plantedCarol []string
}

// fixtureMod, when set, changes the fixture server's Config or Data
// (newFixtureWith).
var fixtureMod func(*Config, *Data)

// ident is who sends a request: a login name ("" = anonymous).
type ident string

func (i ident) tenantLogin() string { return string(i) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := newEnv(t, fixtureMod)
	f := &fixture{testEnv: e, users: map[string]meta.User{}}
	add := func(login, tenant, name string, role meta.Role, mod ...func(*meta.User)) {
		u := e.addUser(name, role, append([]func(*meta.User){func(u *meta.User) { u.Tenant = tenant }}, mod...)...)
		f.users[login] = u
	}
	add("admin", "", "admin", meta.RoleAdmin)
	add("sup", "", "sup", meta.RoleSupervisor, func(u *meta.User) { u.Groups, u.SupervisedGroups = []string{"g1"}, []string{"g1"} })
	add("alice", "", "alice", meta.RoleUser, func(u *meta.User) { u.Groups = []string{"g1"} })
	add("bob", "", "bob", meta.RoleUser, func(u *meta.User) { u.Groups = []string{"g2"} })
	add("rec", "", "rec", meta.RoleRecordOnly, func(u *meta.User) { u.Groups = []string{"g1"} })
	add("aud", "", "aud", meta.RoleAuditor)
	add("victim", "", "victim", meta.RoleUser)
	for _, role := range Roles {
		add("np-"+string(role), "", "np-"+string(role), role, func(u *meta.User) {
			u.Permissions = meta.Permissions{}
			if role == meta.RoleSupervisor {
				u.Groups, u.SupervisedGroups = []string{"g1"}, []string{"g1"}
			}
		})
	}
	add(`t2\t2admin`, "t2", "t2admin", meta.RoleAdmin)
	add(`t2\carol`, "t2", "carol", meta.RoleUser, func(u *meta.User) { u.Groups = []string{"g9"} })
	add(`t2\t2aud`, "t2", "t2aud", meta.RoleAuditor)

	wav := readTestdata(t, "jfk_8k_pcm16.wav")
	start := e.clock.Now().Add(-2 * time.Hour)
	f.target = f.upload(t, "admin", metaJSON("alice", start, "PT11S", `"preserved":true,"notes":"target note"`), wav)
	f.other = f.upload(t, "admin", metaJSON("alice", start.Add(time.Minute), "PT11S", `"preserved":true`), wav)

	bobJSON := `{"startDateTime":"` + start.Add(2*time.Minute).Format(time.RFC3339) + `","duration":"PT11S","direction":2,` +
		`"localParty":{"username":"bob","phoneNumber":"2077"},"remoteParty":{"phoneNumber":"+41760001357"},` +
		`"pbxCallId":"PLANTED-PBX-BOB","notes":"plantedbobnote zebra"}`
	f.bobRec = f.upload(t, "admin", bobJSON, wav)
	carolJSON := `{"startDateTime":"` + start.Add(3*time.Minute).Format(time.RFC3339) + `","duration":"PT11S","direction":1,` +
		`"localParty":{"username":"carol","phoneNumber":"9099172638"},"remoteParty":{"phoneNumber":"+41790002468"},` +
		`"pbxCallId":"PLANTED-PBX-CAROL","notes":"plantedcarolnote quokka","preserved":true}`
	f.carolRec = f.upload(t, `t2\t2admin`, carolJSON, wav)
	// More planted metadata, set through the API by someone who may.
	for _, pl := range []struct{ who, id, tag string }{{"admin", f.bobRec, "BOB"}, {`t2\t2admin`, f.carolRec, "CAROL"}} {
		for _, c := range []struct{ method, path, body string }{
			{"PUT", "/category", `{"category":"plantedcat-` + pl.tag + `"}`},
			{"PUT", "/fields/planted", `{"value":"plantedfield-` + pl.tag + `"}`},
			{"PUT", "/transcript", `{"transcript":"plantedtranscript-` + pl.tag + `"}`},
			{"POST", "/bookmarks", `{"type":"manual","offsetMs":1000,"label":"plantedmark-` + pl.tag + `"}`},
		} {
			if r := f.send(ident(pl.who), c.method, "/api/v1/recordings/"+pl.id+c.path, c.body); r.code != http.StatusOK {
				t.Fatalf("plant %s %s: %d %s", c.method, c.path, r.code, r.body)
			}
		}
	}
	refOf := func(id string) string {
		rec, err := e.st.Meta().Recording(id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Reference
	}
	common := []string{"plantedcat-", "plantedfield-", "plantedtranscript-", "plantedmark-"}
	for _, c := range common {
		f.plantedBob = append(f.plantedBob, c+"BOB")
		f.plantedCarol = append(f.plantedCarol, c+"CAROL")
	}
	f.plantedBob = append(f.plantedBob, f.bobRec, refOf(f.bobRec), "PLANTED-PBX-BOB", "plantedbobnote", "41760001357")
	// Planted strings are long enough not to turn up by chance in what
	// others may see (hex IDs, nanosecond timestamps): carol's local number
	// was "9099" once, and a recording alice may see carried those digits
	// (in an ID or a time), which the leak check took for a leak.
	f.plantedCarol = append(f.plantedCarol, f.carolRec, refOf(f.carolRec), "PLANTED-PBX-CAROL", "plantedcarolnote", "41790002468", "9099172638")
	return f
}

// upload sends an upload as who and returns the new recording's ID.
func (f *fixture) upload(t *testing.T, who ident, jsondata string, wav []byte) string {
	t.Helper()
	req := uploadRequest(t, "/api/v1/recordings", jsondata, "call.wav", "audio/wave", wav)
	req.SetBasicAuth(who.tenantLogin(), testPassword)
	r := f.do(req)
	if r.code != http.StatusCreated {
		t.Fatalf("upload as %s: %d %s", who, r.code, r.body)
	}
	var out struct{ ID string }
	r.json(t, &out)
	return out.ID
}

// send makes a request as who with a JSON body ("" = none).
func (f *fixture) send(who ident, method, path, body string) response {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if who != "" {
		req.SetBasicAuth(who.tenantLogin(), testPassword)
	}
	return f.do(req)
}

// principal is who as the server sees them (effective permissions).
func (f *fixture) principal(t *testing.T, who ident) *Principal {
	u, err := effectiveUser(f.st.Meta(), f.users[string(who)])
	if err != nil {
		t.Fatal(err)
	}
	return &Principal{User: u}
}

// sees reports whether who may see recording id.
func (f *fixture) sees(t *testing.T, who ident, id string) bool {
	rec, err := f.st.Meta().Recording(id)
	if err != nil {
		t.Fatal(err)
	}
	return f.principal(t, who).View().Sees(&rec)
}

// freshRecording creates a metadata-only recording of alice (no audio),
// for the routes that change or delete.
func (f *fixture) freshRecording(t *testing.T, preserved bool) string {
	t.Helper()
	id, _ := uuid.NewV7()
	rec := meta.Recording{ID: id.String(), Start: f.clock.Now().Add(-time.Hour), Direction: meta.DirIncoming,
		Source: meta.SourceUpload, Status: meta.StatusComplete, Group: "g1",
		LocalParty: meta.LocalParty{User: f.users["alice"].ID, Username: "alice"}}
	ctx := context.Background()
	if _, err := f.st.Apply(ctx, &meta.CreateRecording{Recording: rec}); err != nil {
		t.Fatal(err)
	}
	if preserved {
		// A dated hold: one person may lift it (an indefinite one takes
		// two, TestReleaseTwoPersonRule).
		if _, err := f.st.Apply(ctx, &meta.Preserve{ID: rec.ID, By: "x", At: f.clock.Now(), Until: f.clock.Now().AddDate(1, 0, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	return rec.ID
}

// identities are every kind of caller the matrix sends as.
var identities = []ident{"admin", "sup", "alice", "bob", "rec", "aud",
	"np-admin", "np-supervisor", "np-user", "np-record-only", "np-auditor",
	`t2\t2admin`, `t2\carol`, `t2\t2aud`, ""}

package webui

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// routeCase is how the matrix sends one route: the request for a caller,
// the recording it acts on ("" = none: the answer does not depend on
// visibility) and the success status.
type routeCase struct {
	req func(t *testing.T, f *fixture, who ident) (path, body, target string)
	ok  int
}

func onTarget(suffix, body string) func(*testing.T, *fixture, ident) (string, string, string) {
	return func(t *testing.T, f *fixture, who ident) (string, string, string) {
		return "/api/v1/recordings/" + f.target + suffix, body, f.target
	}
}

func onFresh(suffix string, preserved bool) func(*testing.T, *fixture, ident) (string, string, string) {
	return func(t *testing.T, f *fixture, who ident) (string, string, string) {
		id := f.freshRecording(t, preserved)
		return "/api/v1/recordings/" + id + suffix, "", id
	}
}

func plain(path, body string) func(*testing.T, *fixture, ident) (string, string, string) {
	return func(*testing.T, *fixture, ident) (string, string, string) { return path, body, "" }
}

// matrixCases has one entry per route of apiRoutes; the test fails for a
// route without one, so a new route cannot skip the matrix.
var matrixCases = map[string]routeCase{
	"POST /fw/Apps/Recorder/WebAPI/Recordings": {ok: 201},
	"POST /api/v1/recordings":                  {ok: 201},
	"GET /api/v1/recordings":                   {req: plain("/api/v1/recordings?sort=oldest&limit=10", ""), ok: 200},
	"GET /api/v1/recordings/{id}":              {req: onTarget("", ""), ok: 200},
	"GET /api/v1/recordings/{id}/audio":        {req: onTarget("/audio", ""), ok: 200},
	"GET /api/v1/recordings/{id}/download":     {req: onTarget("/download?format=wav", ""), ok: 200},
	"GET /api/v1/recordings/{id}/peaks":        {req: onTarget("/peaks?n=50", ""), ok: 200},
	"POST /api/v1/recordings/download": {req: func(t *testing.T, f *fixture, who ident) (string, string, string) {
		return "/api/v1/recordings/download", `{"ids":["` + f.target + `"],"format":"wav"}`, f.target
	}, ok: 200},
	"DELETE /api/v1/recordings/{id}": {req: onFresh("", false), ok: 204},
	"POST /api/v1/recordings/delete": {req: func(t *testing.T, f *fixture, who ident) (string, string, string) {
		// Per-ID results: 200 whoever may delete; the results are checked in TestBulkDelete.
		return "/api/v1/recordings/delete", `{"ids":["` + f.freshRecording(t, false) + `"]}`, ""
	}, ok: 200},
	"GET /api/v1/groups": {req: plain("/api/v1/groups", ""), ok: 200},
	// Cluster routes: the fixture is a single node, so the allowed roles get
	// 404 "not a cluster member" (cluster_test.go covers a member).
	"GET /api/v1/cluster":               {req: plain("/api/v1/cluster", ""), ok: 404},
	"POST /api/v1/cluster/tokens":       {req: plain("/api/v1/cluster/tokens", ""), ok: 404},
	"DELETE /api/v1/cluster/nodes/{id}": {req: plain("/api/v1/cluster/nodes/node-x", ""), ok: 404},
	"GET /api/v1/cluster/wait":          {req: plain("/api/v1/cluster/wait", ""), ok: 404},
	// The fixture wires no importer: allowed callers get 503 (imports_test.go runs one).
	"POST /api/v1/imports": {req: plain("/api/v1/imports?name=x.pcap", ""), ok: 503},
	"PUT /api/v1/groups/{id}": {req: func(t *testing.T, f *fixture, who ident) (string, string, string) {
		if _, err := f.st.Meta().Group("gm"); err != nil {
			if _, err := f.st.Apply(context.Background(), &meta.CreateGroup{Group: meta.Group{ID: "gm", Name: "Matrix group"}}); err != nil {
				t.Fatal(err)
			}
		}
		return "/api/v1/groups/gm", `{"name":"Matrix group","supervisors":[]}`, ""
	}, ok: 200},
	"GET /api/v1/tenants":   {req: plain("/api/v1/tenants", ""), ok: 200},
	"GET /api/v1/storage":   {req: plain("/api/v1/storage", ""), ok: 200},
	"GET /api/v1/retention": {req: plain("/api/v1/retention", ""), ok: 200},
	"PUT /api/v1/retention": {req: plain("/api/v1/retention", `{"days":3650}`), ok: 200},
	"POST /api/v1/recordings/preserve": {req: func(t *testing.T, f *fixture, who ident) (string, string, string) {
		// Per-ID results: 200 whoever may preserve; TestCaseHold checks them.
		return "/api/v1/recordings/preserve", `{"ids":["` + f.freshRecording(t, false) + `"],"case":"matrix"}`, ""
	}, ok: 200},
	"POST /api/v1/recordings/{id}/notes":         {req: onTarget("/notes", `{"text":"a note"}`), ok: 200},
	"PUT /api/v1/recordings/{id}/rating":         {req: onTarget("/rating", `{"rating":4}`), ok: 200},
	"PUT /api/v1/recordings/{id}/category":       {req: onTarget("/category", `{"category":"sales"}`), ok: 200},
	"PUT /api/v1/recordings/{id}/fields/{key}":   {req: onTarget("/fields/order", `{"value":"A-17"}`), ok: 200},
	"PUT /api/v1/recordings/{id}/complete":       {req: onTarget("/complete", `{"complete":true}`), ok: 200},
	"PUT /api/v1/recordings/{id}/review-minutes": {req: onTarget("/review-minutes", `{"minutes":3}`), ok: 200},
	"PUT /api/v1/recordings/{id}/transcript":     {req: onTarget("/transcript", `{"transcript":"hello"}`), ok: 200},
	"POST /api/v1/recordings/{id}/bookmarks":     {req: onTarget("/bookmarks", `{"type":"manual","offsetMs":500}`), ok: 200},
	"POST /api/v1/recordings/{id}/preserve":      {req: onTarget("/preserve", ""), ok: 200},
	"POST /api/v1/recordings/{id}/release":       {req: onFresh("/release", true), ok: 200},
	"GET /api/v1/recordings/{id}/related":        {req: onTarget("/related", ""), ok: 200},
	"POST /api/v1/recordings/{id}/related":       {ok: 200},
	"GET /api/v1/audit":                          {req: plain("/api/v1/audit?limit=5", ""), ok: 200},
	"GET /api/v1/me":                             {req: plain("/api/v1/me", ""), ok: 200},
	"GET /api/v1/tokens":                         {req: plain("/api/v1/tokens", ""), ok: 200},
	"POST /api/v1/tokens":                        {req: plain("/api/v1/tokens", `{"label":"matrix"}`), ok: 201},
	"DELETE /api/v1/tokens/{id}":                 {req: plain("/api/v1/tokens/0190c000-0000-7000-8000-000000000000", ""), ok: 404},
	"GET /api/v1/users":                          {req: plain("/api/v1/users", ""), ok: 200},
	"POST /api/v1/users":                         {ok: 201},
	"POST /api/v1/users/{id}/password":           {ok: 204},
	"POST /api/v1/users/{id}/disable":            {ok: 204},
	"POST /api/v1/users/{id}/enable":             {ok: 204},
	"GET /api/v1/openapi.json":                   {req: plain("/api/v1/openapi.json", ""), ok: 200},
	// Evidence routes (exports_test.go): each caller's own job.
	"POST /api/v1/exports": {req: func(t *testing.T, f *fixture, who ident) (string, string, string) {
		return "/api/v1/exports", `{"ids":["` + f.target + `"]}`, f.target
	}, ok: 202},
	"GET /api/v1/exports":               {req: plain("/api/v1/exports", ""), ok: 200},
	"GET /api/v1/exports/{id}":          {req: ownJob(""), ok: 200},
	"GET /api/v1/exports/{id}/download": {req: ownJob("/download"), ok: 200},
	"DELETE /api/v1/exports/{id}":       {req: ownJob(""), ok: 204},
	"POST /api/v1/retention/purge":      {req: plain("/api/v1/retention/purge", ""), ok: 200},
}

func init() {
	// Cases that need the caller's name or the fixture's users.
	up := func(path string) func(*testing.T, *fixture, ident) (string, string, string) {
		return func(t *testing.T, f *fixture, who ident) (string, string, string) { return path, "", "" }
	}
	c := matrixCases["POST /fw/Apps/Recorder/WebAPI/Recordings"]
	c.req = up("/fw/Apps/Recorder/WebAPI/Recordings")
	matrixCases["POST /fw/Apps/Recorder/WebAPI/Recordings"] = c
	c = matrixCases["POST /api/v1/recordings"]
	c.req = up("/api/v1/recordings")
	matrixCases["POST /api/v1/recordings"] = c
	c = matrixCases["POST /api/v1/recordings/{id}/related"]
	c.req = func(t *testing.T, f *fixture, who ident) (string, string, string) {
		return "/api/v1/recordings/" + f.target + "/related", `{"other":"` + f.other + `","relation":"transfer"}`, f.target
	}
	matrixCases["POST /api/v1/recordings/{id}/related"] = c
	c = matrixCases["POST /api/v1/users"]
	n := 0
	c.req = func(t *testing.T, f *fixture, who ident) (string, string, string) {
		n++
		return "/api/v1/users", fmt.Sprintf(`{"username":"new%d","password":"a long enough password","role":"user"}`, n), ""
	}
	matrixCases["POST /api/v1/users"] = c
	c = matrixCases["POST /api/v1/users/{id}/password"]
	c.req = func(t *testing.T, f *fixture, who ident) (string, string, string) {
		id := f.users[string(who)].ID
		if who == "" {
			id = "0190c000-0000-7000-8000-000000000001"
		}
		return "/api/v1/users/" + id + "/password", `{"password":"` + testPassword + `","currentPassword":"` + testPassword + `"}`, ""
	}
	matrixCases["POST /api/v1/users/{id}/password"] = c
	for _, route := range []string{"POST /api/v1/groups", "POST /api/v1/tenants"} {
		c = matrixCases[route]
		c.ok = http.StatusCreated
		path := strings.TrimPrefix(route, "POST ")
		c.req = func(t *testing.T, f *fixture, who ident) (string, string, string) {
			n++
			return path, fmt.Sprintf(`{"name":"Matrix %d"}`, n), ""
		}
		matrixCases[route] = c
	}
	c = matrixCases["PUT /api/v1/users/{id}"]
	c.ok = http.StatusOK
	c.req = func(t *testing.T, f *fixture, who ident) (string, string, string) {
		return "/api/v1/users/" + f.users["victim"].ID, `{"displayName":"Victim","role":"user","groups":[],"supervisedGroups":[],"permissions":{"play":true}}`, ""
	}
	matrixCases["PUT /api/v1/users/{id}"] = c
	for _, verb := range []string{"disable", "enable"} {
		key := "POST /api/v1/users/{id}/" + verb
		c = matrixCases[key]
		c.req = func(t *testing.T, f *fixture, who ident) (string, string, string) {
			return "/api/v1/users/" + f.users["victim"].ID + "/" + verb, "", ""
		}
		matrixCases[key] = c
	}
}

// expected is the status the matrix wants for who on a route.
func (f *fixture) expected(t *testing.T, rt RouteInfo, rc routeCase, who ident, target string) int {
	if who == "" {
		return http.StatusUnauthorized
	}
	p := f.principal(t, who)
	if !p.Can(rt.Action) {
		return http.StatusForbidden
	}
	if target != "" && !f.sees(t, who, target) {
		return http.StatusNotFound
	}
	key := rt.Method + " " + rt.Pattern
	switch key {
	case "POST /api/v1/users/{id}/disable", "POST /api/v1/users/{id}/enable", "PUT /api/v1/users/{id}", "PUT /api/v1/groups/{id}":
		if p.User.Tenant != "" {
			return http.StatusNotFound // the victim and group gm are in the default tenant
		}
	case "GET /api/v1/tenants", "POST /api/v1/tenants", "POST /api/v1/retention/purge", "POST /api/v1/imports",
		"GET /api/v1/cluster", "POST /api/v1/cluster/tokens", "DELETE /api/v1/cluster/nodes/{id}":
		if p.User.Tenant != "" {
			return http.StatusForbidden // tenants and the cluster are the installation's admins' business
		}
	}
	return rc.ok
}

// TestRouteStatusMatrix sends every route as every role (with all and
// with no permissions), as users of another tenant and anonymously,
// against real recordings, and checks each status: 401 anonymous, 403
// when the role or a withheld permission forbids the action, 404 when the
// recording is not the caller's to see (never 403: its existence must not
// leak), the route's success status otherwise. Every answer is then
// searched for the strings planted in the recordings the caller may not
// see.
func TestRouteStatusMatrix(t *testing.T) {
	f := newFixture(t)
	wav := readTestdata(t, "jfk_8k_pcm8.wav")
	routes := f.srv.Routes()
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		rc, ok := matrixCases[key]
		if !ok {
			t.Errorf("route %s has no matrix case", key)
			continue
		}
		t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) {
			for _, who := range identities {
				path, body, target := rc.req(t, f, who)
				var req *http.Request
				if rt.Action == ActUpload {
					name := string(who)
					if i := strings.IndexByte(name, '\\'); i >= 0 {
						name = name[i+1:]
					}
					req = uploadRequest(t, path, metaJSON(name, f.clock.Now().Add(-time.Minute), "PT11S", ""), "c.wav", "audio/wave", wav)
				} else {
					req = httptest.NewRequest(rt.Method, path, strings.NewReader(body))
					if body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
				}
				if who != "" {
					req.SetBasicAuth(string(who), testPassword)
				}
				want := f.expected(t, rt, rc, who, target) // before: a delete changes the answer
				r := f.do(req)
				if r.code != want {
					t.Errorf("as %q: %d, want %d (%.200s)", who, r.code, want, r.body)
				}
				f.checkNoLeak(t, who, key, r)
			}
		})
	}
}

// checkNoLeak fails if a response to who carries a planted string of a
// recording who may not see.
func (f *fixture) checkNoLeak(t *testing.T, who ident, what string, r response) {
	t.Helper()
	if who == "" {
		return
	}
	var all [][]string
	if who != "" && !f.sees(t, who, f.bobRec) {
		all = append(all, f.plantedBob)
	}
	if !f.sees(t, who, f.carolRec) {
		all = append(all, f.plantedCarol)
	}
	hdr := fmt.Sprint(r.hdr)
	for _, planted := range all {
		for _, s := range planted {
			if bytes.Contains(r.body, []byte(s)) || strings.Contains(hdr, s) {
				t.Errorf("LEAK: %s as %q: the answer carries %q of a recording they may not see", what, who, s)
			}
		}
	}
}

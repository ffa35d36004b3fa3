package webui

import (
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// validate checks v (decoded JSON) against the JSON-schema subset the
// document uses: type, format date-time, nullable, enum, properties,
// required, additionalProperties (false or a schema), items.
func validate(schema map[string]any, v any, at string) error {
	if v == nil {
		if schema["nullable"] == true || len(schema) == 0 {
			return nil
		}
		return fmt.Errorf("%s: null, schema does not allow it", at)
	}
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
	}
	switch schema["type"] {
	case nil:
		return nil
	case "string":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %T, want string", at, v)
		}
		if schema["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
				return fmt.Errorf("%s: %q is not date-time", at, s)
			}
		}
	case "integer":
		n, ok := v.(float64)
		if !ok || n != math.Trunc(n) {
			return fmt.Errorf("%s: %v, want integer", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: %T, want number", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %T, want boolean", at, v)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want array", at, v)
		}
		items, _ := schema["items"].(map[string]any)
		for i, x := range a {
			if err := validate(items, x, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "object":
		o, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want object", at, v)
		}
		props, _ := schema["properties"].(map[string]any)
		req, _ := schema["required"].([]any)
		for _, name := range req {
			if _, ok := o[name.(string)]; !ok {
				return fmt.Errorf("%s: required %q missing", at, name)
			}
		}
		for k, x := range o {
			ps, ok := props[k].(map[string]any)
			if !ok {
				switch ap := schema["additionalProperties"].(type) {
				case bool:
					if !ap {
						return fmt.Errorf("%s: property %q is not in the schema", at, k)
					}
					continue
				case map[string]any:
					ps = ap
				default:
					continue
				}
			}
			if err := validate(ps, x, at+"."+k); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%s: schema type %v unknown to the validator", at, schema["type"])
	}
	return nil
}

// TestOpenAPIMatchesResponses fetches the document over the API, checks
// that it describes exactly the routes served, then sends real requests
// to every route (as several roles, and with bad input) and checks each
// answer's status, content type and JSON body against the document.
func TestOpenAPIMatchesResponses(t *testing.T) {
	f := newFixture(t)
	r := f.send("alice", "GET", "/api/v1/openapi.json", "")
	var doc map[string]any
	if r.code != 200 || json.Unmarshal(r.body, &doc) != nil || doc["openapi"] != "3.0.3" {
		t.Fatalf("document: %d %.200s", r.code, r.body)
	}
	paths := doc["paths"].(map[string]any)
	ops := 0
	for _, p := range paths {
		ops += len(p.(map[string]any))
	}
	if ops != len(f.srv.Routes()) {
		t.Errorf("the document has %d operations, the server %d routes", ops, len(f.srv.Routes()))
	}
	ids := map[string]bool{}
	for _, rt := range f.srv.Routes() {
		op, ok := paths[rt.Pattern].(map[string]any)[strings.ToLower(rt.Method)].(map[string]any)
		if !ok {
			t.Errorf("%s %s is not in the document", rt.Method, rt.Pattern)
			continue
		}
		id := op["operationId"].(string)
		if ids[id] {
			t.Errorf("operationId %s twice", id)
		}
		ids[id] = true
	}

	checked := map[string]map[int]bool{}
	check := func(method, pattern string, r response) {
		t.Helper()
		op := paths[pattern].(map[string]any)[strings.ToLower(method)].(map[string]any)
		resp, ok := op["responses"].(map[string]any)[strconv.Itoa(r.code)].(map[string]any)
		if !ok {
			t.Errorf("%s %s answered %d, not in the document (%.200s)", method, pattern, r.code, r.body)
			return
		}
		if checked[method+" "+pattern] == nil {
			checked[method+" "+pattern] = map[int]bool{}
		}
		checked[method+" "+pattern][r.code] = true
		content, _ := resp["content"].(map[string]any)
		if content == nil {
			if len(r.body) != 0 {
				t.Errorf("%s %s %d: a body (%.100s) where the document has none", method, pattern, r.code, r.body)
			}
			return
		}
		ct, _, _ := mime.ParseMediaType(r.hdr.Get("Content-Type"))
		media, ok := content[ct].(map[string]any)
		if !ok {
			t.Errorf("%s %s %d: Content-Type %q not in the document", method, pattern, r.code, ct)
			return
		}
		if ct != "application/json" {
			return
		}
		var v any
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Errorf("%s %s %d: not JSON: %v", method, pattern, r.code, err)
			return
		}
		if err := validate(media["schema"].(map[string]any), v, "body"); err != nil {
			t.Errorf("%s %s %d: %v (%.300s)", method, pattern, r.code, err, r.body)
		}
	}
	wav := readTestdata(t, "jfk_8k_pcm8.wav")
	for _, rt := range f.srv.Routes() {
		rc := matrixCases[rt.Method+" "+rt.Pattern]
		for _, who := range []ident{"admin", "alice", "bob", "aud", "rec", `t2\t2admin`, ""} {
			path, body, _ := rc.req(t, f, who)
			var req *http.Request
			if rt.Action == ActUpload {
				name := strings.TrimPrefix(string(who), `t2\`)
				req = uploadRequest(t, path, metaJSON(name, f.clock.Now().Add(-time.Minute), "PT11S", ""), "c.wav", "audio/wave", wav)
			} else {
				req = httptest.NewRequest(rt.Method, path, strings.NewReader(body))
			}
			if who != "" {
				req.SetBasicAuth(string(who), testPassword)
			}
			check(rt.Method, rt.Pattern, f.do(req))
		}
	}
	// Bad input and other answers the matrix does not reach.
	extra := []struct{ method, pattern, path, body string }{
		{"GET", "/api/v1/recordings", "/api/v1/recordings?limit=0", ""},
		{"GET", "/api/v1/recordings/{id}/audio", "/api/v1/recordings/" + f.target + "/audio?format=flac", ""},
		{"GET", "/api/v1/recordings/{id}/audio", "/api/v1/recordings/" + f.target + "/audio?format=mp3", ""},
		{"GET", "/api/v1/recordings/{id}/download", "/api/v1/recordings/" + f.target + "/download", ""},
		{"GET", "/api/v1/recordings/{id}/download", "/api/v1/recordings/" + f.target + "/download?tz=Nowhere", ""},
		{"POST", "/api/v1/recordings/download", "/api/v1/recordings/download", `{"ids":[]}`},
		{"DELETE", "/api/v1/recordings/{id}", "/api/v1/recordings/" + f.target, ""},
		{"POST", "/api/v1/recordings/delete", "/api/v1/recordings/delete", `{"ids":"x"}`},
		{"PUT", "/api/v1/recordings/{id}/rating", "/api/v1/recordings/" + f.target + "/rating", `{"rating":9}`},
		{"POST", "/api/v1/recordings/{id}/notes", "/api/v1/recordings/nope/notes", `{"text":"x"}`},
		{"GET", "/api/v1/audit", "/api/v1/audit?action=x", ""},
		{"POST", "/api/v1/users", "/api/v1/users", `{"username":"alice","password":"a long enough password","role":"user"}`},
		{"POST", "/api/v1/users", "/api/v1/users", `{"username":"x","password":"short","role":"user"}`},
		{"POST", "/api/v1/users/{id}/disable", "/api/v1/users/" + f.users["admin"].ID + "/disable", ""},
		{"POST", "/api/v1/users/{id}/password", "/api/v1/users/" + f.users["bob"].ID + "/password", `{"password":"a long enough password"}`},
		{"POST", "/api/v1/tokens", "/api/v1/tokens", `{"label":"x","expiresInDays":-1}`},
		{"POST", "/api/v1/recordings", "/api/v1/recordings", `{}`},
	}
	for _, x := range extra {
		req := httptest.NewRequest(x.method, x.path, strings.NewReader(x.body))
		req.SetBasicAuth("admin", testPassword)
		if x.pattern == "/api/v1/users/{id}/password" {
			req.SetBasicAuth("alice", testPassword)
		}
		check(x.method, x.pattern, f.do(req))
	}
	// Revoking a token that exists.
	r = f.send("alice", "POST", "/api/v1/tokens", `{"label":"to revoke"}`)
	var tk createTokenResponse
	r.json(t, &tk)
	check("DELETE", "/api/v1/tokens/{id}", f.send("alice", "DELETE", "/api/v1/tokens/"+tk.ID, ""))
	// Ranges: 206 and 416.
	for _, rng := range []string{"bytes=0-99", "bytes=99999999-"} {
		req := httptest.NewRequest("GET", "/api/v1/recordings/"+f.target+"/audio", nil)
		req.SetBasicAuth("admin", testPassword)
		req.Header.Set("Range", rng)
		check("GET", "/api/v1/recordings/{id}/audio", f.do(req))
	}
	// Cluster routes answer only on a cluster member: the fake node of
	// cluster_test.go stands in for raft.
	ce := newEnv(t, withFakeCluster)
	ce.addUser("boss", "admin")
	for _, x := range [][2]string{{"GET", "/api/v1/cluster"}, {"POST", "/api/v1/cluster/tokens"},
		{"DELETE", "/api/v1/cluster/nodes/node-b"}, {"DELETE", "/api/v1/cluster/nodes/node-z"}, {"GET", "/api/v1/cluster/wait"}} {
		pattern := x[1]
		if strings.HasPrefix(pattern, "/api/v1/cluster/nodes/") {
			pattern = "/api/v1/cluster/nodes/{id}"
		}
		check(x[0], pattern, ce.do(basic(httptest.NewRequest(x[0], x[1], nil), "boss")))
	}
	// Imports answer only where an importer is wired (the appliance's
	// capture engine; here imports_test.go's stand-in).
	ie := newEnv(t, func(_ *Config, d *Data) { d.Imports = &byteImporter{} })
	ie.addUser("boss", "admin")
	for _, body := range []string{"\xd4\xc3\xb2\xa1 a capture", "not a capture"} {
		check("POST", "/api/v1/imports", ie.do(basic(httptest.NewRequest("POST", "/api/v1/imports?name=x.pcap", strings.NewReader(body)), "boss")))
	}
	// Every route was checked with at least its success status.
	for _, rt := range f.srv.Routes() {
		key := rt.Method + " " + rt.Pattern
		okCode := 0
		for code := range checked[key] {
			if code < 300 {
				okCode = code
			}
		}
		if okCode == 0 {
			t.Errorf("%s: no successful answer was checked (%v)", key, checked[key])
		}
	}
}

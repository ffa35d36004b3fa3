package webui

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/callvault/callvault/store/meta"
)

// The OpenAPI 3 document is generated from apiRoutes: each route carries a
// routeDoc naming its query parameters and the Go types of its request and
// response bodies, and the JSON schemas are derived from those types by
// reflection (the same struct tags encoding/json obeys). So the document
// cannot drift from the routes, and a test (openapi_test.go) sends real
// requests and checks every answer against it.

// routeDoc describes one route for the OpenAPI document.
type routeDoc struct {
	summary string
	params  []paramDoc // query parameters
	// body is a value of the JSON request body's type; nil: no JSON body.
	body any
	// bodyOptional: the JSON body may be left out.
	bodyOptional bool
	// bodyCT is the request content type when the body is not JSON.
	bodyCT string
	ok     int // the success status
	// resp is a value of the success answer's JSON type; nil: no body, or
	// respCT.
	resp   any
	respCT []string // content types of a non-JSON success answer
	// errs are the statuses besides 401, 403, 429 and 500, which every
	// route may answer.
	errs []int
	// alsoOK are other success statuses with the same answer as ok (202:
	// a release that waits for a second admin).
	alsoOK []int
	// badRequest is the type of a 400's body; nil: apiMessage.
	badRequest any
}

// paramDoc is one query parameter.
type paramDoc struct {
	name, typ, desc string
	enum            []string
}

// parseStrictQuery parses raw and keeps the parameters of allowed; an
// unknown or repeated parameter, or a value that is not short UTF-8, is an
// error naming it. Empty values are dropped.
func parseStrictQuery(raw string, allowed []paramDoc) (map[string]string, error) {
	if len(raw) > 16<<10 {
		return nil, badParam("query", "the query string is %d bytes, limit %d", len(raw), 16<<10)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, badParam("query", "%v", err)
	}
	out := make(map[string]string, len(vals))
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		vs := vals[name]
		if !slices.ContainsFunc(allowed, func(p paramDoc) bool { return p.name == name }) {
			return nil, badParam(paramName(name), "unknown parameter")
		}
		if len(vs) != 1 {
			return nil, badParam(name, "given %d times", len(vs))
		}
		if v := vs[0]; len(v) > maxParamLen || strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return nil, badParam(name, "must be valid UTF-8 without NUL, at most %d bytes", maxParamLen)
		}
		if vs[0] != "" {
			out[name] = vs[0]
		}
	}
	return out, nil
}

func searchParamDocs() []paramDoc {
	out := make([]paramDoc, len(searchParams))
	for i, p := range searchParams {
		out[i] = paramDoc{name: p.name, typ: p.typ, desc: p.desc, enum: p.enum}
	}
	return out
}

// enumValues are the values of the string types the API uses as enums.
var enumValues = map[reflect.Type][]string{
	reflect.TypeFor[meta.Direction]():    directionValues,
	reflect.TypeFor[meta.Status]():       append(slices.Clone(statusValues), string(meta.StatusDeleted)),
	reflect.TypeFor[meta.BookmarkType](): bookmarkValues,
	reflect.TypeFor[meta.Role]():         {"admin", "supervisor", "user", "record-only", "auditor"},
	reflect.TypeFor[meta.AuditAction]():  auditActionNames(),
	reflect.TypeFor[meta.Source]():       {string(meta.SourceMirror), string(meta.SourceSIPREC), string(meta.SourceUpload), string(meta.SourceWebRTC)},
	reflect.TypeFor[meta.Tier]():         {string(meta.TierHot), string(meta.TierArchive)},
	reflect.TypeFor[meta.Format]():       {string(meta.FormatGrid), string(meta.FormatWAV), string(meta.FormatMP3), string(meta.FormatRTP)},
	reflect.TypeFor[AuthMethod]():        {string(AuthSession), string(AuthBasic), string(AuthToken)},
}

// schemaOf derives a JSON schema (the OpenAPI 3.0 subset: type, format,
// nullable, enum, properties, required, additionalProperties, items) from
// a Go type, following encoding/json's rules for the tags used here.
func schemaOf(t reflect.Type) map[string]any {
	if vals, ok := enumValues[t]; ok {
		return map[string]any{"type": "string", "enum": vals}
	}
	if t == reflect.TypeFor[time.Time]() {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		s["nullable"] = true
		return s
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Interface:
		return map[string]any{} // any JSON value
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		addStructFields(t, props, &required)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			slices.Sort(required)
			s["required"] = required
		}
		return s
	}
	panic("openapi: no schema for " + t.String()) // a programming error, caught by the tests
}

func addStructFields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		// encoding/json promotes the fields of an embedded struct, exported
		// or not.
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			addStructFields(f.Type, props, required)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
		omit := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		if !omit {
			*required = append(*required, name)
		}
	}
}

func jsonContent(v any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(v))}}
}

var pathParam = regexp.MustCompile(`\{([a-zA-Z]+)\}`)

// openAPI builds the document.
func (s *Server) openAPI() map[string]any {
	paths := map[string]any{}
	for _, rt := range s.apiRoutes() {
		d := rt.doc
		op := map[string]any{
			"summary":     d.summary,
			"operationId": operationID(rt.method, rt.pattern),
			"description": "Needs the `" + rt.action.String() + "` action (the role and the account's permissions decide).",
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, p := range d.params {
			sch := map[string]any{"type": p.typ}
			switch p.typ {
			case "date-time":
				sch = map[string]any{"type": "string", "format": "date-time"}
			case "boolean":
				sch = map[string]any{"type": "boolean"}
			}
			if p.enum != nil && p.typ == "string" {
				sch["enum"] = p.enum
			}
			params = append(params, map[string]any{"name": p.name, "in": "query", "required": false, "description": p.desc, "schema": sch})
		}
		if params != nil {
			op["parameters"] = params
		}
		switch {
		case d.body != nil:
			op["requestBody"] = map[string]any{"required": !d.bodyOptional, "content": jsonContent(d.body)}
		case d.bodyCT != "":
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{d.bodyCT: map[string]any{"schema": map[string]any{"type": "object"}}}}
		}
		responses := map[string]any{}
		ok := map[string]any{"description": http.StatusText(d.ok)}
		switch {
		case d.resp != nil:
			ok["content"] = jsonContent(d.resp)
		case len(d.respCT) > 0:
			c := map[string]any{}
			for _, ct := range d.respCT {
				c[ct] = map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}
			}
			ok["content"] = c
		}
		responses[strconv.Itoa(d.ok)] = ok
		for _, code := range d.alsoOK {
			also := maps.Clone(ok)
			also["description"] = http.StatusText(code)
			responses[strconv.Itoa(code)] = also
		}
		for _, code := range append([]int{401, 403, 429, 500}, d.errs...) {
			var body any = apiMessage{}
			if code == 400 && d.badRequest != nil {
				body = d.badRequest
			}
			responses[strconv.Itoa(code)] = map[string]any{"description": http.StatusText(code), "content": jsonContent(body)}
		}
		op["responses"] = responses
		path, _ := paths[rt.pattern].(map[string]any)
		if path == nil {
			path = map[string]any{}
			paths[rt.pattern] = path
		}
		path[strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "Callvault API",
			"version":     "1",
			"description": "The JSON API of the Callvault call-recording appliance, and the Imagicle-compatible upload route.",
		},
		"servers": []any{map[string]any{"url": "/"}},
		"security": []any{
			map[string]any{"basic": []any{}}, map[string]any{"bearer": []any{}}, map[string]any{"session": []any{}},
		},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"basic":   map[string]any{"type": "http", "scheme": "basic", "description": `user name and password; a user of another tenant signs in as "tenant\\username"`},
				"bearer":  map[string]any{"type": "http", "scheme": "bearer", "description": "an API token from POST /api/v1/tokens"},
				"session": map[string]any{"type": "apiKey", "in": "cookie", "name": sessionCookie, "description": "the browser session; state-changing requests also need the X-CSRF-Token header"},
			},
		},
		"paths": paths,
	}
}

func operationID(method, pattern string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, part := range strings.Split(pattern, "/") {
		part = strings.Trim(part, "{}")
		if part == "" || part == "api" || part == "v1" {
			continue
		}
		for _, w := range strings.FieldsFunc(part, func(r rune) bool { return r == '-' || r == '.' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// buildOpenAPI renders the document once, when the server is built.
func (s *Server) buildOpenAPI() error {
	b, err := json.MarshalIndent(s.openAPI(), "", "  ")
	if err != nil {
		return fmt.Errorf("openapi document: %w", err)
	}
	s.openAPIDoc = b
	return nil
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request, p *Principal) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.openAPIDoc)
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/callvault/callvault/appliance"
	"github.com/callvault/callvault/store/meta"
)

// accountAdmin is what the user commands do, on a stopped server's data
// directory (appliance.Users) or through a running server's API (apiUsers).
type accountAdmin interface {
	Add(ctx context.Context, n appliance.NewUser) (meta.User, error)
	List(tenant string) ([]meta.User, error)
	SetPassword(ctx context.Context, tenant, username, password string) error
	SetDisabled(ctx context.Context, tenant, username string, disabled bool) error
}

var _ accountAdmin = appliance.Users{}

// apiUsers manages accounts through /api/v1/users as an admin signed in
// with HTTP Basic (the password from CALLVAULT_PASSWORD, never a flag:
// flags show in the process list).
type apiUsers struct {
	base           string
	user, password string
	client         *http.Client
}

func newAPIUsers(server, user, caFile string) (*apiUsers, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want http://HOST:PORT or https://HOST:PORT", server)
	}
	password := os.Getenv("CALLVAULT_PASSWORD")
	if password == "" {
		return nil, fmt.Errorf("--server needs the password of --user %q in CALLVAULT_PASSWORD", user)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &apiUsers{base: strings.TrimRight(server, "/"), user: user, password: password,
		client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func (a *apiUsers) call(ctx context.Context, method, path string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.SetBasicAuth(a.user, a.password)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != want {
		var m struct{ Message string }
		if json.Unmarshal(raw, &m) == nil && m.Message != "" {
			return fmt.Errorf("server: %s (%s)", m.Message, resp.Status)
		}
		return fmt.Errorf("server: %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func (a *apiUsers) Add(ctx context.Context, n appliance.NewUser) (meta.User, error) {
	perms := appliance.DefaultPermissions(n.Role)
	if n.Permissions != nil {
		perms = *n.Permissions
	}
	req := map[string]any{"username": n.Username, "displayName": n.DisplayName, "password": n.Password, "role": n.Role,
		"groups": nonNil(n.Groups), "supervisedGroups": nonNil(n.Supervises), "permissions": perms,
		"mustChangePassword": n.MustChangePassword}
	var res struct{ ID string }
	if err := a.call(ctx, http.MethodPost, "/api/v1/users", req, &res, http.StatusCreated); err != nil {
		return meta.User{}, err
	}
	return meta.User{ID: res.ID, Username: n.Username, Role: n.Role, Permissions: perms}, nil
}

func (a *apiUsers) List(string) ([]meta.User, error) {
	var us []meta.User // the API's user objects have the same field names
	return us, a.call(context.Background(), http.MethodGet, "/api/v1/users", nil, &us, http.StatusOK)
}

func (a *apiUsers) find(ctx context.Context, username string) (meta.User, error) {
	us, err := a.List("")
	if err != nil {
		return meta.User{}, err
	}
	for _, u := range us {
		if strings.EqualFold(u.Username, username) {
			return u, nil
		}
	}
	return meta.User{}, fmt.Errorf("no user %q in the tenant of %q", username, a.user)
}

func (a *apiUsers) SetPassword(ctx context.Context, _, username, password string) error {
	u, err := a.find(ctx, username)
	if err != nil {
		return err
	}
	return a.call(ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(u.ID)+"/password", map[string]string{"password": password}, nil, http.StatusNoContent)
}

func (a *apiUsers) SetDisabled(ctx context.Context, _, username string, disabled bool) error {
	u, err := a.find(ctx, username)
	if err != nil {
		return err
	}
	verb := "enable"
	if disabled {
		verb = "disable"
	}
	return a.call(ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(u.ID)+"/"+verb, nil, nil, http.StatusNoContent)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

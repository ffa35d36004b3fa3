package appliance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
	"github.com/callvault/callvault/webui"
	"github.com/google/uuid"
)

// accounts lets the web UI find users in the store for sign-in.
type accounts struct{ st *store.Store }

func (a accounts) AccountByName(username string) (webui.Account, error) {
	u, err := a.st.Meta().UserByName("", username)
	if errors.Is(err, meta.ErrNotFound) {
		return webui.Account{}, webui.ErrNoAccount
	}
	if err != nil {
		return webui.Account{}, err
	}
	return webui.Account{ID: u.ID, Username: u.Username, Role: string(u.Role), PasswordHash: u.PasswordHash, Disabled: u.Disabled}, nil
}

// ensureAdmin creates the first admin account on a data directory that has
// no users. Its password comes from CALLVAULT_ADMIN_PASSWORD or is random
// and printed once on stderr: it is never logged and never shown again.
func ensureAdmin(st *store.Store, environ []string, stderr io.Writer, log *slog.Logger) error {
	n, err := st.Meta().CountUsers()
	if err != nil {
		return fmt.Errorf("count users: %w", err)
	}
	if n > 0 {
		return nil
	}
	password, fromEnv := envMap(environ)["CALLVAULT_ADMIN_PASSWORD"]
	if fromEnv && strings.TrimSpace(password) == "" {
		fromEnv = false
	}
	if !fromEnv {
		if password, err = webui.RandomPassword(20); err != nil {
			return fmt.Errorf("generate admin password: %w", err)
		}
	}
	hash, err := webui.HashPassword(password)
	if err != nil {
		return fmt.Errorf("CALLVAULT_ADMIN_PASSWORD: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	_, err = st.Apply(context.Background(), &meta.CreateUser{User: meta.User{
		ID: id.String(), Username: "admin", DisplayName: "Administrator", Role: meta.RoleAdmin,
		Permissions:  meta.Permissions{Play: true, Download: true, Delete: true, Preserve: true, Notes: true, BulkDownload: true, Upload: true},
		PasswordHash: hash, Created: time.Now().UTC().Truncate(time.Millisecond),
		// A generated password has been on a console (and perhaps in a
		// journal): the admin must replace it at the first sign-in. One
		// given in CALLVAULT_ADMIN_PASSWORD was chosen by the installer.
		MustChangePassword: !fromEnv,
	}})
	if err != nil {
		return fmt.Errorf("create admin account: %w", err)
	}
	if fromEnv {
		log.Info("created first admin account", "user", "admin", "password_from", "CALLVAULT_ADMIN_PASSWORD")
		return nil
	}
	log.Info("created first admin account with a random password (printed once on stderr)", "user", "admin")
	fmt.Fprintf(stderr, "\n  First admin account created.\n    user:     admin\n    password: %s\n  This password is shown only now. Sign in and change it.\n\n", password)
	return nil
}

package webui

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/callvault/callvault/store/meta"
)

// ClusterAdmin is what the cluster routes need from the raft node. The
// appliance's Data.Admin implements it when the appliance is a cluster
// member (an optional interface, like http.Flusher: a single node has no
// cluster, and Data stays the same for it).
type ClusterAdmin interface {
	// ClusterStatus is the members as each sees itself (encoded as is).
	ClusterStatus(ctx context.Context) (any, error)
	// ClusterToken issues a single-use join token.
	ClusterToken() (string, time.Time, error)
	// ClusterRemove removes a member; an unknown one is meta.ErrNotFound.
	ClusterRemove(ctx context.Context, id string) error
	// WaitCommitted returns once this node applied every write committed
	// before the call.
	WaitCommitted(ctx context.Context) error
}

type tokenResponse struct {
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

type waitResponse struct {
	Committed bool `json:"committed"`
}

func (s *Server) cluster(w http.ResponseWriter) (ClusterAdmin, bool) {
	c, ok := s.data.Admin.(ClusterAdmin)
	if !ok {
		writeError(w, http.StatusNotFound, "this appliance is not a cluster member (start it with --cluster-addr)")
	}
	return c, ok
}

func (s *Server) handleClusterStatus(w http.ResponseWriter, r *http.Request, p *Principal) {
	if !installationAdmin(w, p) {
		return
	}
	c, ok := s.cluster(w)
	if !ok {
		return
	}
	st, err := c.ClusterStatus(r.Context())
	if err != nil {
		s.internalError(w, r, "cluster status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleClusterToken(w http.ResponseWriter, r *http.Request, p *Principal) {
	if !installationAdmin(w, p) {
		return
	}
	c, ok := s.cluster(w)
	if !ok {
		return
	}
	tok, exp, err := c.ClusterToken()
	if err != nil {
		// Only the node that created the cluster holds its CA.
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	s.log.Info("cluster join token issued", "by", p.User.Username, "expires", exp)
	writeJSON(w, http.StatusCreated, tokenResponse{Token: tok, Expires: exp})
}

func (s *Server) handleClusterRemove(w http.ResponseWriter, r *http.Request, p *Principal) {
	if !installationAdmin(w, p) {
		return
	}
	c, ok := s.cluster(w)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if err := c.ClusterRemove(r.Context(), id); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			writeError(w, http.StatusNotFound, "no cluster member "+id)
			return
		}
		s.internalError(w, r, "cluster remove", err)
		return
	}
	s.log.Info("cluster member removed", "member", id, "by", p.User.Username)
	w.WriteHeader(http.StatusNoContent)
}

// handleClusterWait is the API's "read after the latest commit": a client
// that wrote through one node and reads from another calls it first.
func (s *Server) handleClusterWait(w http.ResponseWriter, r *http.Request, p *Principal) {
	c, ok := s.cluster(w)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := c.WaitCommitted(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "cluster: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, waitResponse{Committed: true})
}

// installationAdmin answers 403 to a tenant's admin: the cluster's members,
// join tokens and removals concern the whole installation, which only its
// own admins (of the default tenant) manage.
func installationAdmin(w http.ResponseWriter, p *Principal) bool {
	if p.User.Tenant != "" {
		writeError(w, http.StatusForbidden, "the cluster is managed by the installation's admins")
		return false
	}
	return true
}

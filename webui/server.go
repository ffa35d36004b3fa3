// Package webui is Callvault's HTTP side: the pages, /api/v1, the upload
// API, sessions and roles, health and metrics endpoints, and the embedded
// static assets. It reads and writes recordings only through interfaces
// the appliance wires to the store (Data, in api.go); it never opens bbolt
// itself.
//
// A request to the API passes three steps, in one place (guard in api.go):
//
//	authenticate (authn.go)  bearer token, HTTP Basic (argon2id behind a
//	                         keyed verify cache, throttled per account and
//	                         address), or the browser session + CSRF header
//	authorize (authz.go)     every route names one Action; the role table
//	                         and the user's permissions decide, and View
//	                         gives the meta.Scope for what the user sees
//	handle                   the route's handler, with the Principal
//
// Routes live in one table (apiRoutes), so a test sends every route as
// every role. The upload API (upload.go, uploadmeta.go) streams the file
// into the store and measures it there; see upload.go for why.
package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is the HTTP server's own configuration, built by the appliance.
type Config struct {
	// SessionIdle ends a browser session after this long without a request.
	SessionIdle time.Duration
	// SessionAbsolute ends a browser session this long after sign-in.
	SessionAbsolute time.Duration
	// SecureCookies marks cookies Secure (when served over TLS).
	SecureCookies bool
	// Version is shown in the page footer.
	Version string
	// DefaultRetentionDays is storage.default_retention_days: an upload
	// whose start lies further back is refused with 409, since retention
	// would delete it at once. 0 keeps recordings forever.
	DefaultRetentionDays int
	// PreserveDays is storage.preserve_days: a Preserve without an end
	// date holds the recording this many days past the later of now and
	// its deletion date; 0 (or a request asking for it) holds it
	// indefinitely.
	PreserveDays int
	// MaxUploadBytes limits an uploaded file; 0 means DefaultMaxUploadBytes.
	MaxUploadBytes int64
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
}

// Account is what the web UI needs to know of a user to sign them in.
type Account struct {
	ID           string
	Username     string
	Role         string
	PasswordHash string
	Disabled     bool
}

// Accounts finds users for sign-in.
type Accounts interface {
	AccountByName(username string) (Account, error)
}

// Readiness reports whether the appliance can serve (storage open, and in
// a cluster, joined). A nil error means ready.
type Readiness interface {
	Ready(ctx context.Context) error
}

// Server is the HTTP server. Create it with New, then Serve on a listener.
type Server struct {
	// pages recycles the buffers search answers are written into (a page
	// of fifty recordings is about 100 KB; listjson.go).
	pageBufs sync.Pool

	cfg      Config
	log      *slog.Logger
	accounts Accounts
	ready    Readiness
	data     Data
	now      func() time.Time
	pages    *template.Template
	sess     *sessions
	mux      *http.ServeMux
	handler  http.Handler
	metrics  *httpMetrics

	// Sign-in protection shared by the form and the API (authn.go).
	byAccount *throttle
	byAddress *throttle
	verified  *verifyCache
	// searchFold keeps identical repeated searches out of the audit log
	// (searchfold.go).
	searchFold *searchFold
	argonSlots chan struct{}

	// searchSlots admits searches GOMAXPROCS at a time, in arrival order
	// (recordings.go, handleSearch).
	searchSlots chan struct{}
	// importing admits one capture import at a time (imports.go).
	importing importing

	// openAPIDoc is the OpenAPI document, built by New (openapi.go).
	openAPIDoc []byte
	// auditQ writes search and view audit entries behind the request.
	auditQ *auditQueue

	srv      *http.Server
	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	// throttled counts sign-ins answered 429, by the limit that hit
	// (account or address).
	throttled   *prometheus.CounterVec
	denied      *prometheus.CounterVec
	uploads     *prometheus.CounterVec
	uploadBytes prometheus.Counter
}

// New builds the server and registers its metrics on reg. accounts signs
// browsers in; data is what the API reads and writes.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer, accounts Accounts, ready Readiness, data Data) (*Server, error) {
	if data.Users == nil || data.Commands == nil || data.Recordings == nil || data.Catalog == nil || data.Library == nil || data.Admin == nil {
		return nil, errors.New("webui: Data needs Users, Commands, Recordings, Catalog, Library and Admin")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.SessionAbsolute == 0 {
		cfg.SessionAbsolute = 12 * time.Hour
	}
	pages, err := template.New("").ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	f := promauto.With(reg)
	s := &Server{
		cfg:      cfg,
		log:      log,
		accounts: accounts,
		ready:    ready,
		data:     data,
		now:      cfg.Now,
		pages:    pages,
		sess:     newSessions(cfg.SessionIdle, cfg.SessionAbsolute, cfg.Now),

		byAccount:  newThrottle(accountBurst, accountRefill, throttleKeys, cfg.Now),
		byAddress:  newThrottle(addressBurst, addressRefill, throttleKeys, cfg.Now),
		verified:   newVerifyCache(5*time.Minute, 10_000, cfg.Now),
		searchFold: newSearchFold(searchFoldWindow, searchFoldMax, cfg.Now),
		// One argon2id check at a time per core: each takes 64 MiB.
		argonSlots:  make(chan struct{}, 2),
		searchSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),

		mux:  http.NewServeMux(),
		stop: make(chan struct{}),
		done: make(chan struct{}),
		metrics: &httpMetrics{
			requests: f.NewCounterVec(prometheus.CounterOpts{
				Name: "callvault_http_requests_total",
				Help: "HTTP requests served, by route pattern and status code.",
			}, []string{"route", "code"}),
			duration: f.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "callvault_http_request_duration_seconds",
				Help:    "HTTP request latency by route pattern.",
				Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
			}, []string{"route"}),
			logins: f.NewCounterVec(prometheus.CounterOpts{
				Name: "callvault_logins_total",
				Help: "Sign-in attempts by result.",
			}, []string{"result"}),
			throttled: f.NewCounterVec(prometheus.CounterOpts{
				Name: "callvault_login_throttled_total",
				Help: "Sign-in attempts answered 429 because of too many failures, by the limit that hit (account, address).",
			}, []string{"limit"}),
			denied: f.NewCounterVec(prometheus.CounterOpts{
				Name: "callvault_api_denied_total",
				Help: "API requests refused with 403 by the role check, by action.",
			}, []string{"action"}),
			uploads: f.NewCounterVec(prometheus.CounterOpts{
				Name: "callvault_uploads_total",
				Help: "Upload API requests by result (created, invalid_data, invalid_metadata, invalid_audio, cut_off, conflict, forbidden, error).",
			}, []string{"result"}),
			uploadBytes: f.NewCounter(prometheus.CounterOpts{
				Name: "callvault_upload_bytes_total",
				Help: "Audio bytes received by the upload API (including uploads that were refused).",
			}),
		},
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.HandleFunc("GET /readyz", s.handleReadyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{Registry: prometheus.WrapRegistererWithPrefix("callvault_", reg)}))
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	if err := s.registerPages(); err != nil {
		return nil, err
	}
	s.registerAPI()
	if err := s.buildOpenAPI(); err != nil {
		return nil, err
	}
	s.handler = s.instrument(securityHeaders(s.mux, cfg.SecureCookies))
	s.auditQ = newAuditQueue(data.Commands, log, f.NewCounter(prometheus.CounterOpts{
		Name: "callvault_audit_queue_failures_total",
		Help: "Search and view audit entries that could not be committed (each is also logged).",
	}))
	return s, nil
}

// Handler returns the whole HTTP handler (for tests and TLS wrapping).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until Shutdown. It returns at once; the server's
// goroutines are owned by s and stopped by Shutdown.
func (s *Server) Serve(ln net.Listener) {
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
					s.log.Error("http server stopped", "err", err)
				}
				return
			case err := <-errc:
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					s.log.Error("http server failed", "err", err)
				}
				<-s.stop
				return
			case <-t.C:
				s.sess.sweep()
				s.byAccount.sweep()
				s.byAddress.sweep()
			}
		}
	}()
}

// Shutdown stops accepting connections, waits for requests in flight up to
// ctx's deadline, and stops the server's goroutines.
func (s *Server) Shutdown(ctx context.Context) error {
	// After the last handler: the queue's entries are committed before the
	// store closes.
	defer s.auditQ.close()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
	return err
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.ready.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// statusRecorder captures the status code for metrics.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument counts requests by route pattern, never by raw path, so the
// label set stays bounded whatever clients send.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "_other"
		}
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// securityHeaders sets headers every response carries. The CSP allows no
// inline script and nothing from outside the appliance. Behind TLS (secure
// cookies) HSTS tells browsers to come back over HTTPS only, for a year.
func securityHeaders(next http.Handler, tls bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if tls {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

package node

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/media"
	"github.com/entente-org/entente/web"
)

// metrics are the node's HTTP metrics, registered on the node's registry.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newRegistry makes the node's registry with the Go and process collectors,
// the build information and the HTTP metrics.
func newRegistry(version string) (*prometheus.Registry, *metrics, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, nil, fmt.Errorf("node metrics: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, fmt.Errorf("node metrics: %w", err)
	}
	auto, registered := media.MetricsFactory(reg)
	auto.NewGauge(prometheus.GaugeOpts{
		Name:        "entente_build_info",
		Help:        "Always 1; the version label says which build runs.",
		ConstLabels: prometheus.Labels{"version": version},
	}).Set(1)
	m := &metrics{
		requests: auto.NewCounterVec(prometheus.CounterOpts{
			Name: "entente_http_requests_total",
			Help: "HTTP requests served, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: auto.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "entente_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	if err := registered(); err != nil {
		return nil, nil, fmt.Errorf("node metrics: %w", err)
	}
	return reg, m, nil
}

func (n *Node) routes() {
	n.Handle("GET /.well-known/did.json", n.keys.DocumentHandler(n.did, n.FederationEndpoint()))
	n.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	n.Handle("GET /readyz", http.HandlerFunc(n.readyz))
	n.Handle(federation.Path+"/", n.fed.Handler())
	if n.cfg.Auth.Passwords {
		n.Handle("POST /api/v1/login", accounts.NewLoginHandler(n.store, n.now, n.log))
	} else {
		n.Handle("POST /api/v1/login", http.HandlerFunc(accounts.PasswordsOff))
	}
	signIn := accounts.SignInHandlers{Auth: n.accounts, Passwords: n.cfg.Auth.Passwords, OIDC: n.oidc, Log: n.log}
	n.Handle("GET /api/v1/signin", http.HandlerFunc(signIn.Options))
	n.Handle("GET /api/v1/session", http.HandlerFunc(signIn.Session))
	n.Handle("POST /api/v1/logout", http.HandlerFunc(signIn.Logout))
	if n.oidc != nil {
		n.Handle("GET "+accounts.LoginPath, http.HandlerFunc(n.oidc.Login))
		n.Handle("GET "+accounts.CallbackPath, http.HandlerFunc(n.oidc.Callback))
	}
	// Guest links (spec/client-api.md §7): moderators make them, anyone
	// holding one becomes a guest of its conference.
	n.Handle("POST /api/v1/conferences/{id}/guest-links", n.guestGate(http.HandlerFunc(n.serveNewGuestLink)))
	n.Handle("GET /api/v1/conferences/{id}/guest-links", n.guestGate(http.HandlerFunc(n.serveGuestLinks)))
	n.Handle("DELETE /api/v1/conferences/{id}/guest-links/{link}", n.guestGate(http.HandlerFunc(n.serveRevokeGuestLink)))
	n.Handle("POST /api/v1/guests", n.redeemGuestLink(accounts.NewGuestLimiter(n.now)))
	// Guests reach only what guestGate lets through.
	n.Handle("GET /api/v1/conferences/{id}/media", n.guestGate(http.HandlerFunc(n.serveMedia)))
	if n.replicas != nil {
		n.Handle("POST "+trunkPath, http.HandlerFunc(n.serveReplicaTrunk))
	}
	if n.bridge != nil {
		n.Handle("POST /api/v1/matrix/openid", http.HandlerFunc(n.bridge.OpenIDLogin))
		n.Handle("POST /admin/v1/conferences/{id}/matrix", http.HandlerFunc(n.servePortal))
		n.Handle("POST /api/v1/conferences/{id}/matrix/invitations", http.HandlerFunc(n.serveMatrixInvite))
	}
	n.Handle("/api/v1/", n.guestGate(http.StripPrefix("/api/v1", n.fed.ClientAPI(n.accounts))))
	n.Handle("/admin/v1/", http.StripPrefix("/admin/v1", n.fed.AdminAPI(n.accounts)))
	n.Handle("GET /metrics", promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{ErrorLog: nil}))
	// The browser client takes every other path. The pattern carries no
	// method because "GET /" would conflict with the method-less API
	// prefixes above; the handler itself refuses anything but GET and HEAD.
	n.Handle("/", web.HandlerWith(web.Options{FrameAncestors: n.cfg.Bridge.WidgetOriginList()}))
}

// FederationEndpoint is the base URL of this node's federation API, as
// published in its DID document's federation service entry.
func (n *Node) FederationEndpoint() string { return n.cfg.Node.PublicURL + federation.Path }

// instrument counts and times each request under its route pattern (never the
// raw path, which would let clients create unbounded label values). It gives
// every request an id, returned in the X-Request-Id header (and in error
// bodies, see httpapi.WriteError), and logs each 5xx answer once, with
// that id and the cause the handler recorded.
func (n *Node) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.inflight.Add(1)
		defer n.inflight.Done()
		start := time.Now()
		id := newRequestID()
		w.Header().Set(httpapi.RequestIDHeader, id)
		rec := httpapi.NewStatusRecorder(w)
		h.ServeHTTP(rec, r)
		if n.metrics != nil {
			n.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.Status)).Inc()
			n.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
		if rec.Status >= 500 {
			attrs := []any{"route", route, "method", r.Method, "path", r.URL.Path, "status", rec.Status, "request_id", id}
			if rec.Cause != nil {
				attrs = append(attrs, "err", rec.Cause.Error())
			} else {
				attrs = append(attrs, "err", "the handler recorded no cause")
			}
			n.log.Error("request failed", attrs...)
		}
	})
}

// newRequestID is 96 random bits in hex: unique enough to find one request
// in the logs, and nothing a client chose.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

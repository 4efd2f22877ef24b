package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed index.html static
var files embed.FS

// ContentSecurityPolicy lets the page load only its own scripts, styles and
// API, open WebSockets, play local camera streams (blob:) and never be
// framed. Inline scripts and styles are refused, so an injected string can
// never run.
const ContentSecurityPolicy = "default-src 'self'; connect-src 'self' wss:; media-src 'self' blob:; " +
	"img-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// assetPrefix is where the static files live. A version segment follows it,
// so that asset names stay readable while a new release never meets an old
// cached copy.
const assetPrefix = "/static/"

var contentTypes = map[string]string{
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".html": "text/html; charset=utf-8",
	".png":  "image/png",
}

type asset struct {
	body        []byte
	etag        string
	contentType string
}

func newAsset(name string, body []byte) asset {
	sum := sha256.Sum256(body)
	ct := contentTypes[path.Ext(name)]
	if ct == "" {
		ct = "application/octet-stream"
	}
	return asset{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, contentType: ct}
}

// client is the embedded client: its assets and the page that loads them.
type client struct {
	version string
	assets  map[string]asset
	index   asset
}

// Handler serves the browser client: the single page at "/" and at every
// path under /app/ (the client routes those itself), and its assets under
// /static/. Only GET and HEAD are answered.
func Handler() http.Handler { return HandlerWith(Options{}) }

// Options adjust how the client is served.
type Options struct {
	// FrameAncestors are the origins (https://…) of Matrix clients that may
	// show the client as a room widget. Empty: the client is never framed.
	FrameAncestors []string
}

// HandlerWith is Handler with options.
func HandlerWith(o Options) http.Handler {
	csp := ContentSecurityPolicy
	if len(o.FrameAncestors) > 0 {
		csp = strings.Replace(csp, "frame-ancestors 'none'", "frame-ancestors "+strings.Join(o.FrameAncestors, " "), 1)
	}
	c, err := load(files)
	if err != nil {
		// The files are compiled in: a failure here is a broken build,
		// which the package's tests catch.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "client unavailable", http.StatusInternalServerError)
		})
	}
	return securityHeaders(c, csp)
}

func load(fsys fs.FS) (*client, error) {
	c := &client{assets: map[string]asset{}}
	names, err := fs.Glob(fsys, "static/*")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		base := path.Base(name)
		c.assets[base] = newAsset(base, body)
		h.Write([]byte(base + "\x00" + c.assets[base].etag + "\x00"))
	}
	c.version = hex.EncodeToString(h.Sum(nil)[:6])
	page, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		return nil, err
	}
	page = bytes.ReplaceAll(page, []byte("{{assets}}"), []byte(assetPrefix+c.version))
	c.index = newAsset("index.html", page)
	return c, nil
}

func (c *client) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/" || p == "/app" || strings.HasPrefix(p, "/app/"):
		// The page is small and names the current asset version: it is
		// revalidated every time.
		serve(w, r, c.index, "no-cache")
	case strings.HasPrefix(p, assetPrefix):
		version, name, ok := strings.Cut(strings.TrimPrefix(p, assetPrefix), "/")
		a, found := c.assets[name]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		cache := "public, max-age=31536000, immutable"
		if version != c.version {
			// A page of another release asked: answer with today's file,
			// but do not let it be kept under that release's name.
			cache = "no-cache"
		}
		serve(w, r, a, cache)
	default:
		http.NotFound(w, r)
	}
}

func serve(w http.ResponseWriter, r *http.Request, a asset, cacheControl string) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", cacheControl)
	h.Set("ETag", a.etag)
	// ServeContent answers If-None-Match with 304 and handles HEAD.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func securityHeaders(next http.Handler, csp string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

package web

import (
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var assetRef = regexp.MustCompile(`src="(/static/[0-9a-f]{12}/app\.js)"`)

func TestHandler(t *testing.T) {
	h := Handler()
	index := get(t, h, "GET", "/", nil)
	m := assetRef.FindStringSubmatch(index.Body.String())
	if index.Code != 200 || m == nil {
		t.Fatalf("GET / = %d, page without versioned app.js:\n%s", index.Code, index.Body)
	}
	appJS := m[1]
	version := strings.Split(appJS, "/")[2]

	for _, tc := range []struct {
		path, code, contentType, cache, bodyHas string
	}{
		{"/", "200", "text/html; charset=utf-8", "no-cache", `<main id="main"`},
		{"/app", "200", "text/html; charset=utf-8", "no-cache", `<main id="main"`},
		{"/app/conference/c-7g2xk4m9q3d8w1z5k2m4n6p8", "200", "text/html; charset=utf-8", "no-cache", `<main id="main"`},
		{appJS, "200", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "takeFragmentToken"},
		{"/static/" + version + "/style.css", "200", "text/css; charset=utf-8", "public, max-age=31536000, immutable", "prefers-reduced-motion"},
		{"/static/000000000000/app.js", "200", "text/javascript; charset=utf-8", "no-cache", "takeFragmentToken"},
		{"/static/" + version + "/missing.js", "404", "text/plain; charset=utf-8", "", "404 page not found"},
		{"/static/app.js", "404", "text/plain; charset=utf-8", "", "404 page not found"},
		{"/index.html", "404", "text/plain; charset=utf-8", "", "404 page not found"},
		{"/favicon.ico", "404", "text/plain; charset=utf-8", "", "404 page not found"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			rec := get(t, h, "GET", tc.path, nil)
			hd := rec.Header()
			got := []string{http.StatusText(rec.Code), hd.Get("Content-Type"), hd.Get("Cache-Control")}
			want := []string{http.StatusText(atoi(tc.code)), tc.contentType, tc.cache}
			if !slices.Equal(got, want) {
				t.Errorf("status, type, cache = %q, want %q", got, want)
			}
			if !strings.Contains(rec.Body.String(), tc.bodyHas) {
				t.Errorf("body lacks %q", tc.bodyHas)
			}
			for name, value := range map[string]string{
				"Content-Security-Policy": "default-src 'self'; connect-src 'self' wss:; media-src 'self' blob:; img-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"Permissions-Policy":      "camera=(self), microphone=(self), display-capture=(self)",
			} {
				if hd.Get(name) != value {
					t.Errorf("%s = %q, want %q", name, hd.Get(name), value)
				}
			}
		})
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestETag(t *testing.T) {
	h := Handler()
	appJS := assetRef.FindStringSubmatch(get(t, h, "GET", "/", nil).Body.String())[1]
	first := get(t, h, "GET", appJS, nil)
	etag := first.Header().Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
		t.Fatalf("ETag = %q", etag)
	}
	again := get(t, h, "GET", appJS, map[string]string{"If-None-Match": etag})
	if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Fatalf("If-None-Match with the ETag: %d and %d bytes, want 304 and none", again.Code, again.Body.Len())
	}
	other := get(t, h, "GET", appJS, map[string]string{"If-None-Match": `"0000"`})
	if other.Code != http.StatusOK || other.Body.Len() == 0 {
		t.Fatalf("If-None-Match with another ETag: %d", other.Code)
	}
	head := get(t, h, "HEAD", "/", nil)
	if head.Code != http.StatusOK || head.Body.Len() != 0 {
		t.Fatalf("HEAD /: %d with %d bytes", head.Code, head.Body.Len())
	}
}

func TestMethods(t *testing.T) {
	h := Handler()
	for _, method := range []string{"POST", "PUT", "DELETE"} {
		rec := get(t, h, method, "/", nil)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %d, Allow %q; want 405, GET, HEAD", method, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

// i18nTable returns the keys of one language's table in i18n.js.
func i18nTable(t *testing.T, src, lang string) []string {
	t.Helper()
	start := strings.Index(src, "const "+lang+" = {\n")
	if start < 0 {
		t.Fatalf("i18n.js has no table %q", lang)
	}
	end := strings.Index(src[start:], "\n};")
	if end < 0 {
		t.Fatalf("table %q is not closed", lang)
	}
	var keys []string
	for _, m := range regexp.MustCompile(`(?m)^\s*"([a-z0-9.]+)":`).FindAllStringSubmatch(src[start:start+end], -1) {
		if slices.Contains(keys, m[1]) {
			t.Errorf("%s: key %q twice", lang, m[1])
		}
		keys = append(keys, m[1])
	}
	slices.Sort(keys)
	return keys
}

func TestI18nTablesMatch(t *testing.T) {
	src, err := os.ReadFile("static/i18n.js")
	if err != nil {
		t.Fatal(err)
	}
	en, fr := i18nTable(t, string(src), "en"), i18nTable(t, string(src), "fr")
	if len(en) < 50 {
		t.Fatalf("only %d English keys found: is the table still parsed?", len(en))
	}
	for _, k := range en {
		if !slices.Contains(fr, k) {
			t.Errorf("French lacks %q", k)
		}
	}
	for _, k := range fr {
		if !slices.Contains(en, k) {
			t.Errorf("English lacks %q", k)
		}
	}

	// Every key written literally in the client is in the table.
	used := regexp.MustCompile(`(?:i18n|i18nLabel): '([a-z0-9.]+)'|(?:say\(\w+|announce\()\s*,?\s*'([a-z0-9.]+)'|data-i18n="([a-z0-9.]+)"`)
	sources, _ := filepath.Glob("static/*.js")
	sources = append(sources, "index.html")
	n := 0
	for _, name := range sources {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range used.FindAllStringSubmatch(string(b), -1) {
			key := m[1] + m[2] + m[3]
			n++
			if !slices.Contains(en, key) {
				t.Errorf("%s uses %q, which i18n.js lacks", name, key)
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d uses of keys found: is the pattern still right?", n)
	}
}

// TestImports keeps web a package of assets (doc.go): it must not reach
// into the node's other packages.
func TestImports(t *testing.T) {
	names, _ := filepath.Glob("*.go")
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue // the end-to-end test starts whole nodes
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			for _, banned := range []string{"federation", "media", "bridge", "store"} {
				if strings.Trim(imp.Path.Value, `"`) == "github.com/entente-org/entente/"+banned {
					t.Errorf("%s imports %s", name, banned)
				}
			}
		}
	}
}

// A Matrix client named in the options may show the client as a widget;
// nothing else may frame it.
func TestFrameAncestors(t *testing.T) {
	h := HandlerWith(Options{FrameAncestors: []string{"https://app.element.io", "https://chat.interieur.example"}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/app/conference/c-1", nil))
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "frame-ancestors https://app.element.io https://chat.interieur.example;") || strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	rec = httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("default CSP allows framing: %q", rec.Header().Get("Content-Security-Policy"))
	}
}

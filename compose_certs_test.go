package entente_test

// The compose file's certificates and load balancer: the one-shot service
// that makes them is run here for real (its script, with this machine's
// openssl), and the load balancer's configuration is read directive by
// directive.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// mustPort parses a port number of the compose file.
func mustPort(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return uint32(n)
}

// certSpecs reads the certs service's command: the directory it writes, and
// for each certificate name the DNS names it is made for.
func certSpecs(t *testing.T, s types.ServiceConfig) (dir string, specs map[string][]string) {
	t.Helper()
	if len(s.Command) < 2 {
		t.Fatalf("certs command = %q, want a directory and certificates", s.Command)
	}
	specs = map[string][]string{}
	for _, arg := range s.Command[1:] {
		name, names, ok := strings.Cut(arg, "=")
		if !ok || name == "" || names == "" {
			t.Fatalf("certs argument %q is not NAME=DNSNAME,...", arg)
		}
		specs[name] = strings.Split(names, ",")
	}
	return s.Command[0], specs
}

// The nodes' certificates are made once, before any node starts, from a CA
// every node trusts, each valid for the node's public name and the replica's
// internal name.
func TestComposeCertificates(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())
	certs := p.Services["certs"]

	if !strings.HasPrefix(certs.Image, "alpine/openssl:") {
		t.Errorf("certs image = %q, want alpine/openssl:*", certs.Image)
	}
	if want := []string{"/bin/sh", "/scripts/make-certs.sh"}; !slices.Equal(certs.Entrypoint, want) {
		t.Errorf("certs entrypoint = %q, want %q", certs.Entrypoint, want)
	}
	script, _ := filepath.Abs(filepath.Join("deploy", "compose", "make-certs.sh"))
	if !slices.ContainsFunc(certs.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeBind && v.Source == script && v.Target == "/scripts/make-certs.sh" && v.ReadOnly
	}) {
		t.Errorf("certs volumes = %+v, want %s read-only at /scripts/make-certs.sh", certs.Volumes, script)
	}
	dir, specs := certSpecs(t, certs)
	if dir != "/certs" || namedVolumeAt(certs, "/certs") != "certs" {
		t.Errorf("certs writes %q with volume %q there, want /certs on the certs volume", dir, namedVolumeAt(certs, "/certs"))
	}

	wantSpecs := map[string][]string{}
	for _, r := range composeReplicas {
		s := p.Services[r.service]
		if dep, ok := s.DependsOn["certs"]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s depends_on = %+v, want certs %s", r.service, s.DependsOn, types.ServiceConditionCompletedSuccessfully)
		}
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Source == "certs" && v.Target == "/certs" && v.ReadOnly
		}) {
			t.Errorf("%s volumes = %+v, want certs read-only at /certs", r.service, s.Volumes)
		}
		for k, want := range map[string]string{
			"ENTENTE_HTTP_TLS_CERT":      "/certs/" + r.cert + ".pem",
			"ENTENTE_HTTP_TLS_KEY":       "/certs/" + r.cert + ".key",
			"ENTENTE_FEDERATION_CA_FILE": "/certs/ca.pem",
		} {
			if got := envValue(t, s, k); got != want {
				t.Errorf("%s %s = %q, want %q", r.service, k, got, want)
			}
		}
		public, _ := url.Parse(r.publicURL)
		names := []string{public.Hostname()}
		if r.internalURL != "" {
			internal, _ := url.Parse(r.internalURL)
			names = append(names, internal.Hostname())
		} else {
			names = append(names, r.service)
		}
		wantSpecs[r.cert] = names
	}
	if len(specs) != len(wantSpecs) {
		t.Errorf("certs makes %v, want %v", specs, wantSpecs)
	}
	for name, want := range wantSpecs {
		if got := specs[name]; !slices.Equal(got, want) {
			t.Errorf("certificate %s for %q, want %q", name, got, want)
		}
	}

	out := runMakeCerts(t, specs)
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(out, "ca.pem"))
	if err != nil || !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.pem: %v", err)
	}
	made := map[string][]byte{}
	for name, dnsNames := range specs {
		pair, err := tls.LoadX509KeyPair(filepath.Join(out, name+".pem"), filepath.Join(out, name+".key"))
		if err != nil {
			t.Fatalf("certificate %s: %v", name, err)
		}
		for _, dns := range dnsNames {
			if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: dns, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("certificate %s for %s: %v", name, dns, err)
			}
		}
		if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "elsewhere.entente.test"}); err == nil {
			t.Errorf("certificate %s is valid for a name it was not made for", name)
		}
		if info, err := os.Stat(filepath.Join(out, name+".key")); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("key %s: mode %v (%v), want 0600", name, info.Mode().Perm(), err)
		}
		made[name] = pair.Certificate[0]
	}

	// A second "docker compose up" keeps the CA and every certificate.
	runMakeCertsIn(t, out, specs)
	if again, _ := os.ReadFile(filepath.Join(out, "ca.pem")); !bytes.Equal(again, caPEM) {
		t.Error("a second run replaced the CA")
	}
	for name, der := range made {
		pair, err := tls.LoadX509KeyPair(filepath.Join(out, name+".pem"), filepath.Join(out, name+".key"))
		if err != nil || !bytes.Equal(pair.Certificate[0], der) {
			t.Errorf("a second run replaced certificate %s (%v)", name, err)
		}
	}
}

// runMakeCerts runs deploy/compose/make-certs.sh as the certs service does,
// into a new directory, and returns it.
func runMakeCerts(t *testing.T, specs map[string][]string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "certs")
	runMakeCertsIn(t, out, specs)
	return out
}

func runMakeCertsIn(t *testing.T, out string, specs map[string][]string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is needed to run make-certs.sh: %v", err)
		}
		t.Skipf("openssl is needed to run make-certs.sh: %v", err)
	}
	args := []string{filepath.Join("deploy", "compose", "make-certs.sh"), out}
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		args = append(args, name+"="+strings.Join(specs[name], ","))
	}
	cmd := exec.Command("sh", args...)
	// Keys go to this test's own user instead of the image's nonroot.
	cmd.Env = append(os.Environ(), "NODE_UID="+strconv.Itoa(os.Getuid()))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, b)
	}
}

func TestMakeCertsRefusesBadArguments(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("openssl is needed to run make-certs.sh")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"ministry"}, "no DNS names after ="},
		{[]string{"ca=ca.entente.test"}, "NAME must be"},
		{[]string{"../x=a.entente.test"}, "NAME must be"},
	} {
		dir := t.TempDir()
		args := append([]string{filepath.Join("deploy", "compose", "make-certs.sh"), dir}, tc.args...)
		b, err := exec.Command("sh", args...).CombinedOutput()
		if err == nil || !strings.Contains(string(b), tc.want) {
			t.Errorf("make-certs.sh %q: %v, %q; want a failure saying %q", tc.args, err, b, tc.want)
		}
	}
}

// haproxyConfig is an haproxy.cfg as sections ("global", "backend name")
// of directives.
type haproxyConfig map[string]haproxySection

// haproxySection maps a directive's keyword to the rest of each of its lines.
type haproxySection map[string][]string

func (c haproxyConfig) section(name string) haproxySection { return c[name] }

func (s haproxySection) all(keyword string) []string { return s[keyword] }

// readHAProxyConfig reads what this repository's haproxy.cfg uses: comments,
// section headers at the start of a line, indented directives.
func readHAProxyConfig(t *testing.T, path string) haproxyConfig {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg := haproxyConfig{}
	var current haproxySection
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			current = haproxySection{}
			cfg[strings.Join(strings.Fields(trimmed), " ")] = current
			continue
		}
		if current == nil {
			t.Fatalf("%s: directive %q outside a section", path, trimmed)
		}
		keyword, rest, _ := strings.Cut(trimmed, " ")
		current[keyword] = append(current[keyword], strings.Join(strings.Fields(rest), " "))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Each institution's public URL leads to one service, known on the network
// by the URL's host name and published on the same port as inside, so that the
// URL works from the other institution's containers as from this machine.
func TestComposePublicEntry(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	for _, r := range composeReplicas {
		t.Run(r.service, func(t *testing.T) {
			u, _ := url.Parse(r.publicURL)
			entry := p.Services[composeEntry[r.institution]]
			if n := entry.Networks["federation"]; n == nil || !slices.Contains(n.Aliases, u.Hostname()) {
				t.Errorf("the federation network does not know %s by %s", entry.Name, u.Hostname())
			}
			var tcp []types.ServicePortConfig
			for _, port := range entry.Ports {
				if port.Protocol == "tcp" {
					tcp = append(tcp, port)
				}
			}
			if len(tcp) != 1 || tcp[0].Published != u.Port() || tcp[0].Target != mustPort(t, u.Port()) {
				t.Errorf("%s TCP ports = %+v, want exactly %s -> %s", entry.Name, tcp, u.Port(), u.Port())
			}
			// A replica behind the load balancer publishes no TCP port of its
			// own: the node has one address.
			if entry.Name != r.service {
				for _, port := range p.Services[r.service].Ports {
					if port.Protocol == "tcp" {
						t.Errorf("%s publishes TCP port %s beside its load balancer", r.service, port.Published)
					}
				}
			}
		})
	}
}

// The ministry's load balancer passes TLS through to its two replicas, and
// only to ready ones.
func TestComposeLoadBalancer(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())
	lb := p.Services["ministry"]
	if !strings.HasPrefix(lb.Image, "haproxy:") {
		t.Fatalf("ministry image = %q, want haproxy:*", lb.Image)
	}
	var cfgFile string
	for _, v := range lb.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == "/usr/local/etc/haproxy/haproxy.cfg" && v.ReadOnly {
			cfgFile = v.Source
		}
	}
	if want, _ := filepath.Abs(filepath.Join("deploy", "compose", "haproxy.cfg")); cfgFile != want {
		t.Fatalf("haproxy.cfg mounted from %q, want %q read-only", cfgFile, want)
	}
	for _, replica := range []string{"ministry-1", "ministry-2"} {
		if dep, ok := lb.DependsOn[replica]; !ok || dep.Condition != types.ServiceConditionStarted {
			t.Errorf("depends_on = %+v, want %s started", lb.DependsOn, replica)
		}
	}
	if got := namedVolumeAt(lb, "/certs"); got != "certs" {
		t.Errorf("the load balancer verifies the replicas against the CA: certs volume at /certs, got %q", got)
	}

	hc := readHAProxyConfig(t, cfgFile)
	if got := hc.section("defaults").all("mode"); !slices.Equal(got, []string{"tcp"}) {
		t.Errorf("defaults mode = %q, want tcp: TLS must pass through to the replicas", got)
	}
	front := hc.section("frontend ministry")
	if got := front.all("bind"); !slices.Equal(got, []string{":8441"}) {
		t.Errorf("frontend ministry bind = %q, want [:8441] without TLS termination", got)
	}
	if got := front.all("default_backend"); !slices.Equal(got, []string{"ministry"}) {
		t.Errorf("frontend ministry default_backend = %q, want ministry", got)
	}
	back := hc.section("backend ministry")
	want := []string{"ministry-1 ministry-1:8441", "ministry-2 ministry-2:8441"}
	if got := back.all("server"); !slices.Equal(got, want) {
		t.Errorf("backend ministry servers = %q, want %q", got, want)
	}
	if got := back.all("http-check"); !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "send meth GET uri /readyz ") }) {
		t.Errorf("backend ministry http-check = %q, want a GET of /readyz", got)
	}
	ds := strings.Fields(strings.Join(back.all("default-server"), " "))
	for _, want := range []string{"check", "check-ssl", "ca-file", "/certs/ca.pem", "check-sni", "ministry.entente.test"} {
		if !slices.Contains(ds, want) {
			t.Errorf("backend ministry default-server %q lacks %s", ds, want)
		}
	}
	if got := hc.section("frontend health").all("monitor-uri"); !slices.Equal(got, []string{"/healthz"}) {
		t.Errorf("frontend health monitor-uri = %q, want /healthz (the compose healthcheck)", got)
	}
}

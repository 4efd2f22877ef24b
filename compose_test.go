package entente_test

// These tests keep docker-compose.yml honest without Docker: it is loaded and
// validated by the same library Docker Compose uses, each replica's
// environment goes through the node's own configuration loader, and the
// certificate script it runs is run here too.

import (
	"context"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const composeFile = "docker-compose.yml"

// composeReplica is one replica of an institution's node in the compose
// file: the ministry runs two behind a load balancer, the agency one.
type composeReplica struct {
	service     string
	institution string // the node it belongs to
	name        string // node.name
	publicURL   string
	listen      string // http.listen, the port of the public URL
	database    string // database service
	cert        string // certificate name in the certs volume
	udpPort     string // media.udp_port, published as UDP
	// The replica settings, only for a node with more than one replica.
	nats        string // NATS service
	replicaID   string
	internalURL string
}

var composeReplicas = []composeReplica{
	{
		service: "ministry-1", institution: "ministry", name: "Ministry of the Interior",
		publicURL: "https://ministry.entente.test:8441", listen: ":8441", database: "ministry-db",
		cert: "ministry-1", udpPort: "40001",
		nats: "ministry-nats", replicaID: "ministry-1", internalURL: "https://ministry-1:8441",
	},
	{
		service: "ministry-2", institution: "ministry", name: "Ministry of the Interior",
		publicURL: "https://ministry.entente.test:8441", listen: ":8441", database: "ministry-db",
		cert: "ministry-2", udpPort: "40002",
		nats: "ministry-nats", replicaID: "ministry-2", internalURL: "https://ministry-2:8441",
	},
	{
		service: "agency", institution: "agency", name: "Digital Services Agency",
		publicURL: "https://agency.entente.test:8442", listen: ":8442", database: "agency-db",
		cert: "agency", udpPort: "40003",
	},
}

// composeEntry is the service that answers each institution's public URL:
// the load balancer in front of the ministry's replicas, the agency's only
// replica itself.
var composeEntry = map[string]string{"ministry": "ministry", "agency": "agency"}

// testPasswords returns the required variables of the compose file, with
// values distinct per institution so that a node wired to the wrong
// database would be noticed.
func testPasswords() map[string]string {
	return map[string]string{
		"MINISTRY_DB_PASSWORD": "ministry-secret-0a1b",
		"AGENCY_DB_PASSWORD":   "agency-secret-2c3d",
	}
}

// loadCompose loads the compose file with exactly the variables in env. The
// process environment and any .env file are deliberately not read, so that the
// result does not depend on the machine running the test.
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory("."),
		cli.WithEnv(environ),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	return opts.LoadProject(context.Background())
}

func mustLoadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, env)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

// envValue returns a service's environment variable, failing the test when it
// is unset.
func envValue(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	if !ok || v == nil {
		t.Fatalf("service %s: environment has no %s", s.Name, name)
	}
	return *v
}

func TestComposeServices(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	want := []string{"agency", "agency-db", "agency-trusts-ministry", "certs", "ministry", "ministry-1", "ministry-2",
		"ministry-db", "ministry-nats", "ministry-trusts-agency"}
	if got := slices.Sorted(maps.Keys(p.Services)); !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	var built []string
	for name, s := range p.Services {
		if s.Build != nil {
			built = append(built, name)
		}
	}
	slices.Sort(built)
	if want := []string{"agency", "agency-trusts-ministry", "ministry-1", "ministry-2", "ministry-trusts-agency"}; !slices.Equal(built, want) {
		t.Fatalf("services built from the repository = %v, want the node replicas and the trust jobs %v", built, want)
	}
}

func TestComposeNodeUsesItsOwnDatabase(t *testing.T) {
	passwords := testPasswords()
	p := mustLoadCompose(t, passwords)

	dbOf := map[string]string{} // institution -> database URL
	for _, r := range composeReplicas {
		t.Run(r.service, func(t *testing.T) {
			s := p.Services[r.service]
			raw := envValue(t, s, "ENTENTE_DATABASE_URL")
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("ENTENTE_DATABASE_URL %q: %v", raw, err)
			}
			if u.Scheme != "postgres" {
				t.Errorf("ENTENTE_DATABASE_URL scheme = %q, want postgres", u.Scheme)
			}
			if u.Hostname() != r.database {
				t.Fatalf("ENTENTE_DATABASE_URL host = %q, want %q", u.Hostname(), r.database)
			}
			// The replicas of one node share one database, with its keys.
			if other, seen := dbOf[r.institution]; seen && other != raw {
				t.Errorf("ENTENTE_DATABASE_URL = %q, but another replica of %s has %q", raw, r.institution, other)
			}
			dbOf[r.institution] = raw

			dbService, ok := p.Services[u.Hostname()]
			if !ok {
				t.Fatalf("database host %q is not a service of the project", u.Hostname())
			}
			if !strings.HasPrefix(dbService.Image, "postgres:") {
				t.Errorf("service %s image = %q, want postgres:*", r.database, dbService.Image)
			}

			// The node and its database must read the same password variable.
			wantPassword := passwords[strings.ToUpper(r.institution)+"_DB_PASSWORD"]
			if got, _ := u.User.Password(); got != wantPassword {
				t.Errorf("ENTENTE_DATABASE_URL password = %q, want %q", got, wantPassword)
			}
			if got := envValue(t, dbService, "POSTGRES_PASSWORD"); got != wantPassword {
				t.Errorf("%s POSTGRES_PASSWORD = %q, want %q", r.database, got, wantPassword)
			}
			if got, want := u.User.Username(), envValue(t, dbService, "POSTGRES_USER"); got != want {
				t.Errorf("ENTENTE_DATABASE_URL user = %q, want %s's POSTGRES_USER %q", got, r.database, want)
			}
			if got, want := strings.TrimPrefix(u.Path, "/"), envValue(t, dbService, "POSTGRES_DB"); got != want {
				t.Errorf("ENTENTE_DATABASE_URL database = %q, want %s's POSTGRES_DB %q", got, r.database, want)
			}
			if dep, ok := s.DependsOn[r.database]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on = %+v, want %s with condition %s", s.DependsOn, r.database, types.ServiceConditionHealthy)
			}
		})
	}
	if dbOf["ministry"] == dbOf["agency"] {
		t.Errorf("ministry and agency share the database %q", dbOf["ministry"])
	}
}

func TestComposeNodeSettings(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	for _, r := range composeReplicas {
		t.Run(r.service, func(t *testing.T) {
			s := p.Services[r.service]
			wantEnv := map[string]string{
				"ENTENTE_NODE_NAME":       r.name,
				"ENTENTE_NODE_PUBLIC_URL": r.publicURL,
				"ENTENTE_HTTP_LISTEN":     r.listen,
				"ENTENTE_KEYS_STORAGE":    "database",
				"ENTENTE_LOG_FORMAT":      "json",
			}
			for k, want := range wantEnv {
				if got := envValue(t, s, k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if s.Restart != types.RestartPolicyUnlessStopped {
				t.Errorf("restart = %q, want %q", s.Restart, types.RestartPolicyUnlessStopped)
			}
			if got := namedVolumeAt(s, nodeDataDir); got == "" {
				t.Errorf("no named volume mounted at %s; volumes = %+v", nodeDataDir, s.Volumes)
			}
		})
	}
}

// namedVolumeAt returns the name of the named volume mounted at target, or "".
func namedVolumeAt(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == target {
			return v.Source
		}
	}
	return ""
}

func TestComposeVolumesAreSeparate(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	// Each service keeps its state in a volume of its own: two services on one
	// volume would mix two institutions' keys or databases. Only the
	// certificates are shared, read-only but for the service that makes them.
	targets := map[string]string{
		"ministry-1":    nodeDataDir,
		"ministry-2":    nodeDataDir,
		"agency":        nodeDataDir,
		"ministry-db":   "/var/lib/postgresql/data",
		"agency-db":     "/var/lib/postgresql/data",
		"ministry-nats": "/data",
	}
	owner := map[string]string{}
	for service, target := range targets {
		vol := namedVolumeAt(p.Services[service], target)
		if vol == "" {
			t.Errorf("service %s has no named volume at %s", service, target)
			continue
		}
		if _, declared := p.Volumes[vol]; !declared {
			t.Errorf("service %s uses volume %q that the project does not declare", service, vol)
		}
		if other, taken := owner[vol]; taken {
			t.Errorf("services %s and %s share the volume %q", other, service, vol)
		}
		owner[vol] = service
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Source == "certs" && v.ReadOnly == (name == "certs") {
				t.Errorf("service %s mounts the certs volume with read-only %v", name, v.ReadOnly)
			}
		}
	}
}

func TestComposeHealthchecks(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	want := map[string][]string{
		"ministry":      {"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8404/healthz"},
		"ministry-nats": {"CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8222/healthz?js-enabled-only=true"},
		"ministry-db":   {"CMD", "pg_isready", "--username=entente", "--dbname=entente"},
		"agency-db":     {"CMD", "pg_isready", "--username=entente", "--dbname=entente"},
	}
	for _, r := range composeReplicas {
		// The image has no shell: the test must be the exec form of the
		// node binary itself.
		want[r.service] = []string{"CMD", nodeBinary, "healthcheck"}
	}
	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			if _, trust := composeTrust[name]; trust || name == "certs" {
				// One-shot: others wait for it to complete, not to be healthy.
				if s.Restart != types.RestartPolicyNo {
					t.Errorf("restart = %q, want no", s.Restart)
				}
				return
			}
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) == 0 {
				t.Fatalf("no healthcheck test: %+v", hc)
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("healthcheck lacks interval, timeout or retries: %+v", hc)
			}
			if !slices.Equal(hc.Test, want[name]) {
				t.Errorf("healthcheck test = %q, want %q", hc.Test, want[name])
			}
		})
	}
}

func TestComposeFederationNetwork(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	if _, ok := p.Networks["federation"]; !ok {
		t.Fatalf("project networks = %v, want federation declared", slices.Sorted(maps.Keys(p.Networks)))
	}
	for name, s := range p.Services {
		if got := slices.Sorted(maps.Keys(s.Networks)); !slices.Equal(got, []string{"federation"}) {
			t.Errorf("service %s networks = %v, want [federation]", name, got)
		}
	}
}

func TestComposeNodeBuildsRepositoryDockerfile(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())
	repo, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range composeReplicas {
		b := p.Services[r.service].Build
		if b == nil {
			t.Errorf("service %s is not built", r.service)
			continue
		}
		// The loader resolves the context against the project directory, so
		// "." becomes the repository root.
		if b.Context != repo {
			t.Errorf("service %s build context = %q, want the repository root %q", r.service, b.Context, repo)
		}
		if b.Dockerfile != dockerfileName {
			t.Errorf("service %s dockerfile = %q, want %q", r.service, b.Dockerfile, dockerfileName)
		}
	}
}

func TestComposePublicURLOverride(t *testing.T) {
	env := testPasswords()
	env["MINISTRY_PUBLIC_URL"] = "https://conf.interior.example"
	p := mustLoadCompose(t, env)

	for _, replica := range []string{"ministry-1", "ministry-2"} {
		if got := envValue(t, p.Services[replica], "ENTENTE_NODE_PUBLIC_URL"); got != "https://conf.interior.example" {
			t.Errorf("%s ENTENTE_NODE_PUBLIC_URL = %q, want the override", replica, got)
		}
	}
	if got := envValue(t, p.Services["agency"], "ENTENTE_NODE_PUBLIC_URL"); got != "https://agency.entente.test:8442" {
		t.Errorf("agency ENTENTE_NODE_PUBLIC_URL = %q, want its default", got)
	}
}

func TestComposeRequiresDatabasePasswords(t *testing.T) {
	tests := []struct {
		missing string
		empty   bool // set to "" rather than left out: ":?" refuses both
	}{
		{missing: "MINISTRY_DB_PASSWORD"},
		{missing: "AGENCY_DB_PASSWORD"},
		{missing: "MINISTRY_DB_PASSWORD", empty: true},
		{missing: "AGENCY_DB_PASSWORD", empty: true},
	}
	for _, tc := range tests {
		name := tc.missing
		if tc.empty {
			name += "/empty"
		}
		t.Run(name, func(t *testing.T) {
			env := testPasswords()
			delete(env, tc.missing)
			if tc.empty {
				env[tc.missing] = ""
			}
			p, err := loadCompose(t, env)
			if err == nil {
				t.Fatalf("loaded without %s; ministry-db POSTGRES_PASSWORD = %v", tc.missing,
					p.Services["ministry-db"].Environment["POSTGRES_PASSWORD"])
			}
			if !strings.Contains(err.Error(), "required variable "+tc.missing) {
				t.Errorf("error %q does not name the required variable %s", err, tc.missing)
			}
		})
	}
}

// TestComposeNodeEnvironmentIsValidConfig runs each replica's environment, on
// top of the image's ENV, through the node's own configuration loader: a
// misspelt variable or an invalid value would otherwise only show when the
// container starts.
func TestComposeNodeEnvironmentIsValidConfig(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())
	stages := readDockerfile(t)
	imageEnv := stages[len(stages)-1].env()

	for _, r := range composeReplicas {
		t.Run(r.service, func(t *testing.T) {
			env := maps.Clone(imageEnv)
			for k, v := range p.Services[r.service].Environment {
				if v != nil {
					env[k] = *v
				}
			}
			cfg := loadNodeConfig(t, r.service, "", env)
			if cfg.Node.DataDir != nodeDataDir {
				t.Errorf("node.data_dir = %q, want the volume %s", cfg.Node.DataDir, nodeDataDir)
			}
			if cfg.Node.PublicURL != r.publicURL || cfg.HTTP.Listen != r.listen {
				t.Errorf("node.public_url %q, http.listen %q; want %s and %s", cfg.Node.PublicURL, cfg.HTTP.Listen, r.publicURL, r.listen)
			}
			if cfg.Keys.Storage != "database" {
				t.Errorf("keys.storage = %q, want database", cfg.Keys.Storage)
			}
			if u, err := url.Parse(cfg.Database.URL); err != nil || u.Hostname() != r.database {
				t.Errorf("database.url = %q, want host %s", cfg.Database.URL, r.database)
			}
			if want := "/certs/" + r.cert; cfg.HTTP.TLSCert != want+".pem" || cfg.HTTP.TLSKey != want+".key" {
				t.Errorf("http.tls_cert %q, http.tls_key %q; want %s.pem and %s.key", cfg.HTTP.TLSCert, cfg.HTTP.TLSKey, want, want)
			}
			if cfg.Federation.CAFile != "/certs/ca.pem" {
				t.Errorf("federation.ca_file = %q, want the local CA /certs/ca.pem", cfg.Federation.CAFile)
			}
			if got := cfg.Media.UDPPort; got != int(mustPort(t, r.udpPort)) {
				t.Errorf("media.udp_port = %d, want %s", got, r.udpPort)
			}
			if len(cfg.Media.PublicIPList()) != 0 {
				t.Errorf("media.public_ips = %q without MEDIA_PUBLIC_IP, want none", cfg.Media.PublicIPs)
			}
			if !cfg.Federation.AllowPrivateAddresses {
				t.Error("federation.allow_private_addresses = false, but peers are on the private compose network")
			}
			if cfg.Log.Format != "json" {
				t.Errorf("log.format = %q, want json", cfg.Log.Format)
			}
		})
	}
}

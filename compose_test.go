package entente_test

// These tests keep the container files honest without Docker: the compose
// file is loaded and validated by the same library Docker Compose uses, and
// the Dockerfile is read instruction by instruction. Both must agree with each
// other (binary path, port, data volume) and with how a node is configured.

import (
	"context"
	"encoding/json"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/entente-org/entente/internal/config"
)

const (
	composeFile    = "docker-compose.yml"
	dockerfileName = "Dockerfile"
	nodeBinary     = "/usr/local/bin/entente"
	nodeDataDir    = "/var/lib/entente"
	nodePort       = 8443
)

// nodeDatabases maps each institution's node service to its own database
// service: no two institutions share a database.
var nodeDatabases = map[string]string{
	"ministry": "ministry-db",
	"agency":   "agency-db",
}

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

	want := []string{"agency", "agency-db", "ministry", "ministry-db"}
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
	if want := []string{"agency", "ministry"}; !slices.Equal(built, want) {
		t.Fatalf("services built from the repository = %v, want the nodes %v", built, want)
	}
}

func TestComposeNodeUsesItsOwnDatabase(t *testing.T) {
	passwords := testPasswords()
	p := mustLoadCompose(t, passwords)

	hostOf := map[string]string{}
	for node, db := range nodeDatabases {
		t.Run(node, func(t *testing.T) {
			s := p.Services[node]
			raw := envValue(t, s, "ENTENTE_DATABASE_URL")
			u, err := url.Parse(raw)
			if err != nil {
				t.Fatalf("ENTENTE_DATABASE_URL %q: %v", raw, err)
			}
			if u.Scheme != "postgres" {
				t.Errorf("ENTENTE_DATABASE_URL scheme = %q, want postgres", u.Scheme)
			}
			if u.Hostname() != db {
				t.Fatalf("ENTENTE_DATABASE_URL host = %q, want %q", u.Hostname(), db)
			}
			hostOf[node] = u.Hostname()

			dbService, ok := p.Services[u.Hostname()]
			if !ok {
				t.Fatalf("database host %q is not a service of the project", u.Hostname())
			}
			if !strings.HasPrefix(dbService.Image, "postgres:") {
				t.Errorf("service %s image = %q, want postgres:*", db, dbService.Image)
			}

			// The node and its database must read the same password variable.
			prefix := strings.ToUpper(node)
			wantPassword := passwords[prefix+"_DB_PASSWORD"]
			if got, _ := u.User.Password(); got != wantPassword {
				t.Errorf("ENTENTE_DATABASE_URL password = %q, want %q", got, wantPassword)
			}
			if got := envValue(t, dbService, "POSTGRES_PASSWORD"); got != wantPassword {
				t.Errorf("%s POSTGRES_PASSWORD = %q, want %q", db, got, wantPassword)
			}
			if got, want := u.User.Username(), envValue(t, dbService, "POSTGRES_USER"); got != want {
				t.Errorf("ENTENTE_DATABASE_URL user = %q, want %s's POSTGRES_USER %q", got, db, want)
			}
			if got, want := strings.TrimPrefix(u.Path, "/"), envValue(t, dbService, "POSTGRES_DB"); got != want {
				t.Errorf("ENTENTE_DATABASE_URL database = %q, want %s's POSTGRES_DB %q", got, db, want)
			}

			if dep, ok := s.DependsOn[db]; len(s.DependsOn) != 1 || !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on = %+v, want only %s with condition %s", s.DependsOn, db, types.ServiceConditionHealthy)
			}
		})
	}
	if hostOf["ministry"] == hostOf["agency"] {
		t.Errorf("ministry and agency share the database host %q", hostOf["ministry"])
	}
}

func TestComposeNodeSettings(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	tests := []struct {
		node      string
		name      string
		publicURL string
		published string
	}{
		{"ministry", "Ministry of the Interior", "https://ministry.entente.test:8441", "8441"},
		{"agency", "Digital Services Agency", "https://agency.entente.test:8442", "8442"},
	}
	for _, tc := range tests {
		t.Run(tc.node, func(t *testing.T) {
			s := p.Services[tc.node]
			wantEnv := map[string]string{
				"ENTENTE_NODE_NAME":       tc.name,
				"ENTENTE_NODE_PUBLIC_URL": tc.publicURL,
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
			// The same port inside and outside, so that the public URL works
			// from the other container as well as from this machine.
			if len(s.Ports) != 1 || s.Ports[0].Published != tc.published || strconv.Itoa(int(s.Ports[0].Target)) != tc.published {
				t.Errorf("ports = %+v, want exactly %s -> %s", s.Ports, tc.published, tc.published)
			}
			if got := envValue(t, s, "ENTENTE_HTTP_LISTEN"); got != ":"+tc.published {
				t.Errorf("ENTENTE_HTTP_LISTEN = %q, want :%s", got, tc.published)
			}
			// The other node reaches this one by its public URL's host name.
			u, _ := url.Parse(tc.publicURL)
			if n := s.Networks["federation"]; n == nil || !slices.Contains(n.Aliases, u.Hostname()) {
				t.Errorf("the federation network does not know %s by %s", tc.node, u.Hostname())
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
	// volume would mix two institutions' keys or databases.
	targets := map[string]string{
		"ministry":    nodeDataDir,
		"agency":      nodeDataDir,
		"ministry-db": "/var/lib/postgresql/data",
		"agency-db":   "/var/lib/postgresql/data",
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
}

func TestComposeHealthchecks(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			hc := s.HealthCheck
			if hc == nil || hc.Disable || len(hc.Test) == 0 {
				t.Fatalf("no healthcheck test: %+v", hc)
			}
			if hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil {
				t.Errorf("healthcheck lacks interval, timeout or retries: %+v", hc)
			}
			_, isNode := nodeDatabases[name]
			var want []string
			if isNode {
				// The image has no shell: the test must be the exec form of
				// the node binary itself.
				want = []string{"CMD", nodeBinary, "healthcheck"}
			} else {
				want = []string{"CMD", "pg_isready", "--username=entente", "--dbname=entente"}
			}
			if !slices.Equal(hc.Test, want) {
				t.Errorf("healthcheck test = %q, want %q", hc.Test, want)
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
	for node := range nodeDatabases {
		b := p.Services[node].Build
		if b == nil {
			t.Errorf("service %s is not built", node)
			continue
		}
		// The loader resolves the context against the project directory, so
		// "." becomes the repository root.
		if b.Context != repo {
			t.Errorf("service %s build context = %q, want the repository root %q", node, b.Context, repo)
		}
		if b.Dockerfile != dockerfileName {
			t.Errorf("service %s dockerfile = %q, want %q", node, b.Dockerfile, dockerfileName)
		}
		if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
			t.Errorf("service %s: %v", node, err)
		}
	}
}

func TestComposePublicURLOverride(t *testing.T) {
	env := testPasswords()
	env["MINISTRY_PUBLIC_URL"] = "https://conf.interior.example"
	p := mustLoadCompose(t, env)

	if got := envValue(t, p.Services["ministry"], "ENTENTE_NODE_PUBLIC_URL"); got != "https://conf.interior.example" {
		t.Errorf("ministry ENTENTE_NODE_PUBLIC_URL = %q, want the override", got)
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

// TestComposeNodeEnvironmentIsValidConfig runs each node's environment, on
// top of the image's ENV, through the node's own configuration loader: a
// misspelt variable or an invalid value would otherwise only show when the
// container starts.
func TestComposeNodeEnvironmentIsValidConfig(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())
	stages := readDockerfile(t)
	imageEnv := stages[len(stages)-1].env()
	reference := config.Reference()

	for node, db := range nodeDatabases {
		t.Run(node, func(t *testing.T) {
			env := maps.Clone(imageEnv)
			for k, v := range p.Services[node].Environment {
				if v != nil {
					env[k] = *v
				}
			}
			var environ []string
			for k, v := range env {
				// The loader ignores unknown ENTENTE_ variables, so a typo
				// must be caught here.
				if strings.HasPrefix(k, config.EnvPrefix) && !strings.Contains(reference, "`"+k+"`") {
					t.Errorf("%s is not a setting of the node", k)
				}
				environ = append(environ, k+"="+v)
			}
			cfg, err := config.Load("", environ)
			if err != nil {
				t.Fatalf("node configuration: %v", err)
			}
			if cfg.Node.DataDir != nodeDataDir {
				t.Errorf("node.data_dir = %q, want the volume %s", cfg.Node.DataDir, nodeDataDir)
			}
			if _, port, _ := strings.Cut(cfg.HTTP.Listen, ":"); !strings.HasSuffix(cfg.Node.PublicURL, ":"+port) {
				t.Errorf("http.listen = %q is not the port of the public URL %s", cfg.HTTP.Listen, cfg.Node.PublicURL)
			}
			if cfg.Keys.Storage != "database" {
				t.Errorf("keys.storage = %q, want database", cfg.Keys.Storage)
			}
			if u, err := url.Parse(cfg.Database.URL); err != nil || u.Hostname() != db {
				t.Errorf("database.url = %q, want host %s", cfg.Database.URL, db)
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

func TestDeployExampleConfigLoads(t *testing.T) {
	cfg, err := config.Load(filepath.Join("deploy", "entente.example.yaml"), nil)
	if err != nil {
		t.Fatalf("deploy example: %v", err)
	}
	// The example describes a node running from the image: its data must be
	// in the image's volume and it must listen on the exposed port.
	if cfg.Node.DataDir != nodeDataDir || cfg.HTTP.Listen != ":8443" {
		t.Errorf("data_dir %q, listen %q; want %s and :8443", cfg.Node.DataDir, cfg.HTTP.Listen, nodeDataDir)
	}
	if cfg.HTTP.TLSCert == "" || cfg.Database.URL != "" || cfg.Keys.Storage != "database" {
		t.Errorf("tls_cert %q, database.url %q, keys.storage %q; want a real certificate, the URL left to the environment, keys in the database",
			cfg.HTTP.TLSCert, cfg.Database.URL, cfg.Keys.Storage)
	}
}

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is the instructions from one FROM to the next.
type stage struct {
	from         string // image reference
	name         string // AS name, may be empty
	instructions []instruction
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.instructions {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// env returns the stage's ENV settings, in the KEY=VALUE form this
// Dockerfile uses.
func (s stage) env() map[string]string {
	env := map[string]string{}
	for _, args := range s.all("ENV") {
		for _, kv := range strings.Fields(args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	return env
}

// readDockerfile splits the Dockerfile into stages. It understands what this
// repository's Dockerfile uses: comments, parser directives, backslash
// continuations and "FROM image AS name".
func readDockerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile(dockerfileName)
	if err != nil {
		t.Fatal(err)
	}
	var (
		stages  []stage
		pending string
	)
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if pending == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			pending += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		full := pending + trimmed
		pending = ""
		cmd, args, _ := strings.Cut(full, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s: %s before the first FROM", dockerfileName, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	if pending != "" {
		t.Fatalf("%s ends in a continuation line", dockerfileName)
	}
	return stages
}

// execForm decodes a JSON-array instruction argument such as ["serve"].
func execForm(t *testing.T, cmd, args string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		t.Fatalf("%s %s: not the exec (JSON array) form: %v", cmd, args, err)
	}
	return out
}

func TestDockerfileBuildStage(t *testing.T) {
	stages := readDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d FROM lines, want a multi-stage build (at least 2)", len(stages))
	}
	build := stages[0]
	if !strings.HasPrefix(build.from, "golang:") {
		t.Errorf("build stage FROM %s, want a golang image", build.from)
	}
	if got := build.env()["CGO_ENABLED"]; got != "0" {
		t.Errorf("build stage CGO_ENABLED = %q, want 0 (the runtime image has no libc)", got)
	}

	// Modules are downloaded from go.mod and go.sum alone, before the rest of
	// the source is copied, so that the layer survives code changes.
	var modCopy, download, srcCopy, goBuild = -1, -1, -1, -1
	for i, in := range build.instructions {
		switch {
		case in.cmd == "COPY" && in.args == "go.mod go.sum ./":
			modCopy = i
		case in.cmd == "RUN" && strings.Contains(in.args, "go mod download"):
			download = i
		case in.cmd == "COPY" && in.args == ". .":
			srcCopy = i
		case in.cmd == "RUN" && strings.Contains(in.args, "go build"):
			goBuild = i
			for _, flag := range []string{"-trimpath", "-s -w", "-X main.version=${VERSION}", "./cmd/entente"} {
				if !strings.Contains(in.args, flag) {
					t.Errorf("go build %q lacks %q", in.args, flag)
				}
			}
		}
	}
	if !(modCopy >= 0 && modCopy < download && download < srcCopy && srcCopy < goBuild) {
		t.Errorf("build order: COPY go.mod go.sum at %d, go mod download at %d, COPY . . at %d, go build at %d; want them in that order",
			modCopy, download, srcCopy, goBuild)
	}
	if !slices.Contains(build.all("ARG"), "VERSION=dev") {
		t.Errorf("build stage ARGs = %q, want VERSION=dev", build.all("ARG"))
	}
}

func TestDockerfileRuntimeStage(t *testing.T) {
	stages := readDockerfile(t)
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Fatalf("final stage FROM %s, want distroless/static or scratch", final.from)
	}
	if got := final.all("USER"); !slices.Equal(got, []string{"nonroot"}) {
		t.Errorf("USER = %q, want nonroot", got)
	}
	if got := final.all("EXPOSE"); !slices.Equal(got, []string{"8443"}) {
		t.Errorf("EXPOSE = %q, want 8443", got)
	}
	if got := final.all("VOLUME"); !slices.Equal(got, []string{nodeDataDir}) {
		t.Errorf("VOLUME = %q, want %s", got, nodeDataDir)
	}
	env := final.env()
	if env["ENTENTE_NODE_DATA_DIR"] != nodeDataDir {
		t.Errorf("ENTENTE_NODE_DATA_DIR = %q, want the volume %s", env["ENTENTE_NODE_DATA_DIR"], nodeDataDir)
	}
	if env["ENTENTE_HTTP_LISTEN"] != ":8443" {
		t.Errorf("ENTENTE_HTTP_LISTEN = %q, want the exposed :8443", env["ENTENTE_HTTP_LISTEN"])
	}
	if !slices.Contains(final.all("COPY"), "--from=build /out/entente "+nodeBinary) {
		t.Errorf("COPY = %q, want the binary copied from the build stage to %s", final.all("COPY"), nodeBinary)
	}

	entrypoints := final.all("ENTRYPOINT")
	cmds := final.all("CMD")
	if len(entrypoints) != 1 || len(cmds) != 1 {
		t.Fatalf("ENTRYPOINT %q, CMD %q: want one of each", entrypoints, cmds)
	}
	if got := execForm(t, "ENTRYPOINT", entrypoints[0]); !slices.Equal(got, []string{nodeBinary}) {
		t.Errorf("ENTRYPOINT = %q, want [%s]", got, nodeBinary)
	}
	if got := execForm(t, "CMD", cmds[0]); !slices.Equal(got, []string{"serve"}) {
		t.Errorf("CMD = %q, want [serve]", got)
	}

	// A plain "docker run" gets the same healthcheck as the compose file.
	hc := final.all("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("HEALTHCHECK = %q, want one", hc)
	}
	_, test, ok := strings.Cut(hc[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q has no CMD", hc[0])
	}
	if got := execForm(t, "HEALTHCHECK CMD", test); !slices.Equal(got, []string{nodeBinary, "healthcheck"}) {
		t.Errorf("HEALTHCHECK CMD = %q, want [%s healthcheck]", got, nodeBinary)
	}
}

func TestDockerfileContextExcludesSecretsAndHistory(t *testing.T) {
	data, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	patterns := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns[line] = true
		}
	}
	for _, want := range []string{".git", ".env", ".env.*"} {
		if !patterns[want] {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	// The build needs these; excluding them would fail every image build.
	for _, needed := range []string{"go.mod", "go.sum", "*.go", "**/*.go", "cmd", "internal"} {
		if patterns[needed] {
			t.Errorf(".dockerignore excludes %s, which the build needs", needed)
		}
	}
}

package entente_test

// The Dockerfile is read instruction by instruction, without Docker: it must
// agree with the compose file and the chart (binary path, port, data volume)
// and with how a node is configured.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/entente-org/entente/internal/config"
)

const (
	dockerfileName = "Dockerfile"
	nodeBinary     = "/usr/local/bin/entente"
	nodeDataDir    = "/var/lib/entente"
)

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

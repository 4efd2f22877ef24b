package entente_test

// The compose file's institutions put each other on their trust lists once
// their nodes are up, so that they federate with nothing else to do.

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/entente-org/entente/identity"
)

// composeTrust maps each one-shot trust service to the institution whose
// store it writes and the institution it trusts.
var composeTrust = map[string]struct{ truster, trusted string }{
	"ministry-trusts-agency": {"ministry", "agency"},
	"agency-trusts-ministry": {"agency", "ministry"},
}

// institutionReplicas returns the compose replicas of an institution.
func institutionReplicas(institution string) []composeReplica {
	var out []composeReplica
	for _, r := range composeReplicas {
		if r.institution == institution {
			out = append(out, r)
		}
	}
	return out
}

func TestComposeInstitutionsTrustEachOther(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())
	stages := readDockerfile(t)
	imageEnv := stages[len(stages)-1].env()

	for name, tc := range composeTrust {
		t.Run(name, func(t *testing.T) {
			s := p.Services[name]
			truster := institutionReplicas(tc.truster)[0]
			trusted := institutionReplicas(tc.trusted)[0]
			did, err := identity.DIDFromBaseURL(trusted.publicURL)
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"peers", "add", did, "--name", trusted.name}; !slices.Equal(s.Command, want) {
				t.Errorf("command = %q, want %q", s.Command, want)
			}
			if s.Build == nil || s.Build.Dockerfile != dockerfileName || s.Restart != types.RestartPolicyNo {
				t.Errorf("build %+v, restart %q; want the node image, run once", s.Build, s.Restart)
			}
			// It writes the store only once the node has made its keys.
			if dep, ok := s.DependsOn[truster.service]; len(s.DependsOn) != 1 || !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on = %+v, want only %s healthy", s.DependsOn, truster.service)
			}

			env := maps.Clone(imageEnv)
			for k, v := range s.Environment {
				if v != nil {
					env[k] = *v
				}
			}
			for k := range env {
				if strings.HasPrefix(k, "ENTENTE_CLUSTER_") {
					t.Errorf("%s is set: the trust job is no replica of the node", k)
				}
			}
			cfg := loadNodeConfig(t, name, "", env)
			replicaEnv := p.Services[truster.service].Environment
			for _, k := range []string{"ENTENTE_NODE_NAME", "ENTENTE_NODE_PUBLIC_URL", "ENTENTE_DATABASE_URL", "ENTENTE_KEYS_STORAGE"} {
				if got, want := env[k], *replicaEnv[k]; got != want {
					t.Errorf("%s = %q, but %s has %q: the job must write that node's store", k, got, truster.service, want)
				}
			}
			if cfg.Keys.Storage != "database" {
				t.Errorf("keys.storage = %q, want database", cfg.Keys.Storage)
			}
			if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Source == "certs" && v.Target == "/certs" && v.ReadOnly
			}) {
				t.Errorf("volumes = %+v, want certs read-only at /certs for its certificate", s.Volumes)
			}
		})
	}
}

// With other public URLs, the trust jobs take the DIDs that follow from them.
func TestComposeTrustFollowsPublicURLOverride(t *testing.T) {
	env := testPasswords()
	env["MINISTRY_PUBLIC_URL"] = "https://conf.interior.example"
	env["MINISTRY_DID"] = "did:web:conf.interior.example"
	p := mustLoadCompose(t, env)
	if got := p.Services["agency-trusts-ministry"].Command[2]; got != "did:web:conf.interior.example" {
		t.Errorf("agency trusts %q, want MINISTRY_DID", got)
	}
	if got := p.Services["ministry-trusts-agency"].Command[2]; got != "did:web:agency.entente.test%3A8442" {
		t.Errorf("ministry trusts %q, want the agency's default DID", got)
	}
}

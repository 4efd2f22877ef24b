package entente_test

// The ministry's node in the compose file runs as two replicas.

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// The ministry's two replicas are one node: the same name, public URL,
// database and NATS with JetStream, each with its own replica id and the
// internal URL on which the other reaches it. The agency's single replica
// has no replica settings.
func TestComposeReplicasAreOneNode(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	ids := map[string]string{}
	internal := map[string]string{}
	for _, r := range composeReplicas {
		t.Run(r.service, func(t *testing.T) {
			s := p.Services[r.service]
			if r.nats == "" {
				for k := range s.Environment {
					if strings.HasPrefix(k, "ENTENTE_CLUSTER_") {
						t.Errorf("%s is set on a node with one replica", k)
					}
				}
				return
			}
			natsURL, err := url.Parse(envValue(t, s, "ENTENTE_CLUSTER_NATS_URL"))
			if err != nil || natsURL.Scheme != "nats" || natsURL.Hostname() != r.nats || natsURL.Port() != "4222" {
				t.Errorf("ENTENTE_CLUSTER_NATS_URL = %v (%v), want nats://%s:4222", natsURL, err, r.nats)
			}
			nats, ok := p.Services[r.nats]
			if !ok {
				t.Fatalf("NATS service %s is missing", r.nats)
			}
			if !strings.HasPrefix(nats.Image, "nats:2") {
				t.Errorf("%s image = %q, want nats:2*", r.nats, nats.Image)
			}
			if !slices.Contains(nats.Command, "-js") {
				t.Errorf("%s command = %q, want JetStream (-js)", r.nats, nats.Command)
			}
			if got, want := nats.Command, []string{"-js", "-sd", "/data", "-m", "8222"}; !slices.Equal(got, want) {
				t.Errorf("%s command = %q, want %q", r.nats, got, want)
			}
			if vol := namedVolumeAt(nats, "/data"); vol == "" {
				t.Errorf("%s keeps its JetStream store in no named volume at /data", r.nats)
			}
			if dep, ok := s.DependsOn[r.nats]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on = %+v, want %s healthy", s.DependsOn, r.nats)
			}

			if got := envValue(t, s, "ENTENTE_CLUSTER_REPLICA_ID"); got != r.replicaID {
				t.Errorf("ENTENTE_CLUSTER_REPLICA_ID = %q, want %q", got, r.replicaID)
			}
			got := envValue(t, s, "ENTENTE_CLUSTER_INTERNAL_URL")
			if got != r.internalURL {
				t.Errorf("ENTENTE_CLUSTER_INTERNAL_URL = %q, want %q", got, r.internalURL)
			}
			// The other replicas reach it by its service name, on the port it
			// listens on.
			if u, err := url.Parse(got); err != nil || u.Scheme != "https" || u.Hostname() != r.service || ":"+u.Port() != r.listen {
				t.Errorf("ENTENTE_CLUSTER_INTERNAL_URL = %q, want https://%s%s", got, r.service, r.listen)
			}
			if other, dup := ids[r.replicaID]; dup {
				t.Errorf("replica id %q also belongs to %s", r.replicaID, other)
			}
			ids[r.replicaID] = r.service
			if other, dup := internal[got]; dup {
				t.Errorf("internal URL %q also belongs to %s", got, other)
			}
			internal[got] = r.service
		})
	}
	if len(ids) != 2 {
		t.Errorf("replica ids %v, want the ministry's two", ids)
	}
}

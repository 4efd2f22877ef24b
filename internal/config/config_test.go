package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "entente.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clusterOn and clusterStore make a replica of a node (docs/replicas.md).
const clusterOn = "cluster:\n  nats_url: nats://nats.example:4222\n  internal_url: https://10.0.0.5:8443\n"
const clusterStore = "database:\n  url: postgres://db.example/entente\nkeys:\n  storage: database\n"

const minimal = `
node:
  name: Ministry of Digital Affairs
  public_url: https://visio.ministry.example
`

func TestDefaults(t *testing.T) {
	c := Default()
	if c.HTTP.Listen != ":8443" || c.Keys.Storage != "file" || c.Log.Format != "json" ||
		c.Log.Level != "info" || c.Federation.DIDCacheTTL != 5*time.Minute ||
		c.Keys.RotationOverlap != 168*time.Hour || c.HTTP.ShutdownTimeout != 15*time.Second ||
		c.Node.DataDir != "entente-data" || c.Federation.AllowPrivateAddresses ||
		c.Federation.PeerMessagesPerSecond != 50 || c.Federation.PeerBurst != 200 ||
		c.Federation.PeerOpenInvitations != 100 || c.Federation.PeerConferences != 1000 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestLoadFileAndEnvironment(t *testing.T) {
	path := writeFile(t, minimal+`
http:
  listen: "127.0.0.1:9443"
log:
  format: text
`)
	c, err := Load(path, []string{
		"ENTENTE_LOG_LEVEL=debug",
		"ENTENTE_HTTP_LISTEN=127.0.0.1:9999", // the environment wins over the file
		"ENTENTE_FEDERATION_DID_CACHE_TTL=2m",
		"ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES=true",
		"UNRELATED=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.Name != "Ministry of Digital Affairs" || c.HTTP.Listen != "127.0.0.1:9999" ||
		c.Log.Format != "text" || c.Log.Level != "debug" || c.Federation.DIDCacheTTL != 2*time.Minute ||
		!c.Federation.AllowPrivateAddresses {
		t.Fatalf("unexpected config: %+v", c)
	}
	if got, want := c.DID(), "did:web:visio.ministry.example"; got != want {
		t.Fatalf("DID = %q, want %q", got, want)
	}
}

func TestEnvironmentOnly(t *testing.T) {
	c, err := Load("", []string{"ENTENTE_NODE_NAME=Agency", "ENTENTE_NODE_PUBLIC_URL=https://127.0.0.1:8442"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.DID(), "did:web:127.0.0.1%3A8442"; got != want {
		t.Fatalf("DID = %q, want %q", got, want)
	}
}

func TestLoadErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, file string
		env        []string
		want       string
	}{
		{"unknown top-level", minimal + "nodes: {}\n", nil, "nodes: unknown setting (line 5)"},
		{"unknown nested", minimal + "  publc_url: x\n", nil, "node.publc_url: unknown setting (line 5)"},
		{"duplicate key", minimal + "  name: again\n", nil, "node.name: set twice (line 5)"},
		{"section not a mapping", "node: 3\n", nil, "node: must be a mapping (line 1)"},
		{"list instead of value", minimal + "log:\n  level: [a]\n", nil, "log.level: must be a single value (line 6)"},
		{"bad duration in file", minimal + "http:\n  shutdown_timeout: soon\n", nil, `http.shutdown_timeout: not a duration such as 90s or 5m: "soon" (line 6)`},
		{"bad bool in file", minimal + "federation:\n  allow_private_addresses: sometimes\n", nil, `federation.allow_private_addresses: not a boolean: "sometimes" (line 6)`},
		{"missing name", "node:\n  public_url: https://a.example\n", nil, "node.name: required"},
		{"missing url", "node:\n  name: A\n", nil, "node.public_url: required"},
		{"http url", "node:\n  name: A\n  public_url: http://a.example\n", nil, "node.public_url:"},
		{"url with path", "node:\n  name: A\n  public_url: https://a.example/x\n", nil, "node.public_url:"},
		{"bad listen", minimal + "http:\n  listen: nowhere\n", nil, "http.listen: must be host:port"},
		{"cert without key", minimal + "http:\n  tls_cert: c.pem\n", nil, "http.tls_key: tls_cert and tls_key must be set together"},
		{"mysql url", minimal + "database:\n  url: mysql://x/y\n", nil, "database.url: must be a postgres:// URL"},
		{"key storage", minimal + "keys:\n  storage: hsm\n", nil, `keys.storage: must be "file" or "database", got "hsm"`},
		{"log format", minimal + "log:\n  format: xml\n", nil, `log.format: must be "json" or "text", got "xml"`},
		{"ttl too long", minimal + "federation:\n  did_cache_ttl: 24h\n", nil, "federation.did_cache_ttl: must be between 1s and 1h"},
		{"delivery lease too short", minimal, []string{"ENTENTE_FEDERATION_DELIVERY_LEASE=500ms"}, "federation.delivery_lease: must be between 1s and 5m, got 500ms"},
		{"peer rate zero", minimal + "federation:\n  peer_messages_per_second: 0\n", nil, "federation.peer_messages_per_second: must be between 1 and 100000, got 0"},
		{"peer invitations negative", minimal, []string{"ENTENTE_FEDERATION_PEER_OPEN_INVITATIONS=-1"}, "federation.peer_open_invitations: must be between 1 and 1000000, got -1"},
		{"env bool", minimal, []string{"ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES=maybe"}, `federation.allow_private_addresses: from ENTENTE_FEDERATION_ALLOW_PRIVATE_ADDRESSES: not a boolean: "maybe"`},
		{"env duration", minimal, []string{"ENTENTE_KEYS_ROTATION_OVERLAP=week"}, `keys.rotation_overlap: from ENTENTE_KEYS_ROTATION_OVERLAP: not a duration`},
		{"not yaml", "node: [\n", nil, "config file"},
		{"cluster without postgres", minimal + clusterOn, nil, "database.url: a PostgreSQL URL is required when cluster.nats_url is set"},
		{"cluster with file keys", minimal + clusterOn + "database:\n  url: postgres://db.example/entente\n", nil, `keys.storage: must be "database" when cluster.nats_url is set: every replica signs with the same keys, got "file"`},
		{"cluster without internal url", minimal + clusterOn + clusterStore, []string{"ENTENTE_CLUSTER_INTERNAL_URL="}, "cluster.internal_url: required when cluster.nats_url is set"},
		{"cluster internal url http", minimal + clusterOn + clusterStore, []string{"ENTENTE_CLUSTER_INTERNAL_URL=http://10.0.0.5:8443"}, `cluster.internal_url: must be an https URL with a host and no path, got "http://10.0.0.5:8443"`},
		{"cluster nats url", minimal + clusterOn + clusterStore, []string{"ENTENTE_CLUSTER_NATS_URL=127.0.0.1:4222"}, `cluster.nats_url: must be a nats:// or tls:// URL with a host, got "127.0.0.1:4222"`},
		{"cluster max participants", minimal, []string{"ENTENTE_CLUSTER_MAX_PARTICIPANTS=0"}, "cluster.max_participants: must be between 1 and 100000, got 0"},
		{"internal url without nats", minimal, []string{"ENTENTE_CLUSTER_INTERNAL_URL=https://10.0.0.5:8443"}, "cluster.nats_url: required with cluster.internal_url"},
		{"bridge without homeserver", minimal + "bridge:\n  enabled: true\n", nil, `bridge.homeserver_url: must be an http(s) URL with a host, got ""`},
		{"bridge without domain", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_HOMESERVER_DOMAIN="}, `bridge.homeserver_domain: must be the homeserver's server name, got ""`},
		{"bridge without registration", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_REGISTRATION="}, "bridge.registration: required when the bridge is enabled"},
		{"bridge listen", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_LISTEN=29333"}, `bridge.listen: must be host:port, got "29333"`},
		{"bridge bot localpart", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_BOT_LOCALPART=Bot"}, `bridge.bot_localpart: must be a Matrix localpart (a-z, 0-9, ._=-/), got "Bot"`},
		{"bridge bot in ghost namespace", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_BOT_LOCALPART=entente_bot"}, `bridge.bot_localpart: must not start with ghost_prefix "entente_"`},
		{"bridge openid url without server", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_OPENID_BASE_URL=https://matrix.example:8448"}, "bridge.openid_base_url: needs openid_server_name, the homeserver it belongs to"},
		{"focus without bridge", minimal, []string{"ENTENTE_BRIDGE_LIVEKIT_FOCUS=true"}, "bridge.livekit_focus: needs bridge.enabled: the focus maps Matrix rooms to conferences through the bridge"},
		{"focus without openid", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_LIVEKIT_FOCUS=true"}, "bridge.livekit_focus: needs bridge.openid_server_name: the focus checks Matrix OpenID tokens at that homeserver"},
		{"focus without livekit", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_LIVEKIT_FOCUS=true", "ENTENTE_BRIDGE_OPENID_SERVER_NAME=matrix.example"}, "bridge.livekit_focus: needs livekit.api_key: the focus mints LiveKit access tokens"},
		{"bridge openid url", minimal + bridgeOn, []string{"ENTENTE_BRIDGE_OPENID_SERVER_NAME=matrix.example", "ENTENTE_BRIDGE_OPENID_BASE_URL=matrix.example"}, `bridge.openid_base_url: must be an http(s) URL with a host, got "matrix.example"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.file), tc.env)
			if err == nil {
				t.Fatalf("Load succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans several lines: %q", err)
			}
		})
	}
}

func TestFieldErrorType(t *testing.T) {
	_, err := Load("", []string{"ENTENTE_NODE_NAME=A", "ENTENTE_NODE_PUBLIC_URL=https://a.example", "ENTENTE_LOG_LEVEL=loud"})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "log.level" {
		t.Fatalf("want FieldError for log.level, got %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Fatalf("want error naming the file, got %v", err)
	}
}

// The README's configuration reference is generated from the Config struct;
// this keeps the two from drifting apart.
func TestReadmeReferenceIsCurrent(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	b := strings.Index(s, ReferenceBegin)
	e := strings.Index(s, ReferenceEnd)
	if b < 0 || e < b {
		t.Fatalf("README.md lacks the reference markers %q … %q", ReferenceBegin, ReferenceEnd)
	}
	got := strings.TrimSpace(s[b+len(ReferenceBegin) : e])
	if want := strings.TrimSpace(Reference()); got != want {
		t.Fatalf("README.md configuration reference is stale; regenerate it with `go run ./cmd/entente config reference`.\n--- README\n%s\n--- code\n%s", got, want)
	}
}

// The example file must load as it is, once the required settings are given.
func TestExampleLoads(t *testing.T) {
	path := writeFile(t, Example())
	if _, err := Load(path, []string{"ENTENTE_NODE_NAME=A", "ENTENTE_NODE_PUBLIC_URL=https://a.example"}); err != nil {
		t.Fatalf("example does not load: %v\n%s", err, Example())
	}
}

const bridgeOn = `bridge:
  enabled: true
  homeserver_url: http://127.0.0.1:8008
  homeserver_domain: matrix.example
  registration: entente-registration.yaml
`

func TestBridgeSettings(t *testing.T) {
	c, err := Load(writeFile(t, minimal+bridgeOn), []string{
		"ENTENTE_BRIDGE_OPENID_SERVER_NAME=matrix.example",
		"ENTENTE_BRIDGE_OPENID_BASE_URL=https://matrix.example:8448",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Bridge{
		Enabled:          true,
		HomeserverURL:    "http://127.0.0.1:8008",
		HomeserverDomain: "matrix.example",
		Listen:           "127.0.0.1:29333",
		Registration:     "entente-registration.yaml",
		BotLocalpart:     "entente",
		GhostPrefix:      "entente_",
		OpenIDServerName: "matrix.example",
		OpenIDBaseURL:    "https://matrix.example:8448",
	}
	if c.Bridge != want {
		t.Fatalf("bridge = %+v, want %+v", c.Bridge, want)
	}
	// A disabled bridge is not checked: nodes without Matrix need no settings.
	if _, err := Load(writeFile(t, minimal+"bridge:\n  listen: nowhere\n"), nil); err != nil {
		t.Fatalf("disabled bridge with a bad listen address: %v", err)
	}
}

func TestClusterReplica(t *testing.T) {
	c, err := Load(writeFile(t, minimal+clusterOn+clusterStore), []string{"ENTENTE_CLUSTER_REPLICA_ID=replica-2"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Cluster.Enabled() || c.Cluster.NATSURL != "nats://nats.example:4222" || c.Cluster.ReplicaID != "replica-2" ||
		c.Cluster.InternalURL != "https://10.0.0.5:8443" || c.Cluster.MaxParticipants != 200 {
		t.Fatalf("cluster = %+v", c.Cluster)
	}
	if c, _ := Load(writeFile(t, minimal), nil); c.Cluster.Enabled() {
		t.Fatal("a node without cluster settings runs as replicas")
	}
}

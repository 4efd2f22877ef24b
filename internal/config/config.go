// Package config holds the one configuration struct of an Entente node, its
// defaults, its loading from a YAML file with environment overrides, and its
// validation. Every error names the setting that is wrong.
//
// config depends only on identity (to derive the node's DID). It must not
// open files other than the config file, nor start anything.
package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/entente-org/entente/identity"
)

// Config is the whole configuration of one node. Each field's `doc` tag is the
// text of the configuration reference in README.md; `default` is applied
// before the file and the environment are read.
type Config struct {
	Node       Node       `yaml:"node"`
	HTTP       HTTP       `yaml:"http"`
	Database   Database   `yaml:"database"`
	Keys       Keys       `yaml:"keys"`
	Federation Federation `yaml:"federation"`
	Media      Media      `yaml:"media"`
	Bridge     Bridge     `yaml:"bridge"`
	Auth       Auth       `yaml:"auth"`
	OIDC       OIDC       `yaml:"oidc"`
	LiveKit    LiveKit    `yaml:"livekit"`
	Cluster    Cluster    `yaml:"cluster"`
	Log        Log        `yaml:"log"`
}

// Node describes the institution this node serves.
type Node struct {
	Name      string `yaml:"name" doc:"Display name of the institution, shown to peers and users. Required."`
	PublicURL string `yaml:"public_url" doc:"HTTPS base URL at which peers and browsers reach this node, without a path. The node's did:web identifier is derived from it. Required."`
	DataDir   string `yaml:"data_dir" default:"entente-data" doc:"Directory for the node's keys, its self-signed certificate and the embedded SQLite database. Created with mode 0700."`
}

// HTTP configures the node's HTTPS server.
type HTTP struct {
	Listen          string        `yaml:"listen" default:":8443" doc:"Address the HTTPS server listens on (host:port)."`
	TLSCert         string        `yaml:"tls_cert" doc:"PEM certificate chain file. Empty: a self-signed certificate is made at first start in data_dir/tls (development only)."`
	TLSKey          string        `yaml:"tls_key" doc:"PEM private key file for tls_cert. Set both or neither."`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" default:"15s" doc:"How long in-flight requests may take to finish after SIGTERM."`
}

// Database selects the store backend.
type Database struct {
	URL string `yaml:"url" doc:"PostgreSQL URL (postgres://user:password@host:5432/db). Empty: embedded SQLite at data_dir/entente.db."`
}

// Keys configures where the node's signing keys live and how they rotate.
type Keys struct {
	Storage         string        `yaml:"storage" default:"file" doc:"Where the node's P-256 keys are kept: \"file\" (data_dir/keys.json, mode 0600) or \"database\"."`
	RotationOverlap time.Duration `yaml:"rotation_overlap" default:"168h" doc:"How long a rotated key stays valid for verification after \"entente keys rotate\"."`
}

// Federation configures how the node talks to peers.
type Federation struct {
	AllowPrivateAddresses bool          `yaml:"allow_private_addresses" default:"false" doc:"Allow peers on loopback, private and link-local addresses. Only for a local federation such as the demo; never in production."`
	CAFile                string        `yaml:"ca_file" doc:"Extra PEM CA certificates trusted for peers' TLS, in addition to the system roots."`
	DIDCacheTTL           time.Duration `yaml:"did_cache_ttl" default:"5m" doc:"How long a resolved peer DID document is used before it is fetched again. Keep it short so revoked keys stop being accepted. While a new one cannot be fetched, the last good document stays in use until it is 1 hour old."`
	PeerMessagesPerSecond int           `yaml:"peer_messages_per_second" default:"50" doc:"Signed requests per second each trusted peer may make, sustained; beyond it and its burst the node answers 429 with Retry-After before reading the body (spec/federation.md §3.4)."`
	PeerBurst             int           `yaml:"peer_burst" default:"200" doc:"Requests a trusted peer may make at once above peer_messages_per_second."`
	PeerOpenInvitations   int           `yaml:"peer_open_invitations" default:"100" doc:"Conferences of one peer that may invite this node at a time without an answer; a further invitation gets 429 until users answer."`
	PeerConferences       int           `yaml:"peer_conferences" default:"1000" doc:"Conferences, not ended and not declined, one peer may host with this node; a further invitation gets 429."`
	DeliveryLease         time.Duration `yaml:"delivery_lease" default:"15s" doc:"How long a replica's right to deliver the outbox to one peer lasts unrenewed (it is renewed every third of it while delivering). One replica at a time delivers to each peer, in order; when one dies, another takes its peers over after at most this long."`
}

// Media configures the node's SFU (package media).
type Media struct {
	UDPPort            int    `yaml:"udp_port" default:"0" doc:"One UDP port for the media of all clients and of the trunks this node hosts (open it in the firewall); trunks to other hosts use a port each. 0: an ephemeral port per connection."`
	PublicIPs          string `yaml:"public_ips" doc:"Comma-separated public IP addresses announced to browsers and peers when the node is behind 1:1 NAT."`
	STUNServers        string `yaml:"stun_servers" doc:"Comma-separated stun: URLs given to browsers for finding their own public address."`
	LoopbackCandidates bool   `yaml:"loopback_candidates" default:"false" doc:"Offer loopback addresses for media. Only for a node and its users on one machine, such as the demo."`
	TURNListen         string `yaml:"turn_listen" doc:"UDP address (host:port) of the embedded TURN server, for browsers behind firewalls that block direct UDP to the SFU. Empty: no TURN server. Relays only reach the SFU's own addresses."`
	TURNRelayIP        string `yaml:"turn_relay_ip" doc:"Public IP address of the TURN relays. Default: the first of public_ips. Required with turn_listen when public_ips is empty."`
}

// Bridge configures the Matrix appservice (package bridge).
type Bridge struct {
	Enabled          bool   `yaml:"enabled" default:"false" doc:"Run the Matrix appservice that mirrors conferences into Matrix rooms."`
	HomeserverURL    string `yaml:"homeserver_url" doc:"Client-server API base URL of the Matrix homeserver the appservice is registered with. Required when enabled."`
	HomeserverDomain string `yaml:"homeserver_domain" doc:"That homeserver's server name, the part after the colon in its user IDs. Required when enabled."`
	Listen           string `yaml:"listen" default:"127.0.0.1:29333" doc:"Address (host:port) the appservice HTTP listener binds; the homeserver pushes transactions there."`
	Registration     string `yaml:"registration" doc:"Path of the appservice registration YAML (as_token, hs_token), as written by \"entente bridge generate-registration\". Required when enabled."`
	BotLocalpart     string `yaml:"bot_localpart" default:"entente" doc:"Localpart of the bridge bot that creates and links portal rooms."`
	GhostPrefix      string `yaml:"ghost_prefix" default:"entente_" doc:"Localpart prefix of the ghost users standing for Entente participants."`
	OpenIDServerName string `yaml:"openid_server_name" doc:"Server name of the homeserver whose users may join conferences with a Matrix OpenID token. Empty: Matrix sign-in is off."`
	OpenIDBaseURL    string `yaml:"openid_base_url" doc:"Optional: base URL of that homeserver's federation API, where OpenID tokens are checked (GET <url>/_matrix/federation/v1/openid/userinfo). Empty: found by Matrix server discovery from openid_server_name (its /.well-known/matrix/server, then SRV records, then port 8448). Set it where discovery cannot work, such as a homeserver on plain HTTP: then it is usually homeserver_url."`
	WidgetOrigins    string `yaml:"widget_origins" doc:"Comma-separated origins (https://…) of the Matrix clients, such as Element, that may show the call as a room widget; the widget signs Matrix users in with OpenID. Empty: the client is never framed."`
	LiveKitFocus     bool   `yaml:"livekit_focus" default:"false" doc:"Serve Element Call's MatrixRTC focus (the token service of lk-jwt-service, at <public_url>/livekit/jwt) and name it in the ghosts' call memberships, so that Element Call users in a portal room join the conference's media. Needs enabled, openid_server_name and livekit.api_key."`
}

// Log configures structured logging.
type Log struct {
	Format string `yaml:"format" default:"json" doc:"\"json\" for production, \"text\" for development."`
	Level  string `yaml:"level" default:"info" doc:"One of debug, info, warn, error."`
}

// FieldError is a validation error that names the setting at fault.
type FieldError struct {
	Field string // dotted YAML path, e.g. "node.public_url"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// DID returns the node's did:web identifier, derived from node.public_url.
// It is only meaningful on a validated Config.
func (c *Config) DID() string {
	did, _ := identity.DIDFromBaseURL(c.Node.PublicURL)
	return did
}

// Validate checks every setting and returns the first error, naming its field.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Node.Name) == "" {
		return fieldErr("node.name", "required")
	}
	if len(c.Node.Name) > 200 {
		return fieldErr("node.name", "longer than 200 bytes")
	}
	if c.Node.PublicURL == "" {
		return fieldErr("node.public_url", "required (the https URL peers reach this node at)")
	}
	if _, err := identity.DIDFromBaseURL(c.Node.PublicURL); err != nil {
		return fieldErr("node.public_url", "%v", err)
	}
	if c.Node.DataDir == "" {
		return fieldErr("node.data_dir", "required")
	}
	if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
		return fieldErr("http.listen", "must be host:port, got %q", c.HTTP.Listen)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		return fieldErr("http.tls_key", "tls_cert and tls_key must be set together")
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		return fieldErr("http.shutdown_timeout", "must be positive")
	}
	if c.Database.URL != "" {
		u, err := url.Parse(c.Database.URL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			return fieldErr("database.url", "must be a postgres:// URL with a host")
		}
	}
	switch c.Keys.Storage {
	case "file", "database":
	default:
		return fieldErr("keys.storage", "must be \"file\" or \"database\", got %q", c.Keys.Storage)
	}
	if c.Keys.RotationOverlap <= 0 {
		return fieldErr("keys.rotation_overlap", "must be positive")
	}
	if c.Federation.DIDCacheTTL <= 0 || c.Federation.DIDCacheTTL > time.Hour {
		return fieldErr("federation.did_cache_ttl", "must be between 1s and 1h, got %s", c.Federation.DIDCacheTTL)
	}
	if c.Federation.DeliveryLease < time.Second || c.Federation.DeliveryLease > 5*time.Minute {
		return fieldErr("federation.delivery_lease", "must be between 1s and 5m, got %s", c.Federation.DeliveryLease)
	}
	for _, l := range []struct {
		field string
		v     int
		max   int
	}{
		{"federation.peer_messages_per_second", c.Federation.PeerMessagesPerSecond, 100_000},
		{"federation.peer_burst", c.Federation.PeerBurst, 1_000_000},
		{"federation.peer_open_invitations", c.Federation.PeerOpenInvitations, 1_000_000},
		{"federation.peer_conferences", c.Federation.PeerConferences, 1_000_000},
	} {
		if l.v < 1 || l.v > l.max {
			return fieldErr(l.field, "must be between 1 and %d, got %d", l.max, l.v)
		}
	}
	if c.Media.UDPPort < 0 || c.Media.UDPPort > 65535 {
		return fieldErr("media.udp_port", "must be a port number or 0, got %d", c.Media.UDPPort)
	}
	for _, ip := range splitList(c.Media.PublicIPs) {
		if net.ParseIP(ip) == nil {
			return fieldErr("media.public_ips", "%q is not an IP address", ip)
		}
	}
	if c.Media.TURNListen != "" {
		if _, port, err := net.SplitHostPort(c.Media.TURNListen); err != nil || port == "" {
			return fieldErr("media.turn_listen", "must be host:port, got %q", c.Media.TURNListen)
		}
		if c.Media.TURNRelay() == "" {
			return fieldErr("media.turn_relay_ip", "required with turn_listen when public_ips is empty")
		}
		if net.ParseIP(c.Media.TURNRelay()) == nil {
			return fieldErr("media.turn_relay_ip", "%q is not an IP address", c.Media.TURNRelay())
		}
	}
	for _, u := range splitList(c.Media.STUNServers) {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") {
			return fieldErr("media.stun_servers", "%q is not a stun: URL", u)
		}
	}
	if err := c.Bridge.validate(); err != nil {
		return err
	}
	if err := c.validateSignIn(); err != nil {
		return err
	}
	if c.Bridge.LiveKitFocus {
		switch {
		case !c.Bridge.Enabled:
			return fieldErr("bridge.livekit_focus", "needs bridge.enabled: the focus maps Matrix rooms to conferences through the bridge")
		case c.Bridge.OpenIDServerName == "":
			return fieldErr("bridge.livekit_focus", "needs bridge.openid_server_name: the focus checks Matrix OpenID tokens at that homeserver")
		case !c.LiveKit.Enabled():
			return fieldErr("bridge.livekit_focus", "needs livekit.api_key: the focus mints LiveKit access tokens")
		}
	}
	if err := c.LiveKit.validate(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return fieldErr("log.format", "must be \"json\" or \"text\", got %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "must be one of debug, info, warn, error; got %q", c.Log.Level)
	}
	return nil
}

func (b *Bridge) validate() error {
	if !b.Enabled {
		return nil
	}
	if !isHTTPURL(b.HomeserverURL) {
		return fieldErr("bridge.homeserver_url", "must be an http(s) URL with a host, got %q", b.HomeserverURL)
	}
	if strings.TrimSpace(b.HomeserverDomain) == "" || strings.ContainsAny(b.HomeserverDomain, "/@ ") {
		return fieldErr("bridge.homeserver_domain", "must be the homeserver's server name, got %q", b.HomeserverDomain)
	}
	if _, port, err := net.SplitHostPort(b.Listen); err != nil || port == "" {
		return fieldErr("bridge.listen", "must be host:port, got %q", b.Listen)
	}
	if b.Registration == "" {
		return fieldErr("bridge.registration", "required when the bridge is enabled")
	}
	if !matrixLocalpart.MatchString(b.BotLocalpart) {
		return fieldErr("bridge.bot_localpart", "must be a Matrix localpart (a-z, 0-9, ._=-/), got %q", b.BotLocalpart)
	}
	if !matrixLocalpart.MatchString(b.GhostPrefix) {
		return fieldErr("bridge.ghost_prefix", "must be a Matrix localpart prefix (a-z, 0-9, ._=-/), got %q", b.GhostPrefix)
	}
	if strings.HasPrefix(b.BotLocalpart, b.GhostPrefix) {
		return fieldErr("bridge.bot_localpart", "must not start with ghost_prefix %q", b.GhostPrefix)
	}
	for _, o := range splitList(b.WidgetOrigins) {
		if u, err := url.Parse(o); err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
			return fieldErr("bridge.widget_origins", "%q is not an https origin", o)
		}
	}
	if b.OpenIDServerName == "" && b.OpenIDBaseURL != "" {
		return fieldErr("bridge.openid_base_url", "needs openid_server_name, the homeserver it belongs to")
	}
	if b.OpenIDBaseURL != "" && !isHTTPURL(b.OpenIDBaseURL) {
		return fieldErr("bridge.openid_base_url", "must be an http(s) URL with a host, got %q", b.OpenIDBaseURL)
	}
	return nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// matrixLocalpart is the character set the Matrix spec allows in user
// localparts (appendix, "User Identifiers").
var matrixLocalpart = regexp.MustCompile(`^[a-z0-9._=/-]+$`)

// splitList splits a comma-separated setting, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// PublicIPList is media.public_ips as a list.
func (m Media) PublicIPList() []string { return splitList(m.PublicIPs) }

// STUNList is media.stun_servers as a list.
func (m Media) STUNList() []string { return splitList(m.STUNServers) }

// WidgetOriginList is bridge.widget_origins as a list.
func (b Bridge) WidgetOriginList() []string { return splitList(b.WidgetOrigins) }

// TURNRelay is the relay address of the embedded TURN server.
func (m Media) TURNRelay() string {
	if m.TURNRelayIP != "" {
		return m.TURNRelayIP
	}
	if ips := m.PublicIPList(); len(ips) > 0 {
		return ips[0]
	}
	return ""
}

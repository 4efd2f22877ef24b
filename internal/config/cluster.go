package config

import (
	"net/url"
	"strings"
)

// Cluster runs the node as several replicas (package internal/cluster,
// docs/replicas.md): they share PostgreSQL and the keys in it, and tell each
// other what they must through NATS with JetStream.
type Cluster struct {
	NATSURL         string `yaml:"nats_url" doc:"NATS server with JetStream (nats://host:4222) through which the replicas of this node coordinate. Empty: this process is the whole node (the default; SQLite allowed). Set: requires database.url (PostgreSQL) and keys.storage: database, and internal_url."`
	ReplicaID       string `yaml:"replica_id" doc:"Name of this replica, unique among the node's replicas. Empty: the machine's host name (a Kubernetes pod's name)."`
	InternalURL     string `yaml:"internal_url" doc:"HTTPS base URL at which the other replicas reach this one directly, not through the load balancer (e.g. https://10.0.0.5:8443). Its certificate must be trusted by the system roots or federation.ca_file. Required with nats_url."`
	MaxParticipants int    `yaml:"max_participants" default:"200" doc:"Participants this replica takes before new conferences are placed on replicas with more room."`
}

// Enabled reports whether the node runs as replicas.
func (c Cluster) Enabled() bool { return c.NATSURL != "" }

func (c *Config) validateCluster() error {
	cl := c.Cluster
	if cl.MaxParticipants < 1 || cl.MaxParticipants > 100_000 {
		return fieldErr("cluster.max_participants", "must be between 1 and 100000, got %d", cl.MaxParticipants)
	}
	if !cl.Enabled() {
		if cl.InternalURL != "" {
			return fieldErr("cluster.nats_url", "required with cluster.internal_url (replicas coordinate through NATS)")
		}
		return nil
	}
	u, err := url.Parse(cl.NATSURL)
	if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
		return fieldErr("cluster.nats_url", "must be a nats:// or tls:// URL with a host, got %q", cl.NATSURL)
	}
	if c.Database.URL == "" {
		return fieldErr("database.url", "a PostgreSQL URL is required when cluster.nats_url is set: replicas share one database (SQLite is for a single process)")
	}
	if c.Keys.Storage != "database" {
		return fieldErr("keys.storage", "must be \"database\" when cluster.nats_url is set: every replica signs with the same keys, got %q", c.Keys.Storage)
	}
	if cl.InternalURL == "" {
		return fieldErr("cluster.internal_url", "required when cluster.nats_url is set (the https URL the other replicas reach this one at)")
	}
	iu, err := url.Parse(cl.InternalURL)
	if err != nil || iu.Scheme != "https" || iu.Host == "" || (iu.Path != "" && iu.Path != "/") || iu.RawQuery != "" {
		return fieldErr("cluster.internal_url", "must be an https URL with a host and no path, got %q", cl.InternalURL)
	}
	if strings.ContainsAny(cl.ReplicaID, " /\t\n") || len(cl.ReplicaID) > 128 {
		return fieldErr("cluster.replica_id", "must be at most 128 characters without spaces or slashes, got %q", cl.ReplicaID)
	}
	return nil
}

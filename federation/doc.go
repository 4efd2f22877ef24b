// Package federation owns the relations between institutions: the trust list,
// signed server-to-server messages (HTTP Signatures inside a strict policy
// layer, and signed envelopes), conferences that span organisations with
// their hash-chained event log, and the durable outbox that delivers messages.
//
// It builds on identity (keys, DID resolution, the SSRF-safe HTTP client) and
// on store (persistence). It must not reach into media, bridge or web: media
// asks federation's questions ("may this user publish here?") through a small
// interface that cmd wires up. What federation asks of the node that embeds
// it is in boundary.go; its refusals are internal/httpapi errors, the one
// place that maps them to HTTP statuses.
package federation

// Package mediabench runs synthetic media clients against Entente nodes, to
// measure the SFU under load: each client speaks the media signalling of
// spec/client-api.md §5 over a real WebSocket and real pion peer connections,
// publishes synthetic Opus and simulcast VP8, subscribes to the other
// participants' tracks and records loss, latency and the time to the first
// decodable frame.
//
// mediabench knows nothing of how the nodes were started: it is given the
// signalling URL and bearer token of each participant. It must not import
// media, federation or internal/node, so that what it measures is only what
// a client can see.
package mediabench

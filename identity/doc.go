// Package identity owns who a node is: its did:web identifier, its P-256 keys
// (made with indigo's atproto/atcrypto), the DID document it publishes, and the
// resolution of peers' DID documents over HTTPS.
//
// It also owns the one HTTP client factory with the SSRF guard
// (NewHTTPClient) that every outbound request to a peer goes through.
//
// identity depends on nothing of Entente's: it must not import store,
// federation, media, bridge or web. Persistence of keys is reached through the
// small KeyStorage interface, which the caller provides.
package identity

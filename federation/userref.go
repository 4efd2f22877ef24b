package federation

import (
	"fmt"
	"strings"

	"github.com/entente-org/entente/internal/localuser"
)

// maxDIDLength bounds the DIDs we accept; did:web DIDs are host names with
// an optional port and path, far below this.
const maxDIDLength = 2048

// UserRef names a user of a node: "alice@did:web:ministry.example" (spec §4.2).
func UserRef(local, did string) string { return local + "@" + did }

// MatrixGuestPrefix starts the localparts a node gives the Matrix users it
// signs in with OpenID (spec §4.2): they are guests, who wait in the lobby
// of their own node's conferences like users of other organisations.
const MatrixGuestPrefix = "mx."

// IsMatrixGuest reports whether a localpart is a Matrix guest's.
func IsMatrixGuest(local string) bool { return strings.HasPrefix(local, MatrixGuestPrefix) }

// GuestPrefix starts the localparts of the guests a host lets in through a
// guest link (spec §6.1): no account of any node may take it, and only the
// host joins such users, always marked as guests.
const GuestPrefix = "guest."

// GuestLabel ends the display name of every guest who came through a guest
// link, as the host signs it: "Zoé Durand (guest, unverified)".
const GuestLabel = localuser.GuestLabel

// IsLinkGuest reports whether a localpart is a guest's who came through a
// guest link.
func IsLinkGuest(local string) bool { return strings.HasPrefix(local, GuestPrefix) }

// ParseUserRef splits a user reference into its localpart and node DID.
func ParseUserRef(s string) (local, did string, err error) {
	local, did, ok := strings.Cut(s, "@")
	if !ok {
		return "", "", fmt.Errorf("user reference %q has no '@'", s)
	}
	if !ValidLocalpart(local) {
		return "", "", fmt.Errorf("user reference %q: localpart must be 1 to 64 of [a-z0-9._-]", s)
	}
	if !validDID(did) {
		return "", "", fmt.Errorf("user reference %q: %q is not a DID", s, did)
	}
	return local, did, nil
}

// ValidLocalpart reports whether s is a localpart: [a-z0-9._-]{1,64}.
func ValidLocalpart(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validDID follows the DID syntax of DID Core §3.1: "did:", a method of
// [a-z0-9], ":", and a method-specific id of [A-Za-z0-9._:%-] not ending
// in ':'. It refuses '#', '/', '?', '@' and spaces, which would make a DID
// ambiguous inside key ids and user references.
func validDID(s string) bool {
	rest, ok := strings.CutPrefix(s, "did:")
	if !ok || len(s) > maxDIDLength {
		return false
	}
	method, id, ok := strings.Cut(rest, ":")
	if !ok || method == "" || id == "" || strings.HasSuffix(id, ":") {
		return false
	}
	for i := 0; i < len(method); i++ {
		if c := method[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '%' || c == '-') {
			return false
		}
	}
	return true
}

// cutKeyID splits a verification method id "did#fragment".
func cutKeyID(keyID string) (did, fragment string, ok bool) {
	did, fragment, ok = strings.Cut(keyID, "#")
	if !ok || !validDID(did) || !validFragment(fragment) {
		return "", "", false
	}
	return did, fragment, true
}

// validFragment accepts the key fragments identity publishes ("k-…") and
// any other short token of [A-Za-z0-9._-].
func validFragment(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

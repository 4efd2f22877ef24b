// Package localuser holds the one type every part of the node uses for a
// signed-in user of this node: sign-in (internal/accounts) makes it,
// federation acts on its behalf, and the bridge's Matrix guests are one too.
// Federation never sees how the user signed in, so local tokens can be
// replaced by OpenID Connect without touching federation.
//
// It imports nothing of Entente's.
package localuser

// User is who makes a client API request, as established by the node's
// login mechanism. The zero User is the node itself, acting through its
// administrators.
type User struct {
	ID          string // local part
	DisplayName string
	Admin       bool
	// MatrixGuest is a Matrix user the node let in with an OpenID token: it
	// takes part as a guest of this node's organisation.
	MatrixGuest bool
	// Unit is the user's organisational unit as the node's OpenID provider
	// gives it; its join events carry it (spec/federation.md §7.1).
	Unit string
}

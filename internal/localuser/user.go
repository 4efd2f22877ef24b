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
	// GuestOf is, for a guest who came through a guest link, the one
	// conference hosted here that they may see (spec/client-api.md §7).
	GuestOf string
}

// GuestLabel ends the display name of every guest who came through a guest
// link, wherever it is shown (spec/federation.md §6.1).
const GuestLabel = " (guest, unverified)"

// IsGuest reports whether u is a guest of either kind, who may never
// moderate, invite or create.
func (u User) IsGuest() bool { return u.MatrixGuest || u.GuestOf != "" }

// ShownName is the name others see for u, in joins, signals, tiles and
// trunks alike: a guest of a link is labelled "(guest, unverified)" (spec
// §6.1).
func (u User) ShownName() string {
	if u.GuestOf != "" {
		return u.DisplayName + GuestLabel
	}
	return u.DisplayName
}

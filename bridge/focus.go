package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/entente-org/entente/store"
)

// What Element Call's MatrixRTC focus asks of the bridge (spec/client-api.md
// §8.8): who a Matrix OpenID token belongs to, and which conference a
// Matrix room is the portal of. Whether the user is in that room is
// CheckGuest's question, asked of the homeserver at each request.

// ErrOpenIDRefused is a Matrix OpenID token the homeserver does not vouch
// for (unknown, expired or of another server).
var ErrOpenIDRefused = errOpenIDRefused

// ErrNoPortal is a Matrix room that is not the portal of a conference.
var ErrNoPortal = errors.New("not the Matrix room of a conference of this node")

// VerifyOpenID returns the Matrix user a token from
// /_matrix/client/v3/user/{userId}/openid/request_token belongs to, as
// the homeserver of openid_server_name says. It wraps ErrOpenIDRefused
// when the homeserver does not vouch for the token or serverName is not
// that homeserver; another error means it could not be asked.
func (b *Bridge) VerifyOpenID(ctx context.Context, serverName, token string) (string, error) {
	if b.openIDFed == nil {
		return "", fmt.Errorf("%w: Matrix OpenID sign-in is not enabled on this node", ErrOpenIDRefused)
	}
	if serverName != b.o.OpenIDServerName {
		return "", fmt.Errorf("%w: this node accepts Matrix users of %q only, not of %q", ErrOpenIDRefused, b.o.OpenIDServerName, serverName)
	}
	user, err := b.verifyOpenID(ctx, token)
	if err != nil {
		return "", err
	}
	return user.String(), nil
}

// PortalConference returns the conference whose portal is the Matrix room
// roomID, or an error wrapping ErrNoPortal.
func (b *Bridge) PortalConference(ctx context.Context, roomID string) (string, error) {
	p, err := b.o.Store.GetBridgePortalByRoom(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("room %s: %w", roomID, ErrNoPortal)
	}
	if err != nil {
		return "", fmt.Errorf("bridge: portal of room %s: %w", roomID, err)
	}
	return p.Conference, nil
}

// CallIdentity is the LiveKit identity under which Element Call expects
// the participant userRef of Entente: its ghost's Matrix ID and the device
// of the ghost's call membership, "@ghost:server:ENTENTE", as Element Call
// pairs a LiveKit participant with a membership by "<user>:<device>".
func (b *Bridge) CallIdentity(userRef string) string {
	return b.ghostUser(userRef).String() + ":" + ghostDevice
}

// HasPortal reports whether the conference has a Matrix room.
func (b *Bridge) HasPortal(ctx context.Context, conference string) (bool, error) {
	_, err := b.o.Store.GetBridgePortal(ctx, conference)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// MatrixGuestPrefix starts the local names of Matrix users who signed in
// with an OpenID token (spec/client-api.md §6). It is reserved: AddUser
// refuses it.
const MatrixGuestPrefix = federation.MatrixGuestPrefix

// IsMatrixGuest reports whether a local user name is a Matrix guest's.
func IsMatrixGuest(id string) bool { return federation.IsMatrixGuest(id) }

// IssueMatrixGuest makes (or finds) the local guest account of a Matrix user
// whose identity the homeserver vouched for, and issues it a token. The
// guest's display name is the Matrix ID, so others see who it is.
func IssueMatrixGuest(ctx context.Context, s store.Store, matrixUser string, now time.Time) (string, error) {
	u, err := MatrixGuest(ctx, s, matrixUser, now)
	if err != nil {
		return "", err
	}
	return IssueToken(ctx, s, u.ID, LoginTokenTTL, now)
}

// MatrixGuest makes (or finds) the local guest account of a Matrix user
// whose identity the homeserver vouched for, and returns it as the user
// federation acts for.
func MatrixGuest(ctx context.Context, s store.Store, matrixUser string, now time.Time) (localuser.User, error) {
	sum := sha256.Sum256([]byte(matrixUser))
	id := MatrixGuestPrefix + hex.EncodeToString(sum[:8])
	u := store.User{ID: id, DisplayName: matrixUser, CreatedAt: now.UTC()}
	if old, err := s.GetUser(ctx, id); err == nil {
		u.CreatedAt = old.CreatedAt
	}
	if err := s.PutUser(ctx, u); err != nil {
		return localuser.User{}, err
	}
	return localuser.User{ID: id, DisplayName: matrixUser, MatrixGuest: true}, nil
}

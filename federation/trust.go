package federation

import (
	"context"
	"errors"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// TrustList is the list of peer institutions this node trusts (spec §2).
type TrustList struct{ Store store.Store }

// Add validates a trust entry and stores it, replacing any entry of the
// same DID.
func (t TrustList) Add(ctx context.Context, p store.Peer) error {
	if err := ValidatePeer(p); err != nil {
		return err
	}
	return t.Store.PutPeer(ctx, p)
}

// ValidatePeer checks a trust entry before it is stored.
func ValidatePeer(p store.Peer) error {
	if _, err := identity.DocumentURL(p.DID); err != nil {
		return httpapi.BadRequest("did: %v", err)
	}
	if !validText(p.Name, 200) {
		return httpapi.BadRequest("name: must be 1 to 200 bytes without surrounding spaces")
	}
	if p.KeyPin != "" {
		key, err := atcrypto.ParsePublicMultibase(p.KeyPin)
		if err != nil {
			return httpapi.BadRequest("key_pin: not a multibase public key: %v", err)
		}
		if _, ok := key.(*atcrypto.PublicKeyP256); !ok {
			return httpapi.BadRequest("key_pin: not a P-256 key")
		}
	}
	return nil
}

// Remove deletes a trust entry.
func (t TrustList) Remove(ctx context.Context, did string) error {
	err := t.Store.DeletePeer(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.NotFound("%s is not on the trust list", did)
	}
	return err
}

// Get returns one trust entry.
func (t TrustList) Get(ctx context.Context, did string) (store.Peer, error) {
	p, err := t.Store.GetPeer(ctx, did)
	if errors.Is(err, store.ErrNotFound) {
		return p, httpapi.NotFound("%s is not on the trust list", did)
	}
	return p, err
}

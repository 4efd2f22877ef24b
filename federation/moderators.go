package federation

import (
	"context"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// Moderates reports whether u moderates a conference hosted here (spec
// §6.1: its creator or one of the create event's moderators). Guests never
// do (spec/client-api.md §6, §7).
func (s *Service) Moderates(ctx context.Context, u localuser.User, conference string) (bool, error) {
	if u.IsGuest() || u.ID == "" {
		return false, nil
	}
	var ok bool
	err := s.store.InTx(ctx, func(tx store.Tx) error {
		st, err := loadState(ctx, tx, conference)
		if err != nil {
			return err
		}
		if !st.exists() {
			return httpapi.NotFound("unknown conference %s", conference)
		}
		ok = st.conf.Host == s.did && st.moderators[s.userRef(u)]
		return nil
	})
	return ok, err
}

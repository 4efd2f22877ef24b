package node

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
)

// guestKey carries a guest through the guest's own mux.
type guestKey struct{}

// guestGate keeps guests to the conferences they were let into: Matrix
// guests (spec/client-api.md §6) to those whose portal room they are joined
// to, as the homeserver says at the moment of each request, and guests of a
// guest link (§7) to the link's one conference. They may read those
// conferences, join (through the lobby), chat and leave, and nothing else.
// Everyone else goes straight to next, which is handed the same
// authentication's outcome (accounts.Authenticator.Once) and reports its
// own errors.
func (n *Node) guestGate(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/me", next)
	mux.HandleFunc("GET /api/v1/conferences", n.guestConferences)
	for _, p := range []string{
		"GET /api/v1/conferences/{id}",
		"GET /api/v1/conferences/{id}/participants",
		"GET /api/v1/conferences/{id}/events",
		"GET /api/v1/conferences/{id}/media",
		"POST /api/v1/conferences/{id}/join",
		"POST /api/v1/conferences/{id}/signals",
	} {
		mux.Handle(p, n.guestInScope(next, false))
	}
	mux.Handle("POST /api/v1/conferences/{id}/leave", n.guestInScope(next, true))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if u := guestOf(r); u.GuestOf != "" {
			httpapi.WriteError(w, httpapi.Forbidden(
				"a guest may only see, join, chat in and leave conference %s", u.GuestOf))
			return
		}
		httpapi.WriteError(w, httpapi.Forbidden(
			"a Matrix guest may only see, join, chat in and leave the conferences whose Matrix room they are in"))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, u, err := n.accounts.Once(r)
		if err != nil || !u.IsGuest() {
			next.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), guestKey{}, u)))
	})
}

func guestOf(r *http.Request) localuser.User {
	u, _ := r.Context().Value(guestKey{}).(localuser.User)
	return u
}

// guestInScope lets the request through when the conference is the guest's:
// the one of their guest link, or one whose portal room a Matrix guest is
// joined to now. With stillIn, a guest who is a participant may also go on
// (to leave a call after leaving the room).
func (n *Node) guestInScope(next http.Handler, stillIn bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, conference := guestOf(r), r.PathValue("id")
		err := n.checkGuest(r.Context(), u, conference)
		if err != nil && stillIn && n.isParticipant(r.Context(), u, conference) {
			err = nil
		}
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkGuest says whether the conference is the guest's: for a guest of a
// link, the link's; for a Matrix guest, one whose portal room the homeserver
// says they are in.
func (n *Node) checkGuest(ctx context.Context, u localuser.User, conference string) error {
	if u.GuestOf != "" {
		if conference != u.GuestOf {
			return httpapi.Forbidden("a guest sees only conference %s", u.GuestOf)
		}
		return nil
	}
	matrixUser := strings.TrimSpace(u.DisplayName)
	if n.bridge == nil {
		return httpapi.Forbidden("this node runs no Matrix bridge: Matrix guests may not join its conferences")
	}
	err := n.bridge.CheckGuest(ctx, conference, matrixUser)
	switch {
	case errors.Is(err, bridge.ErrNotInPortal):
		return httpapi.Forbidden("%s is not in the Matrix room of conference %s", matrixUser, conference)
	case err != nil:
		n.log.Warn("Matrix guest: portal room not checked", "conference", conference, "user", matrixUser, "err", err)
		return &httpapi.Error{Status: http.StatusBadGateway, Code: "internal",
			Message: "the Matrix homeserver could not be asked whether you are in the conference's room"}
	}
	return nil
}

func (n *Node) isParticipant(ctx context.Context, u localuser.User, conference string) bool {
	roster, err := n.fed.LocalRoster(ctx, conference)
	if err != nil {
		return false
	}
	ref := federation.UserRef(u.ID, n.did)
	return slices.ContainsFunc(slices.Concat(roster.Participants, roster.Lobby),
		func(p federation.RosterMember) bool { return p.User == ref })
}

// guestConferences lists the guest's conferences (the one of their link, or
// those whose portal room a Matrix guest is in), newest first, as
// GET /conferences shows them.
func (n *Node) guestConferences(w http.ResponseWriter, r *http.Request) {
	u := guestOf(r)
	var ids []string
	switch {
	case u.GuestOf != "": // a guest of a link sees the link's conference
		ids = []string{u.GuestOf}
	case n.bridge != nil: // a Matrix guest sees those of their portal rooms
		var err error
		if ids, err = n.bridge.GuestConferences(r.Context(), strings.TrimSpace(u.DisplayName)); err != nil {
			n.log.Warn("Matrix guest: portal rooms not checked", "user", u.DisplayName, "err", err)
			httpapi.WriteError(w, &httpapi.Error{Status: http.StatusBadGateway, Code: "internal",
				Message: "the Matrix homeserver could not be asked which rooms you are in"})
			return
		}
	}
	out := []federation.ConferenceView{}
	for _, id := range ids {
		v, err := n.fed.ConferenceDetail(r.Context(), id)
		if err != nil {
			continue // a portal of a conference this node forgot
		}
		v.Nodes, v.Participants, v.Waiting = nil, nil, nil
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b federation.ConferenceView) int { return b.CreatedAt.Compare(a.CreatedAt) })
	writeJSON(w, http.StatusOK, out)
}

package node

import (
	"errors"
	"net/http"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// GuestLinkPath is the client path a guest link opens: the link itself
// follows in the fragment, which browsers never send to a server.
const GuestLinkPath = "/app/guest"

// guestLinkView is a guest link as the client API shows it
// (spec/client-api.md §7). Link and URL are given only when it is made.
type guestLinkView struct {
	ID         string    `json:"id"`
	Conference string    `json:"conference"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	MaxGuests  int       `json:"max_guests"`
	Guests     int       `json:"guests"`
	Revoked    bool      `json:"revoked"`
	Link       string    `json:"link,omitempty"`
	URL        string    `json:"url,omitempty"`
}

func linkView(l store.GuestLink) guestLinkView {
	return guestLinkView{ID: l.ID, Conference: l.Conference, CreatedBy: l.CreatedBy, CreatedAt: l.CreatedAt,
		ExpiresAt: l.ExpiresAt, MaxGuests: l.MaxGuests, Guests: l.Guests, Revoked: l.Revoked}
}

// moderatorOf authenticates a request about the guest links of conference
// {id}: its user must moderate that conference, hosted here and not ended.
func (n *Node) moderatorOf(w http.ResponseWriter, r *http.Request) (localuser.User, string, bool) {
	u, err := n.accounts.Authenticate(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return u, "", false
	}
	id := r.PathValue("id")
	conf, err := n.store.GetConference(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		err = httpapi.NotFound("unknown conference %s", id)
	} else if err == nil && conf.Host != n.did {
		err = httpapi.Forbidden("conference %s is hosted by %s: only its host makes guest links", id, conf.Host)
	} else if err == nil && conf.Ended {
		err = httpapi.Gone("conference %s has ended", id)
	}
	if err != nil {
		httpapi.WriteError(w, err)
		return u, "", false
	}
	ok, err := n.fed.Moderates(r.Context(), u, id)
	if err == nil && !ok {
		err = httpapi.Forbidden("%s is not a moderator of %s", u.ID, id)
	}
	if err != nil {
		httpapi.WriteError(w, err)
		return u, "", false
	}
	return u, id, true
}

// serveNewGuestLink is POST /conferences/{id}/guest-links.
func (n *Node) serveNewGuestLink(w http.ResponseWriter, r *http.Request) {
	u, id, ok := n.moderatorOf(w, r)
	if !ok {
		return
	}
	var req struct {
		ExpiresIn int64 `json:"expires_in"`
		MaxGuests int   `json:"max_guests"`
	}
	if !httpapi.ReadJSON(w, r, &req) {
		return
	}
	l, link, err := accounts.NewGuestLink(r.Context(), n.store, id, federation.UserRef(u.ID, n.did),
		time.Duration(req.ExpiresIn)*time.Second, req.MaxGuests, n.now())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	n.log.Info("guest link made", "conference", id, "user", u.ID, "link", l.ID, "expires_at", l.ExpiresAt)
	v := linkView(l)
	v.Link, v.URL = link, n.cfg.Node.PublicURL+GuestLinkPath+"#"+link
	writeJSON(w, http.StatusCreated, v)
}

// serveGuestLinks is GET /conferences/{id}/guest-links.
func (n *Node) serveGuestLinks(w http.ResponseWriter, r *http.Request) {
	_, id, ok := n.moderatorOf(w, r)
	if !ok {
		return
	}
	ls, err := n.store.ListGuestLinks(r.Context(), id)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	out := []guestLinkView{}
	for _, l := range ls {
		out = append(out, linkView(l))
	}
	writeJSON(w, http.StatusOK, out)
}

// serveRevokeGuestLink is DELETE /conferences/{id}/guest-links/{link}.
func (n *Node) serveRevokeGuestLink(w http.ResponseWriter, r *http.Request) {
	u, id, ok := n.moderatorOf(w, r)
	if !ok {
		return
	}
	l, err := n.store.GetGuestLink(r.Context(), r.PathValue("link"))
	if errors.Is(err, store.ErrNotFound) || err == nil && l.Conference != id {
		err = httpapi.NotFound("conference %s has no guest link %s", id, r.PathValue("link"))
	}
	if err == nil {
		err = n.store.RevokeGuestLink(r.Context(), l.ID)
	}
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	n.log.Info("guest link revoked", "conference", id, "user", u.ID, "link", l.ID)
	l.Revoked = true
	writeJSON(w, http.StatusOK, linkView(l))
}

// redeemGuestLink serves POST /guests: anyone holding a valid link becomes
// a guest of its conference, with a token valid for that conference only.
// One address may try at most 30 times within 10 minutes.
func (n *Node) redeemGuestLink(limit *accounts.GuestLimiter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !limit.Allow(r) {
			httpapi.WriteError(w, httpapi.TooManyRequests(10*time.Minute,
				"too many guest links tried from your address: wait a few minutes"))
			return
		}
		n.serveRedeemGuestLink(w, r)
	}
}

func (n *Node) serveRedeemGuestLink(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Link        string `json:"link"`
		DisplayName string `json:"display_name"`
	}
	if !httpapi.ReadJSON(w, r, &req) {
		return
	}
	g, token, err := accounts.RedeemGuestLink(r.Context(), n.store, req.Link, req.DisplayName, n.now())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	n.log.Info("guest let in through a link", "conference", g.Conference, "user", g.UserID, "link", g.LinkID)
	writeJSON(w, http.StatusCreated, map[string]any{
		"token": token, "user": federation.UserRef(g.UserID, n.did), "conference": g.Conference,
		"expires_at": n.now().Add(accounts.GuestTokenTTL).UTC(),
	})
}

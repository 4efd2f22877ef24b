package federation

import (
	"net/http"
	"time"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// AdminAPI serves the admin API (spec/client-api.md, "Admin API"): the trust
// list and the node's conferences. Only admin users may call it. Mount it
// with the prefix stripped, at "/admin/v1/".
func (s *Service) AdminAPI(auth UserAuth) http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn userHandler) { mux.HandleFunc(pattern, authed(auth, true, fn)) }
	trust := TrustList{Store: s.store}
	h("GET /peers", func(w http.ResponseWriter, r *http.Request, _ localuser.User) {
		peers, err := s.store.ListPeers(r.Context())
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		out := []PeerView{}
		for _, p := range peers {
			out = append(out, peerView(p))
		}
		writeJSON(w, http.StatusOK, out)
	})
	h("GET /peers/{did}", func(w http.ResponseWriter, r *http.Request, _ localuser.User) {
		p, err := trust.Get(r.Context(), r.PathValue("did"))
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, peerView(p))
	})
	h("POST /peers", func(w http.ResponseWriter, r *http.Request, _ localuser.User) {
		var v PeerView
		if !httpapi.ReadJSON(w, r, &v) {
			return
		}
		p := store.Peer{DID: v.DID, Name: v.Name, KeyPin: v.KeyPin, MayInvite: v.MayInvite, MayRelayMedia: v.MayRelayMedia, AddedAt: s.now().UTC()}
		if err := trust.Add(r.Context(), p); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		s.log.Info("peer trusted", "peer", p.DID, "may_invite", p.MayInvite, "may_relay_media", p.MayRelayMedia)
		writeJSON(w, http.StatusCreated, peerView(p))
	})
	h("DELETE /peers/{did}", func(w http.ResponseWriter, r *http.Request, _ localuser.User) {
		if err := trust.Remove(r.Context(), r.PathValue("did")); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		s.log.Info("peer removed from trust list", "peer", r.PathValue("did"))
		w.WriteHeader(http.StatusNoContent)
	})
	h("GET /conferences", s.apiListConferences)
	h("GET /conferences/{id}", s.apiGetConference)
	h("GET /conferences/{id}/audit", s.apiEvents)
	// The node itself ends a conference it hosts, as its administration.
	h("POST /conferences/{id}/end", func(w http.ResponseWriter, r *http.Request, _ localuser.User) {
		seq, err := s.Moderate(r.Context(), localuser.User{}, r.PathValue("id"), TypeEnd, "")
		writeAction(w, seq, "", err)
	})
	return mux
}

// PeerView is a trust entry as the admin API shows and takes it.
type PeerView struct {
	DID           string    `json:"did"`
	Name          string    `json:"name"`
	KeyPin        string    `json:"key_pin"`
	MayInvite     bool      `json:"may_invite"`
	MayRelayMedia bool      `json:"may_relay_media"`
	AddedAt       time.Time `json:"added_at"`
}

func peerView(p store.Peer) PeerView {
	return PeerView{DID: p.DID, Name: p.Name, KeyPin: p.KeyPin, MayInvite: p.MayInvite, MayRelayMedia: p.MayRelayMedia, AddedAt: p.AddedAt}
}

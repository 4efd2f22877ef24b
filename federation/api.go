package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// ClientAPI serves the client API of spec/client-api.md. Mount it with the
// prefix stripped, at "/api/v1/".
func (s *Service) ClientAPI(auth UserAuth) http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn userHandler) { mux.HandleFunc(pattern, authed(auth, false, fn)) }
	h("GET /me", s.apiMe)
	h("GET /peers", s.apiPeers)
	h("GET /conferences", s.apiListConferences)
	h("POST /conferences", s.apiCreateConference)
	h("GET /conferences/{id}", s.apiGetConference)
	h("GET /conferences/{id}/participants", s.apiParticipants)
	h("GET /conferences/{id}/events", s.apiEvents)
	h("POST /conferences/{id}/invitations", s.apiInvite)
	h("POST /conferences/{id}/join", s.apiJoin)
	h("POST /conferences/{id}/leave", s.apiLeave)
	h("POST /conferences/{id}/remove", s.apiTarget(TypeRemove))
	h("POST /conferences/{id}/admit", s.apiTarget(TypeAdmit))
	h("POST /conferences/{id}/deny", s.apiTarget(TypeDeny))
	h("POST /conferences/{id}/lobby", s.apiLobby)
	h("POST /conferences/{id}/lock", s.apiModerate(TypeLock))
	h("POST /conferences/{id}/unlock", s.apiModerate(TypeUnlock))
	h("POST /conferences/{id}/end", s.apiModerate(TypeEnd))
	h("POST /conferences/{id}/signals", s.apiSignal)
	h("GET /invitations", s.apiInvitations)
	h("POST /invitations/{id}/accept", s.apiAnswer(true))
	h("POST /invitations/{id}/decline", s.apiAnswer(false))
	return mux
}

// userHandler is an API handler that knows who calls it.
type userHandler func(w http.ResponseWriter, r *http.Request, u localuser.User)

// authed establishes the calling user before fn, and with admin requires an
// administrator of this node.
func authed(auth UserAuth, admin bool, fn userHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := auth.Authenticate(r)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if admin && !u.Admin {
			httpapi.WriteError(w, httpapi.Forbidden("%s is not an administrator of this node", u.ID))
			return
		}
		fn(w, r, u)
	}
}

// ConferenceView is a conference as the client API shows it.
type ConferenceView struct {
	ID           string            `json:"id"`
	Host         string            `json:"host"`
	Hosted       bool              `json:"hosted"`
	Title        string            `json:"title"`
	CreatedBy    string            `json:"created_by"`
	CreatedAt    time.Time         `json:"created_at"`
	Locked       bool              `json:"locked"`
	Lobby        bool              `json:"lobby"`
	Ended        bool              `json:"ended"`
	Head         Head              `json:"head"`
	Nodes        []NodeView        `json:"nodes,omitempty"`
	Participants []ParticipantView `json:"participants,omitempty"`
	Waiting      []ParticipantView `json:"waiting,omitempty"`
}

// NodeView is a node's part in a conference.
type NodeView struct {
	Node  string   `json:"node"`
	State string   `json:"state"`
	Users []string `json:"users"`
}

func (s *Service) view(c store.Conference) ConferenceView {
	return ConferenceView{
		ID: c.ID, Host: c.Host, Hosted: c.Host == s.did, Title: c.Title, CreatedBy: c.CreatedBy,
		CreatedAt: c.CreatedAt, Locked: c.Locked, Lobby: c.Lobby, Ended: c.Ended, Head: Head{c.HeadSeq, c.HeadHash},
	}
}

func (s *Service) apiMe(w http.ResponseWriter, r *http.Request, u localuser.User) {
	me := map[string]any{
		"user": s.userRef(u), "id": u.ID, "display_name": u.DisplayName, "admin": u.Admin,
		"node": map[string]string{"did": s.did, "name": s.name},
	}
	if u.Unit != "" {
		me["unit"] = u.Unit
	}
	if u.GuestOf != "" {
		me["guest_of"] = u.GuestOf // the one conference a guest sees
	}
	writeJSON(w, http.StatusOK, me)
}

func (s *Service) apiPeers(w http.ResponseWriter, r *http.Request, _ localuser.User) {
	peers, err := s.store.ListPeers(r.Context())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	out := []map[string]string{}
	for _, p := range peers {
		out = append(out, map[string]string{"did": p.DID, "name": p.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) apiListConferences(w http.ResponseWriter, r *http.Request, _ localuser.User) {
	confs, err := s.store.ListConferences(r.Context())
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	out := []ConferenceView{}
	for _, c := range confs {
		out = append(out, s.view(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Service) apiCreateConference(w http.ResponseWriter, r *http.Request, u localuser.User) {
	var req CreateContent
	if !httpapi.ReadJSON(w, r, &req) {
		return
	}
	c, err := s.Create(r.Context(), u, req)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.view(c))
}

// ConferenceDetail is the conference with its nodes and participants, as
// this node's log or replica holds them.
func (s *Service) ConferenceDetail(ctx context.Context, id string) (ConferenceView, error) {
	c, err := s.store.GetConference(ctx, id)
	if err != nil {
		return ConferenceView{}, notFoundOr(err, "unknown conference %s", id)
	}
	v := s.view(c)
	nodes, err := s.store.ListConferenceNodes(ctx, id)
	if err != nil {
		return v, err
	}
	for _, n := range nodes {
		v.Nodes = append(v.Nodes, NodeView{Node: n.Node, State: n.State, Users: n.Users})
	}
	roster, err := s.LocalRoster(ctx, id)
	if err != nil {
		return v, err
	}
	v.Participants = s.participantViews(ctx, roster.Participants)
	v.Waiting = s.participantViews(ctx, roster.Lobby)
	return v, nil
}

func (s *Service) apiGetConference(w http.ResponseWriter, r *http.Request, _ localuser.User) {
	v, err := s.ConferenceDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Service) apiParticipants(w http.ResponseWriter, r *http.Request, _ localuser.User) {
	roster, err := s.Roster(r.Context(), r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.rosterView(r.Context(), roster))
}

func (s *Service) apiEvents(w http.ResponseWriter, r *http.Request, _ localuser.User) {
	rep, err := s.Audit(r.Context(), r.PathValue("id"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Service) apiInvite(w http.ResponseWriter, r *http.Request, u localuser.User) {
	var req struct {
		Node  string   `json:"node"`
		Users []string `json:"users"`
	}
	if !httpapi.ReadJSON(w, r, &req) {
		return
	}
	seq, err := s.Invite(r.Context(), u, r.PathValue("id"), req.Node, req.Users)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]int64{"seq": seq})
}

func (s *Service) apiJoin(w http.ResponseWriter, r *http.Request, u localuser.User) {
	seq, id, err := s.Join(r.Context(), u, r.PathValue("id"))
	writeAction(w, seq, id, err)
}

func (s *Service) apiLeave(w http.ResponseWriter, r *http.Request, u localuser.User) {
	seq, id, err := s.Leave(r.Context(), u, r.PathValue("id"))
	writeAction(w, seq, id, err)
}

// apiTarget serves the moderation actions aimed at one user: remove, admit, deny.
func (s *Service) apiTarget(typ string) func(http.ResponseWriter, *http.Request, localuser.User) {
	return func(w http.ResponseWriter, r *http.Request, u localuser.User) {
		var req struct {
			User string `json:"user"`
		}
		if !httpapi.ReadJSON(w, r, &req) {
			return
		}
		seq, err := s.Moderate(r.Context(), u, r.PathValue("id"), typ, req.User)
		writeAction(w, seq, "", err)
	}
}

func (s *Service) apiLobby(w http.ResponseWriter, r *http.Request, u localuser.User) {
	var req struct {
		On bool `json:"on"`
	}
	if !httpapi.ReadJSON(w, r, &req) {
		return
	}
	seq, err := s.SetLobby(r.Context(), u, r.PathValue("id"), req.On)
	writeAction(w, seq, "", err)
}

func (s *Service) apiModerate(typ string) func(http.ResponseWriter, *http.Request, localuser.User) {
	return func(w http.ResponseWriter, r *http.Request, u localuser.User) {
		seq, err := s.Moderate(r.Context(), u, r.PathValue("id"), typ, "")
		writeAction(w, seq, "", err)
	}
}

// Invitation is an invitation of this node that it has not answered yet.
type Invitation struct {
	Conference string    `json:"conference"`
	Title      string    `json:"title"`
	Host       string    `json:"host"`
	HostName   string    `json:"host_name"`
	InvitedBy  string    `json:"invited_by"`
	Users      []string  `json:"users"`
	CreatedAt  time.Time `json:"created_at"`
}

// Invitations lists the open invitations of this node that u may answer.
func (s *Service) Invitations(ctx context.Context, u localuser.User) ([]Invitation, error) {
	confs, err := s.store.ListConferences(ctx)
	if err != nil {
		return nil, err
	}
	out := []Invitation{}
	for _, c := range confs {
		if c.Host == s.did || c.Ended {
			continue
		}
		n, err := s.store.GetConferenceNode(ctx, c.ID, s.did)
		if err != nil || n.State != "invited" {
			continue
		}
		if len(n.Users) > 0 && !slices.Contains(n.Users, u.ID) {
			continue
		}
		inv := Invitation{Conference: c.ID, Title: c.Title, Host: c.Host, InvitedBy: c.CreatedBy, Users: n.Users, CreatedAt: c.CreatedAt}
		if p, err := s.store.GetPeer(ctx, c.Host); err == nil {
			inv.HostName = p.Name
		}
		out = append(out, inv)
	}
	return out, nil
}

func (s *Service) apiInvitations(w http.ResponseWriter, r *http.Request, u localuser.User) {
	inv, err := s.Invitations(r.Context(), u)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, inv)
}

func (s *Service) apiAnswer(accept bool) func(http.ResponseWriter, *http.Request, localuser.User) {
	return func(w http.ResponseWriter, r *http.Request, u localuser.User) {
		seq, id, err := s.Answer(r.Context(), u, r.PathValue("id"), accept)
		writeAction(w, seq, id, err)
	}
}

// writeAction answers an action: 200 with the seq when it took effect here,
// 202 with the event id when it was sent to the host.
func writeAction(w http.ResponseWriter, seq int64, eventID string, err error) {
	switch {
	case err != nil:
		httpapi.WriteError(w, err)
	case eventID != "":
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "sent to host", "event": eventID})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"status": "applied", "seq": seq})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Service) apiSignal(w http.ResponseWriter, r *http.Request, u localuser.User) {
	var c SignalContent
	if !httpapi.ReadJSON(w, r, &c) {
		return
	}
	sig, err := s.SendSignal(r.Context(), u, r.PathValue("id"), c)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sig)
}

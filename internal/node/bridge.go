package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// newBridge makes the Matrix appservice when bridge.enabled is set.
func (n *Node) newBridge() (*bridge.Bridge, error) {
	c := n.cfg.Bridge
	if !c.Enabled {
		return nil, nil
	}
	reg, err := bridge.LoadRegistration(c.Registration)
	if err != nil {
		return nil, fmt.Errorf("bridge.registration: %w", err)
	}
	b, err := bridge.New(bridge.Options{
		Registration:     reg,
		HomeserverURL:    c.HomeserverURL,
		HomeserverDomain: c.HomeserverDomain,
		Listen:           c.Listen,
		BotLocalpart:     c.BotLocalpart,
		GhostPrefix:      c.GhostPrefix,
		Store:            n.store,
		Conferences:      bridgeConferences{n},
		NodeDID:          n.did,
		Chat:             matrixChat{n},
		OpenIDServerName: c.OpenIDServerName,
		OpenIDBaseURL:    c.OpenIDBaseURL,
		HTTPClient:       n.client,
		Guests:           matrixGuests{n},
		FocusURL:         n.FocusURL(),
		Leaver:           matrixGuests{n},
		Logger:           n.log.With("component", "bridge"),
	})
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	return b, nil
}

// syncBridge brings the conference's Matrix room in line, in the background:
// the log change that triggers it must not wait for a homeserver.
func (n *Node) syncBridge(conference string) {
	if n.bridge == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := n.bridge.Sync(ctx, conference); err != nil {
			n.log.Warn("bridge sync failed", "conference", conference, "err", err)
		}
	}()
}

// bridgeConferences shows the bridge the conferences as federation knows them.
type bridgeConferences struct{ n *Node }

func (b bridgeConferences) Conference(ctx context.Context, id string) (bridge.Conference, error) {
	v, err := b.n.fed.ConferenceDetail(ctx, id)
	if err != nil {
		return bridge.Conference{}, err
	}
	c := bridge.Conference{
		ID: v.ID, Title: v.Title, Host: v.Host, HostName: b.n.cfg.Node.Name, Ended: v.Ended,
		JoinURL: b.n.cfg.Node.PublicURL + "/app/conference/" + v.ID,
	}
	if v.Host != b.n.did {
		if p, err := b.n.store.GetPeer(ctx, v.Host); err == nil {
			c.HostName = p.Name
		}
	}
	for _, p := range v.Participants {
		bp := bridge.Participant{User: p.User, DisplayName: p.DisplayName, Organisation: p.Organisation, Node: p.Node}
		if local, did, err := federation.ParseUserRef(p.User); err == nil && did == b.n.did && accounts.IsMatrixGuest(local) {
			bp.MatrixUser = strings.TrimSpace(p.DisplayName)
		}
		c.Participants = append(c.Participants, bp)
	}
	return c, nil
}

// servePortal creates the Matrix room of a conference, or links an existing
// one (body {"room_id": "!…"}), for the node's administrators.
func (n *Node) servePortal(w http.ResponseWriter, r *http.Request) {
	u, err := n.accounts.Authenticate(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if !u.Admin {
		httpapi.WriteError(w, httpapi.Forbidden("%s is not an administrator of this node", u.ID))
		return
	}
	var req struct {
		RoomID string `json:"room_id"`
		// Invite names the Matrix users the bot invites to the room.
		Invite []string `json:"invite"`
		// Alias publishes the room under this address; Space adds it to
		// this space and invites the space's members.
		Alias string `json:"alias"`
		Space string `json:"space"`
	}
	if r.ContentLength != 0 {
		if err := httpapi.DecodeJSON(r.Body, 4096, &req); err != nil {
			httpapi.WriteError(w, httpapi.BadRequest("request body: %v", err))
			return
		}
	}
	id := r.PathValue("id")
	if _, err := n.fed.ConferenceDetail(r.Context(), id); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	// A bad address or space is refused before anything is created.
	if req.Alias != "" {
		if err := n.bridge.CheckAlias(req.Alias); err != nil {
			writePublishError(w, err)
			return
		}
	}
	if req.Space != "" {
		if err := bridge.CheckSpace(req.Space); err != nil {
			writePublishError(w, err)
			return
		}
	}
	room := req.RoomID
	if room == "" {
		room, err = n.bridge.Portal(r.Context(), id)
	} else {
		err = n.bridge.LinkRoom(r.Context(), id, room)
	}
	if pl, ok := errors.AsType[*bridge.PowerLevelsError](err); ok {
		httpapi.WriteError(w, httpapi.Forbidden("matrix room %s lacks power levels the bridge needs: %s",
			pl.Room, strings.Join(pl.Missing, "; ")))
		return
	}
	if err != nil {
		httpapi.WriteError(w, httpapi.BadRequest("matrix room: %v", err))
		return
	}
	resp := map[string]any{"conference": id, "room_id": room}
	if req.Alias != "" {
		if err := n.bridge.Publish(r.Context(), id, req.Alias); err != nil {
			writePublishError(w, err)
			return
		}
		resp["alias"] = req.Alias
	}
	invited, err := n.bridge.Invite(r.Context(), id, req.Invite)
	if err == nil && req.Space != "" {
		var members []string
		members, err = n.bridge.AddToSpace(r.Context(), id, req.Space)
		invited = append(invited, members...)
		resp["space"] = req.Space
	}
	n.syncBridge(id)
	if err != nil {
		writePublishError(w, err)
		return
	}
	resp["invited"] = invited
	writeJSON(w, http.StatusOK, resp)
}

// writePublishError answers a failed invitation, publication or space link
// of a conference's Matrix room.
func writePublishError(w http.ResponseWriter, err error) {
	switch pl, isPL := errors.AsType[*bridge.PowerLevelsError](err); {
	case isPL:
		httpapi.WriteError(w, httpapi.Forbidden("matrix room %s lacks power levels the bridge needs: %s",
			pl.Room, strings.Join(pl.Missing, "; ")))
	case errors.Is(err, bridge.ErrBadAlias), errors.Is(err, bridge.ErrBadSpace):
		httpapi.WriteError(w, httpapi.BadRequest("matrix room: %v", err))
	case errors.Is(err, store.ErrConflict):
		httpapi.WriteError(w, httpapi.Conflict("matrix room: %v", err))
	default:
		writeInviteError(w, err)
	}
}

// serveMatrixInvite has the bridge bot invite Matrix users to the Matrix
// room of a conference hosted here, for its moderators
// (POST /api/v1/conferences/{id}/matrix/invitations, {"users": […]}).
func (n *Node) serveMatrixInvite(w http.ResponseWriter, r *http.Request) {
	u, err := n.accounts.Authenticate(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	id := r.PathValue("id")
	ok, err := n.fed.Moderates(r.Context(), u, id)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if !ok {
		httpapi.WriteError(w, httpapi.Forbidden("%s is not a moderator of %s", u.ID, id))
		return
	}
	var req struct {
		Users []string `json:"users"`
	}
	if err := httpapi.DecodeJSON(r.Body, httpapi.MaxBody, &req); err != nil || len(req.Users) == 0 {
		httpapi.WriteError(w, httpapi.BadRequest("request body must be {\"users\": [\"@name:server\", …]}"))
		return
	}
	invited, err := n.bridge.Invite(r.Context(), id, req.Users)
	if err != nil {
		writeInviteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"conference": id, "invited": invited})
}

func writeInviteError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, bridge.ErrBadMatrixUser):
		httpapi.WriteError(w, httpapi.BadRequest("invite: %v", err))
	case errors.Is(err, store.ErrNotFound):
		httpapi.WriteError(w, httpapi.NotFound("the conference has no Matrix room yet; an administrator creates or links it"))
	default:
		httpapi.WriteError(w, &httpapi.Error{Status: http.StatusBadGateway, Code: "internal",
			Message: "the Matrix homeserver refused or did not answer the invitation: " + err.Error()})
	}
}

// queueForBridge hands a signal to the Matrix bridge's queue, when the
// bridge runs here: chat reaches Matrix without the delivery waiting for
// the homeserver, and lines keep their order. Of a node's replicas, one
// runs the bridge (docs/replicas.md) and hears every signal.
func (n *Node) queueForBridge(sig federation.Signal) {
	if n.bridge == nil {
		return
	}
	n.bridge.QueueSignal(bridge.Signal{
		Conference: sig.Conference, ID: sig.ID, Kind: sig.Kind, User: sig.User, As: sig.As,
		Text: sig.Text, Ref: sig.Ref, Organisation: sig.Organisation, At: sig.At,
	})
}

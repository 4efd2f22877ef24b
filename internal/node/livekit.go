package node

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/livekit"
)

// liveKitTokenTTL is how long a LiveKit token from the client API lasts: the
// client reconnects with it after a network blip, so a working day.
const liveKitTokenTTL = 12 * time.Hour

// mountLiveKit serves LiveKit's client signalling at /rtc and the token
// endpoint of the client API when livekit.api_key is set
// (spec/client-api.md §8).
func (n *Node) mountLiveKit() error {
	if !n.cfg.LiveKit.Enabled() {
		return nil
	}
	secret, err := n.cfg.LiveKit.Secret()
	if err != nil {
		return err
	}
	var identities livekit.CallIdentities
	if n.FocusURL() != "" && n.bridge != nil {
		identities = &callIdentities{n: n}
	}
	n.livekit, err = livekit.New(livekit.Options{
		APIKey: n.cfg.LiveKit.APIKey, APISecret: secret,
		SFU: n.sfu, UserOf: n.liveKitUser, Organisation: n.cfg.Node.Name, Logger: n.log,
		Chat: n.liveKitChat, CallIdentities: identities,
	})
	if err != nil {
		return err
	}
	h := n.livekit.Handler()
	n.Handle("GET /rtc", n.routeLiveKit(h))
	n.Handle("GET /rtc/validate", n.routeLiveKit(h))
	n.Handle("GET /rtc/v1", h)
	n.Handle("GET /rtc/v1/validate", h)
	n.Handle("POST "+livekit.RoomServicePath, n.routeRoomService(h))
	n.Handle("POST /api/v1/conferences/{id}/livekit-token", n.guestGate(http.HandlerFunc(n.serveLiveKitToken)))
	n.mountFocus()
	return nil
}

// liveKitUser maps a token's identity to a user of this node: a user
// reference of this node as the node mints them, or a bare local user ID as
// a backend holding the API secret may write it.
func (n *Node) liveKitUser(identity string) (string, error) {
	if local, ok := strings.CutSuffix(identity, "@"+n.did); ok {
		identity = local
	}
	if identity == "" || strings.Contains(identity, "@") {
		return "", errors.New("not a user of this node")
	}
	return federation.UserRef(identity, n.did), nil
}

// liveKitChat sends a LiveKit participant's chat line as the user's own
// chat signal (spec/client-api.md §8.6).
func (n *Node) liveKitChat(ctx context.Context, conference string, line livekit.ChatLine) (string, error) {
	local, ok := strings.CutSuffix(line.User, "@"+n.did)
	if !ok {
		return "", errors.New("not a user of this node")
	}
	sig, err := n.fed.SendSignal(ctx, localuser.User{ID: local}, conference,
		federation.SignalContent{Kind: line.Kind, Text: line.Text, Ref: line.Ref})
	if err != nil {
		return "", err
	}
	return sig.ID, nil
}

// serveLiveKitToken mints a LiveKit access token for the signed-in user in
// a conference whose media they may take part in (spec/client-api.md §8.2).
func (n *Node) serveLiveKitToken(w http.ResponseWriter, r *http.Request) {
	u, err := n.accounts.Authenticate(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	conference := r.PathValue("id")
	ref := federation.UserRef(u.ID, n.did)
	if err := n.fed.MayParticipate(r.Context(), conference, ref); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	token, err := n.livekit.Mint(conference, ref, u.DisplayName, liveKitTokenTTL)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"url": n.LiveKitURL(), "token": token, "room": conference, "identity": ref,
	})
}

// LiveKitURL is the URL LiveKit clients connect to (wss:// of the public
// URL), or "" when LiveKit clients are not served.
func (n *Node) LiveKitURL() string {
	if n.livekit == nil {
		return ""
	}
	return "wss://" + strings.TrimPrefix(n.cfg.Node.PublicURL, "https://")
}

// LiveKitCredentials are the node's LiveKit API key and secret, for a
// backend that mints its own tokens; ok is false when LiveKit is off.
func (n *Node) LiveKitCredentials() (key, secret string, ok bool) {
	if n.livekit == nil {
		return "", "", false
	}
	secret, err := n.cfg.LiveKit.Secret()
	return n.cfg.LiveKit.APIKey, secret, err == nil
}

// routeLiveKit sends a LiveKit connection to the replica running the
// conference its token grants (docs/replicas.md); a token that does not
// verify is refused here by h, as on a single process.
func (n *Node) routeLiveKit(h http.Handler) http.Handler {
	if n.replicas == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conf, err := n.livekit.ConferenceOf(r); err == nil && n.routeToOwner(w, r, conf) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

// routeRoomService sends a RoomService call to the replica running the
// conference its token names, where the participants' sessions are.
func (n *Node) routeRoomService(h http.Handler) http.Handler {
	if n.replicas == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conf, err := n.livekit.AdminRoomOf(r); err == nil && n.routeToRunning(w, r, conf) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

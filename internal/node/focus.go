package node

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/httpapi"
)

// Element Call's MatrixRTC focus (spec/client-api.md §8.8): the token
// service element-hq/lk-jwt-service implements, served by the node itself
// under FocusPath when bridge.livekit_focus is on. A Matrix user hands it an
// OpenID token and a Matrix room; the node checks the token at the
// homeserver, maps the room to the conference it is the portal of, checks
// that the user is joined to it, joins the conference for them as a Matrix
// guest (spec §6) and answers a LiveKit URL and an access token for that
// conference only. Its errors are Matrix errors, {"errcode", "error"}, as
// lk-jwt-service answers and Element Call reads them.

// FocusPath is the livekit_service_url of a node, after its public URL.
const FocusPath = "/livekit/jwt"

// maxFocusBody bounds a focus request: an OpenID token and a few IDs.
const maxFocusBody = 16 << 10

// openIDToken is the token Element Call got from
// /_matrix/client/v3/user/{userId}/openid/request_token.
type openIDToken struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	MatrixServerName string `json:"matrix_server_name"`
	ExpiresIn        int    `json:"expires_in"`
}

// legacyFocusRequest is the body of POST /sfu/get.
type legacyFocusRequest struct {
	Room        string      `json:"room"`
	OpenIDToken openIDToken `json:"openid_token"`
	DeviceID    string      `json:"device_id"`
}

// focusRequest is the body of POST /get_token (MSC4195).
type focusRequest struct {
	RoomID      string      `json:"room_id"`
	SlotID      string      `json:"slot_id"`
	OpenIDToken openIDToken `json:"openid_token"`
	Member      struct {
		ID              string `json:"id"`
		ClaimedUserID   string `json:"claimed_user_id"`
		ClaimedDeviceID string `json:"claimed_device_id"`
	} `json:"member"`
}

// matrixError is an error in the Matrix form the focus answers with.
type matrixError struct {
	status  int
	errcode string
	msg     string
}

func (e *matrixError) Error() string { return e.errcode + ": " + e.msg }

func mxErr(status int, errcode, msg string) error {
	return &matrixError{status: status, errcode: errcode, msg: msg}
}

// mountFocus serves the focus when bridge.livekit_focus is on.
func (n *Node) mountFocus() {
	if !n.cfg.Bridge.LiveKitFocus || n.bridge == nil || n.livekit == nil {
		return
	}
	n.Handle("POST "+FocusPath+"/sfu/get", focusCORS(n.serveFocus(true)))
	n.Handle("POST "+FocusPath+"/get_token", focusCORS(n.serveFocus(false)))
	n.Handle("OPTIONS "+FocusPath+"/", focusCORS(func(http.ResponseWriter, *http.Request) {}))
	n.Handle("GET "+FocusPath+"/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
}

// FocusURL is the livekit_service_url Element Call is pointed at, or ""
// when the focus is off.
func (n *Node) FocusURL() string {
	if !n.cfg.Bridge.LiveKitFocus || !n.cfg.Bridge.Enabled || !n.cfg.LiveKit.Enabled() {
		return ""
	}
	return n.cfg.Node.PublicURL + FocusPath
}

// focusCORS lets Element Call, served from another origin, call the focus:
// the credential is in the body, never in a cookie.
func focusCORS(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "POST")
		h.Set("Access-Control-Allow-Headers", "Accept, Content-Type, Content-Length, Accept-Encoding")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		next(w, r)
	})
}

// serveFocus answers POST /sfu/get (legacy) or POST /get_token with
// {"url", "jwt"}.
func (n *Node) serveFocus(legacy bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		resp, err := n.focus(r, legacy)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			me, ok := errors.AsType[*matrixError](err)
			if !ok {
				httpapi.RecordCause(w, err)
				me = &matrixError{status: http.StatusInternalServerError, errcode: "M_UNKNOWN", msg: "Internal Server Error"}
			}
			w.WriteHeader(me.status)
			_ = json.NewEncoder(w).Encode(map[string]string{"errcode": me.errcode, "error": me.msg})
			return
		}
		_ = json.NewEncoder(w).Encode(resp)
	}
}

// focusAsk is a request to the focus, either kind, once read.
type focusAsk struct {
	room  string
	token openIDToken
	// claimed is the user the client says it is (get_token only).
	claimed string
	// identity makes the LiveKit identity from the verified Matrix user.
	identity func(matrixUser string) string
}

func readFocusRequest(r *http.Request, legacy bool) (focusAsk, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFocusBody+1))
	if err != nil || len(body) > maxFocusBody {
		return focusAsk{}, mxErr(http.StatusBadRequest, "M_NOT_JSON", "Error reading request")
	}
	if legacy {
		var req legacyFocusRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return focusAsk{}, mxErr(http.StatusBadRequest, "M_NOT_JSON", "Error reading request")
		}
		switch {
		case req.Room == "":
			return focusAsk{}, mxErr(http.StatusBadRequest, "M_BAD_JSON", "Missing room parameter")
		case req.OpenIDToken.AccessToken == "" || req.OpenIDToken.MatrixServerName == "":
			return focusAsk{}, mxErr(http.StatusBadRequest, "M_BAD_JSON", "Missing OpenID token parameters")
		case req.DeviceID == "":
			return focusAsk{}, mxErr(http.StatusBadRequest, "M_BAD_JSON", "Missing device_id parameter")
		}
		// Element Call maps each LiveKit participant to a call membership
		// (and its media keys) by "<user ID>:<device ID>".
		return focusAsk{room: req.Room, token: req.OpenIDToken,
			identity: func(user string) string { return user + ":" + req.DeviceID }}, nil
	}
	var req focusRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return focusAsk{}, mxErr(http.StatusBadRequest, "M_NOT_JSON", "Error reading request")
	}
	switch {
	case req.RoomID == "" || req.SlotID == "":
		return focusAsk{}, mxErr(http.StatusBadRequest, "M_BAD_JSON", "The request body is missing `room_id` or `slot_id`")
	case req.Member.ID == "" || req.Member.ClaimedUserID == "" || req.Member.ClaimedDeviceID == "":
		return focusAsk{}, mxErr(http.StatusBadRequest, "M_BAD_JSON", "The request body `member` is missing a `id`, `claimed_user_id` or `claimed_device_id`")
	case req.OpenIDToken.AccessToken == "" || req.OpenIDToken.MatrixServerName == "":
		return focusAsk{}, mxErr(http.StatusBadRequest, "M_BAD_JSON", "The request body `openid_token` is missing a `access_token` or `matrix_server_name`")
	}
	return focusAsk{room: req.RoomID, token: req.OpenIDToken, claimed: req.Member.ClaimedUserID,
		identity: func(user string) string { return hashedIdentity(user, req.Member.ClaimedDeviceID, req.Member.ID) }}, nil
}

// hashedIdentity is the LiveKit identity of a MatrixRTC member in
// MSC4195's form, as Element Call computes it for the members it sees:
// the unpadded base64 of the SHA-256 of the JSON array [user, device,
// member id].
func hashedIdentity(user, device, member string) string {
	b, _ := json.Marshal([]string{user, device, member})
	sum := sha256.Sum256(b)
	return base64.RawStdEncoding.EncodeToString(sum[:])
}

// focus checks a request and mints its access token.
func (n *Node) focus(r *http.Request, legacy bool) (map[string]string, error) {
	ask, err := readFocusRequest(r, legacy)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	log := n.log.With("component", "focus", "room", ask.room)
	matrixUser, err := n.bridge.VerifyOpenID(ctx, ask.token.MatrixServerName, ask.token.AccessToken)
	switch {
	case errors.Is(err, bridge.ErrOpenIDRefused):
		log.Info("focus: OpenID token refused", "err", err)
		if ask.token.MatrixServerName != n.cfg.Bridge.OpenIDServerName {
			return nil, mxErr(http.StatusUnauthorized, "M_UNAUTHORIZED",
				"this node accepts Matrix users of "+n.cfg.Bridge.OpenIDServerName+" only")
		}
		return nil, mxErr(http.StatusUnauthorized, "M_UNAUTHORIZED",
			"the Matrix OpenID token is invalid or expired; request a new one from your homeserver")
	case err != nil:
		log.Warn("focus: homeserver unreachable", "err", err)
		return nil, mxErr(http.StatusBadGateway, "M_UNKNOWN", "the Matrix homeserver could not be asked about the token")
	}
	if ask.claimed != "" && ask.claimed != matrixUser {
		log.Info("focus: claimed user differs from the token's", "claimed", ask.claimed, "user", matrixUser)
		return nil, mxErr(http.StatusUnauthorized, "M_UNAUTHORIZED",
			"the OpenID token belongs to "+matrixUser+", not to claimed_user_id "+ask.claimed)
	}
	conference, err := n.bridge.PortalConference(ctx, ask.room)
	if errors.Is(err, bridge.ErrNoPortal) {
		return nil, mxErr(http.StatusNotFound, "M_NOT_FOUND", "room "+ask.room+" is not the Matrix room of a conference of this node")
	}
	if err != nil {
		return nil, err
	}
	// The homeserver is the authority on who is in the room, asked now.
	err = n.bridge.CheckGuest(ctx, conference, matrixUser)
	if errors.Is(err, bridge.ErrNotInPortal) {
		log.Info("focus: refused, not in the room", "user", matrixUser, "conference", conference)
		return nil, mxErr(http.StatusForbidden, "M_FORBIDDEN", matrixUser+" is not joined to room "+ask.room)
	}
	if err != nil {
		log.Warn("focus: membership not checked", "user", matrixUser, "err", err)
		return nil, mxErr(http.StatusBadGateway, "M_UNKNOWN", "the Matrix homeserver could not be asked whether you are in the room")
	}
	ref, err := n.joinAsMatrixGuest(ctx, conference, matrixUser)
	if err != nil {
		return nil, err
	}
	identity := ask.identity(matrixUser)
	jwt, err := n.livekit.MintFor(conference, identity, ref, matrixUser, liveKitTokenTTL)
	if err != nil {
		return nil, err
	}
	log.Info("focus: LiveKit token issued", "user", matrixUser, "conference", conference, "identity", identity)
	return map[string]string{"url": n.LiveKitURL(), "jwt": jwt}, nil
}

// joinAsMatrixGuest makes the Matrix user a participant of the conference
// as a Matrix guest (spec/client-api.md §6), unless they are one already,
// and returns their user reference. One waiting in the lobby is refused
// until a moderator admits them.
func (n *Node) joinAsMatrixGuest(ctx context.Context, conference, matrixUser string) (string, error) {
	u, err := accounts.MatrixGuest(ctx, n.store, matrixUser, n.now())
	if err != nil {
		return "", err
	}
	ref := federation.UserRef(u.ID, n.did)
	// Whether they join now or joined before, they are in the call through
	// the focus: hanging up in Element Call ends their part (LeaveGuest).
	n.focusJoined.add(conference, matrixUser)
	lobby := mxErr(http.StatusForbidden, "M_FORBIDDEN", matrixUser+" waits in the lobby of the conference: join the call again once a moderator has let you in")
	err = n.fed.MayParticipate(ctx, conference, ref)
	if err == nil {
		return ref, nil
	}
	if n.isWaiting(ctx, conference, ref) {
		return "", lobby
	}
	if _, _, err := n.fed.Join(ctx, u, conference); err != nil {
		if he, ok := errors.AsType[*httpapi.Error](err); ok && he.Status < 500 {
			return "", mxErr(he.Status, "M_FORBIDDEN", he.Message)
		}
		return "", err
	}
	if err := n.fed.MayParticipate(ctx, conference, ref); err != nil {
		if n.isWaiting(ctx, conference, ref) {
			return "", lobby
		}
		if he, ok := errors.AsType[*httpapi.Error](err); ok && he.Status < 500 {
			return "", mxErr(he.Status, "M_FORBIDDEN", he.Message)
		}
		return "", err
	}
	return ref, nil
}

// isWaiting reports whether ref waits in the conference's lobby.
func (n *Node) isWaiting(ctx context.Context, conference, ref string) bool {
	roster, err := n.fed.LocalRoster(ctx, conference)
	if err != nil {
		return false
	}
	for _, m := range roster.Lobby {
		if m.User == ref {
			return true
		}
	}
	return false
}

// portalCacheTTL is how long the node remembers whether a conference has a
// Matrix room, for naming its participants to LiveKit clients.
const portalCacheTTL = 30 * time.Second

// callIdentities implements livekit.CallIdentities while the focus is on:
// in a conference with a Matrix room, a participant who has a ghost there
// (anyone but a Matrix guest, who is in the room themself) is named after
// the ghost's call membership, so that Element Call pairs its media with
// that membership (spec/client-api.md §8.8).
type callIdentities struct {
	n *Node

	mu      sync.Mutex
	portals map[string]portalSeen
}

type portalSeen struct {
	has bool
	at  time.Time
}

func (c *callIdentities) CallIdentity(conference, user string) string {
	if local, did, err := federation.ParseUserRef(user); err == nil && did == c.n.did && accounts.IsMatrixGuest(local) {
		return ""
	}
	if !c.hasPortal(conference) {
		return ""
	}
	return c.n.bridge.CallIdentity(user)
}

func (c *callIdentities) hasPortal(conference string) bool {
	now := time.Now()
	c.mu.Lock()
	seen, ok := c.portals[conference]
	c.mu.Unlock()
	if ok && now.Sub(seen.at) < portalCacheTTL {
		return seen.has
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	has, err := c.n.bridge.HasPortal(ctx, conference)
	if err != nil {
		c.n.log.Warn("focus: portal of a conference not read", "conference", conference, "err", err)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.portals == nil || len(c.portals) > 10000 {
		c.portals = make(map[string]portalSeen)
	}
	c.portals[conference] = portalSeen{has: has, at: now}
	return has
}

// focusGuests are the Matrix users in a conference through the focus, by
// "conference user". The node forgets them when it restarts: then a guest
// who hangs up stays a participant until they leave by other means.
type focusGuests struct {
	mu sync.Mutex
	in map[string]bool
}

func (f *focusGuests) add(conference, matrixUser string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.in == nil {
		f.in = make(map[string]bool)
	}
	f.in[conference+" "+matrixUser] = true
}

// take reports whether the user was in the conference through the focus,
// and forgets it.
func (f *focusGuests) take(conference, matrixUser string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := conference + " " + matrixUser
	was := f.in[key]
	delete(f.in, key)
	return was
}

package livekit

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/livekit/protocol/auth"
)

// Attribute names carried in each participant's LiveKit attributes
// (spec/client-api.md §8.4).
const (
	AttrOrganisation = "entente.organisation"
	AttrUser         = "entente.user"
)

// Grant is what a verified token lets its holder do.
type Grant struct {
	Conference string
	Identity   string
	// User is the Entente user the identity stands for when the token
	// says so in its entente.user attribute (spec/client-api.md §8.2):
	// then Identity is only the name LiveKit clients see, such as the
	// "@user:server:DEVICE" Element Call expects of a Matrix user.
	User       string
	Name       string
	CanPublish bool
	// CanSubscribe is false only when the token says so.
	CanSubscribe bool
}

// refusal is an error with the HTTP status it is answered with.
type refusal struct {
	status int
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, format string, args ...any) error {
	return &refusal{status: status, msg: fmt.Sprintf(format, args...)}
}

// statusOf is the HTTP status of err: the refusal's, or 500.
func statusOf(err error) int {
	var r *refusal
	if errors.As(err, &r) {
		return r.status
	}
	return http.StatusInternalServerError
}

// Mint makes a LiveKit access token for identity in conference, valid for
// ttl, with the rights to join, publish, subscribe and send data.
func Mint(apiKey, apiSecret, conference, identity, name string, attributes map[string]string, ttl time.Duration) (string, error) {
	yes := true
	at := auth.NewAccessToken(apiKey, apiSecret).
		SetIdentity(identity).
		SetName(name).
		SetValidFor(ttl).
		SetAttributes(attributes).
		SetVideoGrant(&auth.VideoGrant{
			RoomJoin: true, Room: conference,
			CanPublish: &yes, CanSubscribe: &yes, CanPublishData: &yes,
		})
	return at.ToJWT()
}

// MintFor makes an access token whose LiveKit identity is not the Entente
// user it stands for: the user travels in the token's entente.user
// attribute, and other LiveKit clients see identity (spec/client-api.md
// §8.2). Element Call's focus mints these for Matrix users.
func MintFor(apiKey, apiSecret, conference, identity, user, name, organisation string, ttl time.Duration) (string, error) {
	return Mint(apiKey, apiSecret, conference, identity, name,
		map[string]string{AttrOrganisation: organisation, AttrUser: user}, ttl)
}

// tokenOf is the access token of a request: the Authorization bearer token,
// or the access_token query parameter that browsers' WebSockets must use.
func tokenOf(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return r.URL.Query().Get("access_token")
}

// verify checks a token's signature, issuer, expiry and video grant.
func (s *Server) verify(raw string) (Grant, error) {
	if raw == "" {
		return Grant{}, refuse(http.StatusUnauthorized, "no access token: send it as access_token or as an Authorization bearer token")
	}
	v, err := auth.ParseAPIToken(raw)
	if err != nil {
		return Grant{}, refuse(http.StatusUnauthorized, "access token is not a JWT: %v", err)
	}
	if v.APIKey() != s.opts.APIKey {
		return Grant{}, refuse(http.StatusUnauthorized, "access token signed with unknown API key %q", v.APIKey())
	}
	_, grants, err := v.Verify(s.opts.APISecret)
	if err != nil {
		return Grant{}, refuse(http.StatusUnauthorized, "access token refused: %v", err)
	}
	vg := grants.Video
	switch {
	case vg == nil || !vg.RoomJoin:
		return Grant{}, refuse(http.StatusForbidden, "access token does not grant roomJoin")
	case vg.Room == "":
		return Grant{}, refuse(http.StatusForbidden, "access token names no room (the conference to join)")
	case grants.Identity == "":
		return Grant{}, refuse(http.StatusForbidden, "access token has no identity (sub)")
	}
	return Grant{
		Conference: vg.Room, Identity: grants.Identity, User: grants.Attributes[AttrUser], Name: grants.Name,
		CanPublish: vg.GetCanPublish(), CanSubscribe: vg.GetCanSubscribe(),
	}, nil
}

// ConferenceOf returns the conference a /rtc request's access token grants,
// once the token is verified: a node of several replicas sends the
// connection to the replica that runs that conference.
func (s *Server) ConferenceOf(r *http.Request) (string, error) {
	g, err := s.verify(tokenOf(r))
	if err != nil {
		return "", err
	}
	return g.Conference, nil
}

package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/entente-org/entente/internal/httpapi"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// maxOpenIDBody bounds both the sign-in request and the homeserver's answer.
const maxOpenIDBody = 64 << 10

// openIDLogin is the body of POST /api/v1/matrix/openid.
type openIDLogin struct {
	AccessToken      string `json:"access_token"`
	MatrixServerName string `json:"matrix_server_name"`
}

// errOpenIDRefused is a token the homeserver did not vouch for.
var errOpenIDRefused = errors.New("Matrix OpenID token refused")

// OpenIDLogin lets a Matrix user of the configured homeserver join as a
// guest: it takes {"access_token", "matrix_server_name"}, has the homeserver
// vouch for the token, checks that the user is joined to at least one portal
// room, and answers {"token", "user"} with the guest token Options.Guests issues. Errors follow spec/client-api.md:
// {"error": {"code", "message"}}.
func (b *Bridge) OpenIDLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		httpapi.WriteRefusal(w, http.StatusMethodNotAllowed, "bad_request", "use POST")
		return
	}
	var req openIDLogin
	if err := httpapi.DecodeJSON(r.Body, maxOpenIDBody, &req); err != nil {
		httpapi.WriteRefusal(w, http.StatusBadRequest, "bad_request", "body must be {\"access_token\": …, \"matrix_server_name\": …}")
		return
	}
	if req.AccessToken == "" || req.MatrixServerName == "" {
		httpapi.WriteRefusal(w, http.StatusBadRequest, "bad_request", "access_token and matrix_server_name are required")
		return
	}
	if b.o.Guests == nil || b.o.OpenIDServerName == "" {
		httpapi.WriteRefusal(w, http.StatusForbidden, "forbidden", "Matrix sign-in is not enabled on this node")
		return
	}
	if req.MatrixServerName != b.o.OpenIDServerName {
		httpapi.WriteRefusal(w, http.StatusForbidden, "forbidden",
			fmt.Sprintf("this node does not accept Matrix users of %q", req.MatrixServerName))
		return
	}
	ctx := r.Context()
	user, err := b.verifyOpenID(ctx, req.AccessToken)
	if errors.Is(err, errOpenIDRefused) {
		b.log.Info("Matrix sign-in refused", "err", err)
		httpapi.WriteRefusal(w, http.StatusUnauthorized, "unauthorized",
			"the Matrix OpenID token is invalid or expired; request a new one from your homeserver")
		return
	}
	if err != nil {
		b.log.Warn("Matrix sign-in: homeserver unreachable", "err", err)
		httpapi.WriteRefusal(w, http.StatusBadGateway, "internal", "the Matrix homeserver could not be asked about the token")
		return
	}
	// A guest reaches only the conferences whose room they are in
	// (spec/client-api.md §6): someone in none gets no token at all.
	confs, err := b.GuestConferences(ctx, user.String())
	if err != nil {
		b.log.Warn("Matrix sign-in: portal rooms could not be checked", "user", user.String(), "err", err)
		httpapi.WriteRefusal(w, http.StatusBadGateway, "internal", "the Matrix homeserver could not be asked which rooms you are in")
		return
	}
	if len(confs) == 0 {
		b.log.Info("Matrix sign-in refused: in no portal room", "user", user.String())
		httpapi.WriteRefusal(w, http.StatusForbidden, "forbidden", user.String()+
			" is in no Matrix room of a conference of this node; ask the conference's moderators to invite you to its room")
		return
	}
	token, err := b.o.Guests.IssueGuest(ctx, user.String())
	if err != nil {
		httpapi.RecordCause(w, fmt.Errorf("issue guest for Matrix user %s: %w", user.String(), err))
		httpapi.WriteRefusal(w, http.StatusInternalServerError, "internal", "could not issue a guest token")
		return
	}
	b.log.Info("Matrix user signed in", "user", user.String())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"token": token, "user": user.String()})
}

// verifyOpenID asks the homeserver who the token belongs to, with mautrix's
// federation call GET /_matrix/federation/v1/openid/userinfo. A user of
// another server is refused as well: a homeserver only vouches for its own
// users.
func (b *Bridge) verifyOpenID(ctx context.Context, token string) (id.UserID, error) {
	fed, where := b.openIDFed, b.openIDWhere
	info, err := fed.GetOpenIDUserInfo(ctx, b.o.OpenIDServerName, token)
	if herr, ok := errors.AsType[mautrix.HTTPError](err); ok {
		if herr.Response == nil {
			// The request URL holds the token: report the host and the
			// cause only.
			cause := herr.WrappedError
			if ue, ok := errors.AsType[*url.Error](cause); ok {
				cause = ue.Err
			}
			return "", fmt.Errorf("openid userinfo on %s: request failed: %v", where, cause)
		}
		switch status := herr.Response.StatusCode; status {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return "", fmt.Errorf("%w by %s (HTTP %d)", errOpenIDRefused, where, status)
		default:
			return "", fmt.Errorf("openid userinfo on %s: HTTP %d", where, status)
		}
	}
	if err != nil {
		// mautrix refuses a user of another server before anything else.
		return "", fmt.Errorf("%w: %s vouched for a user of another server than %s", errOpenIDRefused, where, b.o.OpenIDServerName)
	}
	return info.Sub, nil
}

// baseURLTransport sends mautrix's matrix-federation:// requests to base
// through next.
type baseURLTransport struct {
	base *url.URL
	next *http.Client
}

func (t baseURLTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = t.base.Scheme, t.base.Host
	r.URL.Path = t.base.Path + r.URL.Path
	r.URL.RawPath = ""
	r.Host = t.base.Host
	r.RequestURI = ""
	return t.next.Do(r)
}

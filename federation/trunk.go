package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/strictjson"
	"github.com/entente-org/entente/store"
)

// A cascade trunk joins a member node's SFU to the host's SFU for one
// conference (spec §10). It is set up by one signed exchange: the member
// sends its SDP offer, the host answers with its SDP. The DTLS fingerprints
// inside both SDPs are thereby signed by the nodes' keys, which binds the
// media association to the nodes' identities.
const (
	TypeTrunkOffer  = "media.trunk.offer"
	TypeTrunkAnswer = "media.trunk.answer"
)

// TrunkOffer is the content of media.trunk.offer.
type TrunkOffer struct {
	SDP string `json:"sdp"`
	// Relay says whether the member node lets the host forward its users'
	// media to other member nodes (the member's trust entry for the host,
	// may_relay_media).
	Relay bool `json:"relay"`
}

// TrunkAnswer is the content of media.trunk.answer.
type TrunkAnswer struct {
	SDP string `json:"sdp"`
}

// maxSDP bounds an SDP in a trunk message: a trunk negotiates up to 129
// media sections of about 1.1 KiB each, far longer than an ordinary string
// (spec §10.2).
const maxSDP = 256 << 10

// OfferTrunk sends this node's SDP offer for a trunk to the host of a
// conference it takes part in, and returns the host's verified answer.
func (s *Service) OfferTrunk(ctx context.Context, conference, sdp string) (string, error) {
	conf, err := s.store.GetConference(ctx, conference)
	if err != nil {
		return "", notFoundOr(err, "unknown conference %s", conference)
	}
	if conf.Host == s.did {
		return "", httpapi.BadRequest("conference %s is hosted here: trunks go to the host", conference)
	}
	if conf.Ended {
		return "", httpapi.Gone("conference %s has ended", conference)
	}
	peer, err := s.store.GetPeer(ctx, conf.Host)
	if err != nil {
		return "", notFoundOr(err, "%s is not on the trust list", conf.Host)
	}
	p, err := s.newPayload(TypeTrunkOffer, conf.Host, s.did, conference, TrunkOffer{SDP: sdp, Relay: peer.MayRelayMedia})
	if err != nil {
		return "", err
	}
	env, _, err := s.seal(p)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(env)
	endpoint, err := s.endpoint(ctx, conf.Host)
	if err != nil {
		return "", err
	}
	status, answer, err := s.client.Do(ctx, http.MethodPost, endpoint+"/conferences/"+conference+"/trunk", body)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", hostRefusal(refusalError(status, answer).Error())
	}
	ap, err := s.openAnswer(ctx, conf.Host, answer, TypeTrunkAnswer)
	if err != nil {
		return "", err
	}
	var a TrunkAnswer
	if err := decodeTrunkContent(ap.Content, &a); err != nil {
		return "", httpapi.BadRequest("trunk answer: %v", err)
	}
	if ap.Conference != conference || !strings.HasPrefix(a.SDP, "v=0") {
		return "", httpapi.Unauthorized("trunk answer from %s is not for %s", conf.Host, conference)
	}
	return a.SDP, nil
}

// MayRelayMedia reports whether this node lets the host of conference relay
// its users' media to the conference's other nodes: its trust entry for the
// host says so (may_relay_media, spec §2). A host no longer on the trust
// list may relay nothing. A live trunk asks this again and again, so that a
// change of the trust entry reaches the call at once (§10.5).
func (s *Service) MayRelayMedia(ctx context.Context, conference string) (bool, error) {
	conf, err := s.store.GetConference(ctx, conference)
	if err != nil {
		return false, notFoundOr(err, "unknown conference %s", conference)
	}
	peer, err := s.store.GetPeer(ctx, conf.Host)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return peer.MayRelayMedia, nil
}

// serveTrunk answers a member node's trunk offer for a conference hosted here.
func (s *Service) serveTrunk(w http.ResponseWriter, r *http.Request) {
	conference := r.PathValue("id")
	s.serveSigned(w, r, conference, TypeTrunkAnswer, func(ctx context.Context, in *Inbound) (any, error) {
		answer, err := s.trunkAnswer(ctx, in, conference)
		return TrunkAnswer{SDP: answer}, err
	})
}

func (s *Service) trunkAnswer(ctx context.Context, in *Inbound, conference string) (string, error) {
	if s.trunks == nil {
		return "", httpapi.NotFound("this node runs no SFU")
	}
	m, err := s.openInbound(ctx, in)
	if err != nil {
		return "", err
	}
	p, b := m.payload, m.bytes
	if p.Type != TypeTrunkOffer || p.Conference != conference {
		return "", httpapi.BadRequest("expected a media.trunk.offer for %s", conference)
	}
	var offer TrunkOffer
	if err := decodeTrunkContent(p.Content, &offer); err != nil {
		return "", httpapi.BadRequest("trunk offer: %v", err)
	}
	if !strings.HasPrefix(offer.SDP, "v=0") {
		return "", httpapi.BadRequest("trunk offer: not an SDP")
	}
	conf, err := s.store.GetConference(ctx, conference)
	if err != nil || conf.Host != s.did {
		return "", httpapi.NotFound("no conference %s hosted here", conference)
	}
	if conf.Ended {
		return "", httpapi.Gone("conference %s has ended", conference)
	}
	n, err := s.store.GetConferenceNode(ctx, conference, p.Origin)
	if errors.Is(err, store.ErrNotFound) || (err == nil && n.State != store.NodeAccepted) {
		return "", httpapi.Forbidden("%s has not accepted an invitation to %s", p.Origin, conference)
	} else if err != nil {
		return "", err
	}
	// An offer is answered once: a replayed one is refused.
	dup, err := s.store.RecordInbound(ctx, p.Origin, p.ID, HashHex(b), s.now())
	if err != nil {
		return "", err
	}
	if dup {
		return "", httpapi.Conflict("trunk offer %s was already answered", p.ID)
	}
	return s.trunks.AnswerTrunk(ctx, conference, p.Origin, offer)
}

// decodeTrunkContent decodes a trunk message's content strictly, with the
// longer string limit its SDP needs; every field is required (spec §10.2).
func decodeTrunkContent(raw json.RawMessage, v any) error {
	if err := strictjson.Decode(raw, v, strictjson.Limits{MaxString: maxSDP}); err != nil {
		return err
	}
	return strictjson.RequireFields(raw, v)
}

package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// Path is where a node serves the federation API; its DID document's
// federation service endpoint is the node's public URL followed by Path.
const Path = "/federation/v1"

// Handler serves the federation API (spec §3–§7) at Path. The prefix is not
// stripped: the HTTP signature covers the full request path.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+Path+"/inbox", s.serveInbox)
	mux.HandleFunc("GET "+Path+"/conferences/{id}/roster", s.serveRoster)
	mux.HandleFunc("GET "+Path+"/conferences/{id}/records", s.serveRecords)
	mux.HandleFunc("POST "+Path+"/conferences/{id}/trunk", s.serveTrunk)
	return mux
}

func (s *Service) serveInbox(w http.ResponseWriter, r *http.Request) {
	s.serveSigned(w, r, "", TypeReceipt, func(ctx context.Context, in *Inbound) (any, error) {
		return s.receive(ctx, in)
	})
}

// serveSigned is the shape every signed POST of the federation API shares:
// the request is authenticated (spec §3.2), handle decides, and the answer
// is an envelope of typ signed by this node (§3.3), or the refusal, logged
// (sampled) with the peer it came from.
func (s *Service) serveSigned(w http.ResponseWriter, r *http.Request, conference, typ string, handle func(ctx context.Context, in *Inbound) (any, error)) {
	in, err := s.authenticate(r)
	if err != nil {
		s.refused(r, "", err)
		httpapi.WriteError(w, err)
		return
	}
	content, err := handle(r.Context(), in)
	if err != nil {
		s.refused(r, in.PeerDID, err)
		httpapi.WriteError(w, err)
		return
	}
	s.respond(w, in.PeerDID, conference, typ, content)
}

// inboundMessage is a signed message a peer posted, opened and checked.
type inboundMessage struct {
	env     Envelope
	payload Payload
	bytes   []byte // the signed payload bytes, as hashed for RecordInbound
}

// openInbound is the prologue of every signed POST (spec §3.2 step 11): the
// envelope in the authenticated body is decoded, must be signed with the key
// of the node that signed the request, is opened, and its header must meet
// the rules of every message (checkHeader).
func (s *Service) openInbound(ctx context.Context, in *Inbound) (inboundMessage, error) {
	env, err := DecodeEnvelope(in.Body)
	if err != nil {
		return inboundMessage{}, err
	}
	if env.KeyDID() != in.PeerDID {
		return inboundMessage{}, httpapi.Unauthorized("envelope signed by %s but request by %s", env.KeyDID(), in.PeerDID)
	}
	p, b, err := Open(ctx, env, s.keyOf)
	if err != nil {
		return inboundMessage{}, err
	}
	if err := s.checkHeader(p, in.PeerDID); err != nil {
		return inboundMessage{}, err
	}
	return inboundMessage{env: env, payload: p, bytes: b}, nil
}

// refused logs a refused federation request; its body is never logged.
// Refusals are sampled: a flood of them must not cost a log line each
// (spec §3.4), so one line per peer, path and status is written every
// refusalLogEvery, with the number left out since the last. A failure of
// ours (5xx) is not logged here: WriteError hands its cause to the node's
// request log, which logs it once with the request id.
func (s *Service) refused(r *http.Request, peer string, err error) {
	var fe *httpapi.Error
	if errors.As(err, &fe) && fe.Status < 500 {
		if ok, suppressed := s.refusals.allow(peer+" "+r.URL.Path+" "+strconv.Itoa(fe.Status), s.now()); ok {
			s.log.Warn("federation request refused", "peer", peer, "path", r.URL.Path, "status", fe.Status, "err", err, "similar_refusals_not_logged", suppressed)
		}
	}
}

// receive checks an authenticated message (spec §3.2 step 11, §4.2) and
// applies it. Nothing is stored unless it is applied.
func (s *Service) receive(ctx context.Context, in *Inbound) (ReceiptContent, error) {
	m, err := s.openInbound(ctx, in)
	if err != nil {
		return ReceiptContent{}, err
	}
	env, p, b := m.env, m.payload, m.bytes
	hash := HashHex(b)
	receipt := ReceiptContent{Message: p.ID, Status: "accepted"}

	switch {
	case isEventType(p.Type):
		if !memberEventTypes[p.Type] {
			return receipt, httpapi.Forbidden("%s events are made by the host only", p.Type)
		}
		// An event for no conference hosted here is refused without a
		// write transaction: a peer's flood of them must not queue behind
		// the store's write lock ahead of real work (spec §3.4).
		if conf, err := s.store.GetConference(ctx, p.Conference); errors.Is(err, store.ErrNotFound) {
			return receipt, httpapi.NotFound("unknown conference %s", p.Conference)
		} else if err != nil {
			return receipt, err
		} else if conf.Host != s.did {
			return receipt, httpapi.Forbidden("conference %s is not hosted here", p.Conference)
		}
		ev := &event{env: env, payload: p, bytes: b, hash: hash}
		err = s.inTxRetry(ctx, func(tx store.Tx) error {
			dup, err := tx.RecordInbound(ctx, p.Origin, p.ID, hash, s.now())
			if err != nil || dup {
				receipt.Status = statusOf(dup)
				return err
			}
			receipt.Seq, _, err = s.appendEvent(ctx, tx, ev)
			return err
		})
		if err == nil && receipt.Status == "accepted" {
			s.notifyOutbox()
			s.logChanged(p.Conference)
		}
	case p.Type == TypeLog:
		err = s.receiveLog(ctx, p, hash, &receipt)
		if err == nil && receipt.Status == "accepted" {
			s.logChanged(p.Conference)
		}
	case p.Type == TypeSignal:
		err = s.receiveSignal(ctx, env, p, hash, &receipt)
	case p.Type == TypeRelay:
		err = s.receiveRelay(ctx, p, hash, &receipt)
	default:
		err = httpapi.BadRequest("%q is not a message a node receives in its inbox", p.Type)
	}
	if errors.Is(err, store.ErrConflict) {
		err = httpapi.Conflict("message %s conflicts with one already received", p.ID)
	}
	return receipt, err
}

func statusOf(dup bool) string {
	if dup {
		return "duplicate"
	}
	return "accepted"
}

// checkHeader applies the payload rules every message must meet here.
func (s *Service) checkHeader(p Payload, peer string) error {
	if p.Origin != peer {
		return httpapi.Unauthorized("payload origin %s is not the signing node %s", p.Origin, peer)
	}
	if p.Destination != s.did {
		return httpapi.Forbidden("message for %s, not this node", p.Destination)
	}
	if p.Sender != p.Origin {
		if _, err := senderUser(p); err != nil {
			return err
		}
	}
	now := s.now().UnixMilli()
	if p.Expires <= now {
		return httpapi.BadRequest("message %s expired", p.ID)
	}
	if p.Created > now+skewMillis {
		return httpapi.BadRequest("message %s was created in the future", p.ID)
	}
	return nil
}

const skewMillis = 300_000

// receiveLog applies a conference.log from the conference's host.
func (s *Service) receiveLog(ctx context.Context, p Payload, hash string, receipt *ReceiptContent) error {
	var c LogContent
	if err := decodeContent(p.Content, &c); err != nil {
		return err
	}
	if len(c.Records) == 0 {
		return httpapi.BadRequest("conference.log without records")
	}
	recs, err := s.verifyRecords(ctx, p.Origin, p.Conference, c.Records)
	if err != nil {
		return err
	}
	// Records this node missed are fetched from the host before these.
	if conf, err := s.store.GetConference(ctx, p.Conference); err == nil && conf.Host == p.Origin && recs[0].link.Seq > conf.HeadSeq+1 {
		missing, err := s.fetchRecords(ctx, p.Origin, p.Conference, conf.HeadSeq)
		if err != nil {
			return err
		}
		recs = append(missing, recs...)
	}
	return s.inTxRetry(ctx, func(tx store.Tx) error {
		dup, err := tx.RecordInbound(ctx, p.Origin, p.ID, hash, s.now())
		if err != nil || dup {
			receipt.Status = statusOf(dup)
			return err
		}
		receipt.Seq, err = s.applyRecords(ctx, tx, p.Origin, p.Conference, recs)
		return err
	})
}

// respond writes a 200 whose body is an envelope signed by this node, so the
// requester can prove what it was answered (spec §3.3).
func (s *Service) respond(w http.ResponseWriter, to, conference, typ string, content any) {
	p, err := s.newPayload(typ, to, s.did, conference, content)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	env, _, err := s.seal(p)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(env)
}

// memberNode authenticates a signed GET and checks that the requester takes
// part in a conference hosted here.
func (s *Service) memberNode(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	in, err := s.authenticate(r)
	if err != nil {
		s.refused(r, "", err)
		httpapi.WriteError(w, err)
		return "", "", false
	}
	id := r.PathValue("id")
	conf, err := s.store.GetConference(r.Context(), id)
	if err != nil || conf.Host != s.did {
		httpapi.WriteError(w, httpapi.NotFound("no conference %s hosted here", id))
		return "", "", false
	}
	if _, err := s.store.GetConferenceNode(r.Context(), id, in.PeerDID); err != nil {
		err = httpapi.Forbidden("%s was not invited to %s", in.PeerDID, id)
		s.refused(r, in.PeerDID, err)
		httpapi.WriteError(w, err)
		return "", "", false
	}
	return in.PeerDID, id, true
}

func (s *Service) serveRecords(w http.ResponseWriter, r *http.Request) {
	peer, id, ok := s.memberNode(w, r)
	if !ok {
		return
	}
	after, err := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
	if err != nil || after < 0 {
		httpapi.WriteError(w, httpapi.BadRequest("after must be a non-negative integer"))
		return
	}
	recs, err := s.store.ListRecords(r.Context(), id, after, maxRecordsPerMessage)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	content := LogContent{Records: []RecordJSON{}}
	for _, rec := range recs {
		rj, err := recordJSON(rec)
		if err != nil {
			httpapi.WriteError(w, err)
			return
		}
		content.Records = append(content.Records, rj)
	}
	s.respond(w, peer, id, TypeRecords, content)
}

// fetchRecords asks the host for the records after seq and verifies them.
func (s *Service) fetchRecords(ctx context.Context, host, conference string, after int64) ([]verifiedRecord, error) {
	var c LogContent
	if err := s.fetchSigned(ctx, host, fmt.Sprintf("/conferences/%s/records?after=%d", conference, after), TypeRecords, conference, &c); err != nil {
		return nil, err
	}
	return s.verifyRecords(ctx, host, conference, c.Records)
}

// fetchSigned makes a signed GET to a peer's federation API and opens the
// signed answer, which must come from that peer, for this node, of typ.
func (s *Service) fetchSigned(ctx context.Context, peer, path, typ, conference string, content any) error {
	endpoint, err := s.endpoint(ctx, peer)
	if err != nil {
		return err
	}
	status, body, err := s.client.Do(ctx, http.MethodGet, endpoint+path, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", peer, err)
	}
	s.heardFrom(ctx, peer)
	if status != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", peer, status, truncate(body, 200))
	}
	p, err := s.openAnswer(ctx, peer, body, typ)
	if err != nil {
		return err
	}
	if p.Conference != conference {
		return httpapi.Unauthorized("%s answered about %s, not %s", peer, p.Conference, conference)
	}
	return decodeContent(p.Content, content)
}

// openAnswer verifies a signed answer from peer to this node.
func (s *Service) openAnswer(ctx context.Context, peer string, body []byte, typ string) (Payload, error) {
	env, err := DecodeEnvelope(body)
	if err != nil {
		return Payload{}, err
	}
	if env.KeyDID() != peer {
		return Payload{}, httpapi.Unauthorized("answer signed by %s, not %s", env.KeyDID(), peer)
	}
	p, _, err := Open(ctx, env, s.keyOf)
	if err != nil {
		return Payload{}, err
	}
	if p.Origin != peer || p.Destination != s.did || p.Type != typ {
		return Payload{}, httpapi.Unauthorized("unexpected answer from %s: %s for %s", peer, p.Type, p.Destination)
	}
	return p, nil
}

// endpoint is a peer's federation endpoint from its DID document.
func (s *Service) endpoint(ctx context.Context, did string) (string, error) {
	peer, err := s.resolver.Resolve(ctx, did)
	if err != nil {
		return "", err
	}
	return peer.FederationEndpoint, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

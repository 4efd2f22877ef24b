package node

import (
	"context"
	"encoding/json"

	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
)

// This file is what the node does when federation or the SFU asks it
// something: one type per interface of federation/boundary.go, and the
// SFU's per-user ICE servers, and what the Matrix bridge asks of the node
// (chat into a conference, guests). media.Membership, media.Cascade and the
// bridge's Conferences are implemented in media.go and bridge.go.

// logWatcher implements federation.LogWatcher: a conference's log grew.
type logWatcher struct{ n *Node }

// LogChanged has the SFU recheck who may take part (a removal or an end
// closes their media), brings the Matrix room in line, and tells the
// functions registered with OnLogChange; the node's other replicas do the
// same (cluster.go).
func (w logWatcher) LogChanged(conference string) {
	n := w.n
	n.applyLogChange(conference)
	n.syncBridge(conference)
	n.publish(topicLog, []byte(conference))
}

// signalReceiver implements federation.SignalReceiver: a verified signal of
// a conference this node takes part in.
type signalReceiver struct{ n *Node }

// ReceiveSignal hands the signal to the Matrix bridge's queue (chat reaches
// Matrix without the delivery waiting for the homeserver, and lines keep
// their order), to every participant's client over its media WebSocket
// (spec/client-api.md §3, POST /conferences/{id}/signals), and to the
// functions registered with OnSignal; the node's other replicas hand it to
// their clients and functions too (cluster.go).
func (r signalReceiver) ReceiveSignal(sig federation.Signal) {
	n := r.n
	n.queueForBridge(sig)
	n.applySignal(sig)
	if n.replicas != nil {
		b, _ := json.Marshal(sig)
		n.publish(topicSignals, b)
	}
}

// trunkAnswerer implements federation.TrunkAnswerer with the node's SFU.
type trunkAnswerer struct{ n *Node }

// AnswerTrunk answers a member node's trunk offer with the SFU, which is
// created after federation, on the replica that runs the conference
// (replicatrunk.go); an offer the SFU cannot use is the member's error.
func (t trunkAnswerer) AnswerTrunk(ctx context.Context, conference, peer string, offer federation.TrunkOffer) (string, error) {
	if t.n.sfu == nil {
		return "", httpapi.NotFound("this node runs no SFU")
	}
	return t.n.answerTrunk(ctx, conference, peer, offer)
}

// turnCredentials implements media.UserICEServers with the embedded TURN
// server: each user gets credentials of their own, for a working day.
type turnCredentials struct{ n *Node }

func (c turnCredentials) ICEServersFor(user string) []webrtc.ICEServer {
	ice, err := c.n.turn.Credentials(user, turnCredentialTTL)
	if err != nil {
		c.n.log.Warn("turn credentials", "user", user, "err", err)
		return nil
	}
	return []webrtc.ICEServer{ice}
}

// matrixChat implements bridge.ChatSender: a Matrix user's chat enters the
// conference as a signal of the node itself, under the Matrix user's id
// (spec/federation.md §5.1).
type matrixChat struct{ n *Node }

func (c matrixChat) SendMatrixChat(ctx context.Context, conference, matrixUser, kind, text, ref string) (string, error) {
	sig, err := c.n.fed.SendSignal(ctx, localuser.User{}, conference,
		federation.SignalContent{Kind: kind, Text: text, Ref: ref, As: matrixUser})
	if err != nil {
		return "", err
	}
	return sig.ID, nil
}

// matrixGuests implements bridge.GuestIssuer with the node's accounts.
type matrixGuests struct{ n *Node }

func (g matrixGuests) IssueGuest(ctx context.Context, matrixUser string) (string, error) {
	return accounts.IssueMatrixGuest(ctx, g.n.store, matrixUser, g.n.now())
}

// LeaveGuest implements bridge.GuestLeaver: a Matrix user who joined the
// conference through Element Call's focus leaves it when they leave its
// call in Matrix. One in the call through the widget is left alone: the
// widget leaves by the client API, and may have joined again since.
func (g matrixGuests) LeaveGuest(ctx context.Context, conference, matrixUser string) error {
	if !g.n.focusJoined.take(conference, matrixUser) {
		return nil
	}
	u, err := accounts.MatrixGuest(ctx, g.n.store, matrixUser, g.n.now())
	if err != nil {
		return err
	}
	if !g.n.isParticipant(ctx, u, conference) {
		return nil
	}
	_, _, err = g.n.fed.Leave(ctx, u, conference)
	return err
}

// OnSignal registers fn to receive every verified signal (chat, hands,
// reactions, mute states) of the conferences this node takes part in, after
// the bridge and the SFU. fn must not block.
func (n *Node) OnSignal(fn func(federation.Signal)) {
	n.hooksMu.Lock()
	defer n.hooksMu.Unlock()
	n.signalHooks = append(n.signalHooks, fn)
}

// OnLogChange registers fn to be called when a conference's log grows. fn
// must not block.
func (n *Node) OnLogChange(fn func(conference string)) {
	n.hooksMu.Lock()
	defer n.hooksMu.Unlock()
	n.logHooks = append(n.logHooks, fn)
}

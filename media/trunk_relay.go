package media

import (
	"context"
	"strings"
	"time"
)

// Relay policy on a live trunk (spec/federation.md §10.5). A member node
// says in its offer whether the host may relay its participants' media to
// the other member nodes, and says it again on the control channel
// (`relay`) whenever the control channel opens and whenever its trust entry
// for the host changes, so a change reaches a live call at once instead of
// at the next setup. The host then withdraws that member's tracks from the
// other trunks, or offers them again, and tells the other members which
// participants' media is withheld from them.

const (
	// relayCheckInterval is how often a member's trunk reads its trust
	// entry for the host: a change made anywhere (admin API, CLI on the
	// same store) reaches the host within it.
	relayCheckInterval = 500 * time.Millisecond
	relayCheckTimeout  = 2 * time.Second
)

// relayTold values.
const (
	relayUnknown int32 = iota
	relayNo
	relayYes
)

// relayLoop runs on the member side for the trunk's lifetime: it reads the
// node's permission and tells the host when it differs from what the host
// was last told.
func (t *trunk) relayLoop() {
	tick := time.NewTicker(relayCheckInterval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-t.done:
			return
		case <-t.relayKick:
		case <-tick.C:
		}
		// The host keeps the last permission it was told while the node
		// cannot read its own; that is logged once, not twice a second.
		err := t.checkRelay()
		if err != nil && !failing {
			t.log.Warn("relay permission cannot be read; the host keeps the last one it was told", "err", err)
		} else if err == nil && failing {
			t.log.Info("relay permission readable again")
		}
		failing = err != nil
	}
}

func (t *trunk) checkRelay() error {
	ctx, cancel := context.WithTimeout(context.Background(), relayCheckTimeout)
	relay, err := t.set.sfu.opts.Cascade.MayRelay(ctx, t.conference)
	cancel()
	if err != nil {
		return err
	}
	want := relayNo
	if relay {
		want = relayYes
	}
	t.ctlMu.Lock()
	defer t.ctlMu.Unlock()
	if !t.open || t.relayTold == want {
		return nil
	}
	if t.relayTold != relayUnknown {
		t.log.Info("relay permission changed; telling the host", "relay", relay)
	}
	t.sendLocked(trunkRelayMsg{Relay: relay})
	t.relayTold = want
	return nil
}

// restateRelay makes the member tell the host its permission again, at
// once: the control channel has just opened.
func (t *trunk) restateRelay() {
	if !t.member {
		return
	}
	t.ctlMu.Lock()
	t.relayTold = relayUnknown
	t.ctlMu.Unlock()
	select {
	case t.relayKick <- struct{}{}:
	default:
	}
}

// setRelay applies a member's `relay` message on the host side.
func (t *trunk) setRelay(relay bool) {
	if t.member || t.replica || t.isClosed() {
		return
	}
	if t.relay.Swap(relay) == relay {
		return
	}
	t.log.Info("member changed its relay permission", "relay", relay)
	t.set.relayChanged(t, relay)
}

// relayChanged withdraws the tracks that came in on from from every other
// trunk of its conference, or offers them again, and tells the other
// members whether from's participants' media is withheld from them.
func (ts *trunkSet) relayChanged(from *trunk, relay bool) {
	from.mu.Lock()
	tracks := make([]*upTrack, 0, len(from.remote))
	for _, u := range from.remote {
		tracks = append(tracks, u)
	}
	people := make([]Participant, 0, len(from.people))
	for _, r := range from.people {
		people = append(people, r.p)
	}
	from.mu.Unlock()
	for _, o := range ts.conferenceTrunks(from.conference) {
		if o == from || o.replica {
			// The node's own replicas are not other members.
			continue
		}
		// Withheld: the media stops before anything else is said.
		// Allowed again: the marking is lifted before the tracks return.
		if !relay {
			for _, up := range tracks {
				o.withdraw(up)
			}
		}
		for _, p := range people {
			p = o.described(p)
			o.send(trunkParticipantUpdatedMsg{Participant: &p})
		}
		if relay {
			for _, up := range tracks {
				o.Notify(Event{Kind: TrackAdded, Track: up})
			}
		}
	}
}

// withdraw stops offering track to the peer: the slots carrying it are
// unbound, so its media stops at once, and the peer hears `track_removed`.
func (t *trunk) withdraw(track UpTrack) {
	t.mu.Lock()
	_, ok := t.offered[track.ID()]
	delete(t.offered, track.ID())
	delete(t.unmet, track.ID())
	var bound []*trunkSlot
	for _, s := range t.slots {
		s.mu.Lock()
		if s.up == track {
			bound = append(bound, s)
		}
		s.mu.Unlock()
	}
	t.mu.Unlock()
	for _, s := range bound {
		s.unbind()
		t.send(trunkUnbindMsg{Slot: s.mid})
	}
	if ok {
		t.send(trunkTrackRemovedMsg{Track: track.ID()})
	}
}

// described is p as this trunk's peer must see it: on the host side,
// marked when p's own node does not let the host relay its media, so that
// the peer's users know why they see and hear nothing of p.
func (t *trunk) described(p Participant) Participant {
	if t.replica && !t.member {
		// Another replica of this node shows p as this one does.
		return p
	}
	p.MediaWithheld = false
	if t.member {
		return p
	}
	if _, node, ok := strings.Cut(p.User, "@"); ok {
		if o := t.set.trunk(t.conference, node); o != nil && o != t && !o.member && !o.relay.Load() {
			p.MediaWithheld = true
		}
	}
	return p
}

// updateParticipant applies the host's new description of a participant
// already present here; only the host speaks for others (§10.4).
func (t *trunk) updateParticipant(p Participant) {
	if !t.member {
		return
	}
	t.mu.Lock()
	r, ok := t.people[p.User]
	if !ok || t.closed || r.p.MediaWithheld == p.MediaWithheld {
		t.mu.Unlock()
		return
	}
	r.p.MediaWithheld = p.MediaWithheld
	desc := r.p
	t.mu.Unlock()
	t.conf.update(r, desc)
}

// trunk returns the trunk of conference to peer, nil if there is none.
func (ts *trunkSet) trunk(conference, peer string) *trunk {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.trunks[trunkKey{conference, peer}]
}

// conferenceTrunks returns the trunks of conference.
func (ts *trunkSet) conferenceTrunks(conference string) []*trunk {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []*trunk
	for k, t := range ts.trunks {
		if k.conference == conference {
			out = append(out, t)
		}
	}
	return out
}

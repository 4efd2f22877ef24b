package media

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// What the peer's side brings here over a trunk: its participants and its
// tracks, present in the local conference like local ones, reconciled with
// the peer's `state` and deltas (spec/federation.md §10.4).

func (t *trunk) isOwnParticipant(user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.people[user]
	return ok
}

// applyState reconciles with the peer's full state.
func (t *trunk) applyState(m trunkStateMsg) {
	users := map[string]bool{}
	for _, p := range m.Participants {
		users[p.User] = true
		t.addParticipant(p)
	}
	tracks := map[string]bool{}
	for _, tr := range m.Tracks {
		tracks[tr.ID] = true
		t.addRemoteTrack(tr)
	}
	t.mu.Lock()
	var goneTracks, goneUsers []string
	for id := range t.remote {
		if !tracks[id] {
			goneTracks = append(goneTracks, id)
		}
	}
	for u := range t.people {
		if !users[u] {
			goneUsers = append(goneUsers, u)
		}
	}
	for u := range t.waiting {
		if !users[u] {
			delete(t.waiting, u)
		}
	}
	t.asked = map[string]layerSet{}
	t.mu.Unlock()
	for _, id := range goneTracks {
		t.dropRemoteTrack(id)
	}
	for _, u := range goneUsers {
		t.dropParticipant(u, false)
	}
}

// addParticipant makes a participant of the peer's side present here. A
// member may only speak for its own users, and only those the log admits;
// a member shows the host's participants only once its own replica holds
// their verified join (spec/federation.md §7, §10.4), and keeps the others
// waiting until the log changes. Its organisation is named by this node
// (spec/federation.md §2.1).
func (t *trunk) addParticipant(p Participant) {
	if p.User == "" || (!t.member && !strings.HasSuffix(p.User, "@"+t.users)) {
		t.log.Warn("trunk participant refused", "user", p.User)
		return
	}
	if !t.member {
		// Only the host says whose media is withheld, and from whom.
		p.MediaWithheld = false
	}
	t.mu.Lock()
	_, exists := t.people[p.User]
	stop := t.closed || t.removed[p.User]
	t.mu.Unlock()
	if exists {
		// A restated participant: its description may have changed.
		t.updateParticipant(p)
		return
	}
	if stop {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.set.sfu.opts.Membership.MayParticipate(ctx, t.conference, p.User); err != nil {
		if !t.member {
			t.log.Warn("trunk participant not admitted", "user", p.User, "err", err)
			return
		}
		t.mu.Lock()
		if !t.closed {
			t.waiting[p.User] = p
		}
		t.mu.Unlock()
		t.log.Info("participant announced by the host waits for a verified join", "user", p.User, "err", err)
		return
	}
	p.OrganisationLabel = ""
	if names := t.set.sfu.opts.Organisations; names != nil {
		if name := names.OrganisationOf(ctx, p.User, p.Organisation); name != p.Organisation {
			p.Organisation, p.OrganisationLabel = name, p.Organisation
		}
	}
	t.mu.Lock()
	if _, exists := t.people[p.User]; exists || t.closed || t.removed[p.User] {
		t.mu.Unlock()
		return
	}
	r := &remoteParticipant{trunk: t, p: p}
	t.people[p.User] = r
	t.mu.Unlock()
	t.set.sfu.router.join(t.conference, r, p)
}

// admitWaiting tries again the participants announced by the host whose
// join this node had not verified; the conference's log changed.
func (t *trunk) admitWaiting() {
	t.mu.Lock()
	waiting := make([]Participant, 0, len(t.waiting))
	for _, p := range t.waiting {
		waiting = append(waiting, p)
	}
	t.waiting = map[string]Participant{}
	t.mu.Unlock()
	for _, p := range waiting {
		t.addParticipant(p)
	}
}

// dropParticipant removes a participant of the peer's side and its tracks;
// with forbid, the peer cannot bring it back on this trunk.
func (t *trunk) dropParticipant(user string, forbid bool) {
	t.mu.Lock()
	r, ok := t.people[user]
	delete(t.people, user)
	delete(t.waiting, user)
	if forbid {
		t.removed[user] = true
	}
	var tracks []string
	for id, u := range t.remote {
		if u.info.Owner == user {
			tracks = append(tracks, id)
		}
	}
	t.mu.Unlock()
	for _, id := range tracks {
		t.dropRemoteTrack(id)
	}
	if ok {
		t.conf.leave(r, nil)
	}
}

func (t *trunk) addRemoteTrack(tr trunkTrack) {
	kind := webrtc.NewRTPCodecType(tr.Kind)
	if tr.ID == "" || kind == 0 {
		return
	}
	var levelID uint8
	if kind == webrtc.RTPCodecTypeAudio {
		levelID = t.receivedLevelID()
	}
	t.mu.Lock()
	if _, ok := t.remote[tr.ID]; ok || t.closed || t.removed[tr.Owner] {
		t.mu.Unlock()
		return
	}
	if _, ok := t.people[tr.Owner]; !ok && !t.member {
		// A member's tracks belong to its admitted participants.
		t.mu.Unlock()
		return
	}
	info := tr.TrackInfo
	info.Width, info.Height = tr.Width, tr.Height
	if info.Layers == nil {
		info.Layers = []string{}
	}
	if len(info.Layers) > maxLayers {
		info.Layers = info.Layers[:maxLayers]
	}
	codec := webrtc.RTPCodecCapability{MimeType: tr.Codec.MimeType, ClockRate: tr.Codec.ClockRate, Channels: tr.Codec.Channels, SDPFmtpLine: tr.Codec.SDPFmtpLine}
	u := newUpTrack(info, codec, kind, t.sendPLI, t.set.sfu.metrics, t.log)
	u.audioLevelID = levelID
	u.out = t.set.sfu.out
	t.remote[tr.ID] = u
	t.mu.Unlock()
	t.conf.publish(u)
}

func (t *trunk) dropRemoteTrack(id string) {
	t.mu.Lock()
	u, ok := t.remote[id]
	delete(t.remote, id)
	asked := t.asked[id]
	delete(t.asked, id)
	for _, rs := range t.rx {
		if b := rs.binding.Load(); b != nil && b.up == u {
			rs.binding.Store(nil)
		}
	}
	t.mu.Unlock()
	if ok {
		t.conf.unpublish(u)
	}
	if asked != 0 {
		// The sender stops at once, not when its own log catches up.
		t.send(trunkWantMsg{Track: id, Layers: []int{}})
	}
}

// remoteParticipant is a participant of the peer's side, present in the
// local conference so that clients see it join and leave.
type remoteParticipant struct {
	trunk *trunk
	p     Participant
}

// Notify implements Down: the trunk itself relays what the peer must hear.
func (r *remoteParticipant) Notify(Event) {}

// recheck removes the participant when the conference's log no longer
// admits it, so its media stops reaching local clients at once.
func (r *remoteParticipant) recheck(conference string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := r.trunk.set.sfu.opts.Membership.MayParticipate(ctx, conference, r.p.User)
	cancel()
	if errors.Is(err, ErrNotParticipant) || errors.Is(err, ErrConferenceEnded) {
		r.trunk.log.Info("remote participant removed", "user", r.p.User)
		r.trunk.dropParticipant(r.p.User, true)
	}
}

package livekit

import (
	"encoding/json"
	"time"

	lk "github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/media"
)

// The media.SessionHandler methods: each turns what the SFU says into
// LiveKit's SignalResponse (spec/client-api.md §8.3, §8.4). They run under
// the session's locks, so anything that calls the session goes to later.

// Joined sends the JoinResponse and subscribes to the tracks present when
// the client asked for auto-subscription.
func (p *participant) Joined(you media.Participant, others []media.Participant, tracks []media.TrackInfo, ice []webrtc.ICEServer) {
	p.mu.Lock()
	p.joined = true
	conf := p.adm.grant.Conference
	self := participantInfo(p.srv.named(conf, you))
	self.Permission.CanPublish = p.adm.grant.CanPublish
	self.Permission.CanPublishData = p.adm.grant.CanPublish
	self.Permission.CanSubscribe = p.adm.grant.CanSubscribe
	infos := make([]*lk.ParticipantInfo, 0, len(others))
	for _, o := range others {
		info := participantInfo(p.srv.named(conf, o))
		p.others[o.User] = info
		infos = append(infos, info)
	}
	var subscribe []string
	for _, t := range tracks {
		info, ok := p.others[t.Owner]
		if !ok {
			continue
		}
		p.owners[t.ID] = t.Owner
		info.Tracks = append(info.Tracks, trackInfo(t, ""))
		subscribe = append(subscribe, t.ID)
	}
	p.mu.Unlock()

	servers := make([]*lk.ICEServer, 0, len(ice))
	for _, s := range ice {
		cred, _ := s.Credential.(string)
		servers = append(servers, &lk.ICEServer{Urls: s.URLs, Username: s.Username, Credential: cred})
	}
	p.connMu.Lock()
	p.ice = servers
	p.connMu.Unlock()
	p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Join{Join: &lk.JoinResponse{
		Room:              &lk.Room{Sid: p.adm.grant.Conference, Name: p.adm.grant.Conference, CreationTime: time.Now().Unix()},
		Participant:       self,
		OtherParticipants: infos,
		ServerVersion:     ServerVersion,
		IceServers:        servers,
		// The client offers the publisher connection (with its data
		// channels) at once; the subscriber connection is offered by the
		// SFU when there is something to receive.
		SubscriberPrimary: false,
		PingInterval:      pingInterval,
		PingTimeout:       pingTimeout,
		ServerInfo: &lk.ServerInfo{
			Edition: lk.ServerInfo_Standard, Version: ServerVersion,
			Protocol: int32(p.adm.protocol), NodeId: "entente",
		},
	}}})
	if p.adm.auto && p.adm.grant.CanSubscribe {
		for _, id := range subscribe {
			p.later(func() { p.sess.Subscribe(id, 0, 0) })
		}
	}
}

// PublishAnswer answers the last publisher offer with its id, which
// livekit-client waits for to finish a negotiation.
func (p *participant) PublishAnswer(sdp string) {
	p.mu.Lock()
	id := p.offerID
	p.mu.Unlock()
	p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Answer{Answer: &lk.SessionDescription{Type: "answer", Sdp: sdp, Id: id}}})
}

// SubscribeOffer offers the subscriber connection, naming the track of
// each m-section (mid_to_track_id): livekit-client reads a track's sid from
// there when its ID does not look like LiveKit's own.
func (p *participant) SubscribeOffer(sdp string) {
	p.mu.Lock()
	p.subOfferID++
	id := p.subOfferID
	p.mu.Unlock()
	p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Offer{Offer: &lk.SessionDescription{
		Type: "offer", Sdp: sdp, Id: id, MidToTrackId: midToTrack(sdp),
	}}})
}

func (p *participant) Candidate(pc string, c webrtc.ICECandidateInit) {
	data, err := json.Marshal(c)
	if err != nil {
		return
	}
	target := lk.SignalTarget_PUBLISHER
	if pc == "subscribe" {
		target = lk.SignalTarget_SUBSCRIBER
	}
	p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Trickle{Trickle: &lk.TrickleRequest{
		CandidateInit: string(data), Target: target,
	}}})
}

func (p *participant) Error(code, message string) {
	p.log.Debug("request refused", "code", code, "message", message)
	p.refuseRequest(code + ": " + message)
}

// Closed ends the connection; a removal is announced with a LeaveRequest
// saying why, so that the client does not try to reconnect.
func (p *participant) Closed(reason string) {
	if reason == media.ReasonRestart {
		// The replica is draining: the client rejoins at once, through the
		// load balancer, on another replica (docs/replicas.md, "Drain").
		p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Leave{Leave: &lk.LeaveRequest{
			CanReconnect: true, Reason: lk.DisconnectReason_SERVER_SHUTDOWN, Action: lk.LeaveRequest_RECONNECT,
		}}})
	} else if reason != "" {
		why := lk.DisconnectReason_PARTICIPANT_REMOVED
		switch reason {
		case "ended":
			why = lk.DisconnectReason_ROOM_DELETED
		case "replaced":
			why = lk.DisconnectReason_DUPLICATE_IDENTITY
		}
		p.send(&lk.SignalResponse{Message: &lk.SignalResponse_Leave{Leave: &lk.LeaveRequest{
			Reason: why, Action: lk.LeaveRequest_DISCONNECT,
		}}})
	}
	p.mu.Lock()
	p.reason = reason
	p.mu.Unlock()
	p.finish()
}

// Event turns a change in the conference into a ParticipantUpdate (or
// SpeakersChanged) carrying the participant's whole new description.
func (p *participant) Event(ev media.Event) {
	p.mu.Lock()
	var update *lk.ParticipantInfo
	var subscribe string
	var mute *lk.SignalResponse
	switch ev.Kind {
	case media.ParticipantJoined, media.ParticipantUpdated:
		if ev.Participant.User == p.me.User {
			break
		}
		info := participantInfo(p.srv.named(p.adm.grant.Conference, ev.Participant))
		if old, ok := p.others[ev.Participant.User]; ok {
			info.Tracks, info.Version, info.JoinedAt = old.Tracks, old.Version+1, old.JoinedAt
		}
		p.others[ev.Participant.User] = info
		update = info
	case media.ParticipantLeft:
		info, ok := p.others[ev.Participant.User]
		if !ok {
			break
		}
		delete(p.others, ev.Participant.User)
		info.State = lk.ParticipantInfo_DISCONNECTED
		info.Version++
		update = info
	case media.TrackAdded, media.TrackRemoved, media.TrackMuted:
		t := ev.Track.Info()
		if own, ok := p.own[t.ID]; ok && t.Owner == p.me.User {
			// The SFU publishes a track when its media arrives; a mute
			// asked for before that (or in AddTrack) applies now.
			switch {
			case ev.Kind == media.TrackAdded:
				p.live[t.ID] = true
				if own.Muted {
					p.later(func() { p.sess.Mute(t.ID, true) })
				}
			case ev.Kind == media.TrackRemoved:
				delete(p.live, t.ID)
			case ev.Kind == media.TrackMuted && own.Muted != t.Muted:
				// Muted by the server API: the client is told to mute.
				own.Muted = t.Muted
				mute = &lk.SignalResponse{Message: &lk.SignalResponse_Mute{Mute: &lk.MuteTrackRequest{Sid: t.ID, Muted: t.Muted}}}
			}
			break
		}
		info, ok := p.others[t.Owner]
		if !ok {
			break
		}
		update = info
		info.Version++
		kept := info.Tracks[:0]
		for _, old := range info.Tracks {
			if old.Sid != t.ID {
				kept = append(kept, old)
			}
		}
		info.Tracks = kept
		if ev.Kind == media.TrackRemoved {
			delete(p.owners, t.ID)
			break
		}
		info.Tracks = append(info.Tracks, trackInfo(t, ev.Track.Codec().MimeType))
		if ev.Kind == media.TrackAdded {
			p.owners[t.ID] = t.Owner
			subscribe = t.ID
		}
	case media.SpeakerChanged:
		prev := p.speaker
		p.speaker = ev.Participant.User
		p.mu.Unlock()
		p.speakers(prev, ev.Participant.User)
		return
	}
	var msg *lk.SignalResponse
	if update != nil {
		msg = &lk.SignalResponse{Message: &lk.SignalResponse_Update{Update: &lk.ParticipantUpdate{
			Participants: []*lk.ParticipantInfo{cloneInfo(update)},
		}}}
	}
	p.mu.Unlock()
	if msg != nil {
		p.send(msg)
	}
	if mute != nil {
		p.send(mute)
	}
	if subscribe != "" && p.adm.auto && p.adm.grant.CanSubscribe {
		p.later(func() { p.sess.Subscribe(subscribe, 0, 0) })
	}
}

// speakers reports the loudest participant as the one active speaker.
func (p *participant) speakers(prev, now string) {
	var list []*lk.SpeakerInfo
	if prev != "" && prev != now {
		list = append(list, &lk.SpeakerInfo{Sid: prev, Level: 0, Active: false})
	}
	if now != "" {
		list = append(list, &lk.SpeakerInfo{Sid: now, Level: 1, Active: true})
	}
	p.send(&lk.SignalResponse{Message: &lk.SignalResponse_SpeakersChanged{SpeakersChanged: &lk.SpeakersChanged{Speakers: list}}})
}

// participantInfo describes a participant the LiveKit way. The participant's
// sid is its Entente user reference: the SFU's streams carry it as their
// stream ID, which LiveKit clients read as the publisher's sid. Its identity
// is the same, unless it joined under another LiveKit identity
// (spec/client-api.md §8.4).
func participantInfo(m media.Participant) *lk.ParticipantInfo {
	meta, _ := json.Marshal(map[string]string{"organisation": m.Organisation})
	return &lk.ParticipantInfo{
		Sid: m.User, Identity: liveKitIdentity(m), Name: m.DisplayName,
		State: lk.ParticipantInfo_ACTIVE, JoinedAt: time.Now().Unix(),
		Metadata:   string(meta),
		Attributes: map[string]string{AttrOrganisation: m.Organisation, AttrUser: m.User},
		Permission: &lk.ParticipantPermission{CanSubscribe: true, CanPublish: true, CanPublishData: true},
		Version:    1,
		Kind:       lk.ParticipantInfo_STANDARD,
	}
}

// liveKitIdentity is the identity LiveKit clients know m by.
func liveKitIdentity(m media.Participant) string {
	if m.LiveKitIdentity != "" {
		return m.LiveKitIdentity
	}
	return m.User
}

func cloneInfo(i *lk.ParticipantInfo) *lk.ParticipantInfo {
	c := &lk.ParticipantInfo{
		Sid: i.Sid, Identity: i.Identity, Name: i.Name, State: i.State, JoinedAt: i.JoinedAt,
		Metadata: i.Metadata, Attributes: i.Attributes, Permission: i.Permission,
		Version: i.Version, Kind: i.Kind,
	}
	c.Tracks = append(c.Tracks, i.Tracks...)
	return c
}

// trackInfo describes a track the LiveKit way; its sid is the SFU's track
// ID, which the SFU's streams carry as their track ID.
func trackInfo(t media.TrackInfo, mime string) *lk.TrackInfo {
	info := &lk.TrackInfo{
		Sid: t.ID, Name: t.Source, Muted: t.Muted, MimeType: mime,
		Width: uint32(t.Width), Height: uint32(t.Height), Simulcast: len(t.Layers) > 1,
	}
	switch t.Kind {
	case "audio":
		info.Type, info.Source = lk.TrackType_AUDIO, lk.TrackSource_MICROPHONE
		info.Width, info.Height = 0, 0
	default:
		info.Type, info.Source = lk.TrackType_VIDEO, lk.TrackSource_CAMERA
		if t.Source == "screen" {
			info.Source = lk.TrackSource_SCREEN_SHARE
		}
	}
	return info
}

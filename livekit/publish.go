package livekit

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	lk "github.com/livekit/protocol/livekit"
	"github.com/pion/sdp/v3"

	"github.com/entente-org/entente/media"
)

// maxPending bounds AddTrack requests waiting for their m-section.
const maxPending = 16

// addTrack answers AddTrackRequest with the sid the track will have; its
// media is matched to it in the next publisher offer by the cid, which is
// the track ID in the m-section's msid (spec/client-api.md §8.3).
func (p *participant) addTrack(req *lk.AddTrackRequest) {
	if !p.adm.grant.CanPublish {
		p.refuseRequest("the access token does not grant canPublish")
		return
	}
	if req.GetCid() == "" {
		p.refuseRequest("AddTrackRequest without cid")
		return
	}
	kind, source, err := trackKind(req)
	if err != nil {
		p.refuseRequest(err.Error())
		return
	}
	p.mu.Lock()
	if len(p.pending) >= maxPending {
		p.mu.Unlock()
		p.refuseRequest("too many tracks announced and not yet offered")
		return
	}
	sid := "TR_" + randomID()
	p.pending[req.GetCid()] = pendingTrack{sid: sid, req: req}
	info := &lk.TrackInfo{
		Sid: sid, Type: req.GetType(), Name: req.GetName(), Muted: req.GetMuted(),
		Width: req.GetWidth(), Height: req.GetHeight(), Source: req.GetSource(),
		Simulcast: len(req.GetLayers()) > 1, Layers: req.GetLayers(), Stream: req.GetStream(),
	}
	p.own[sid] = info
	p.mu.Unlock()
	p.log.Debug("track announced", "cid", req.GetCid(), "track", sid, "kind", kind, "source", source)
	p.send(&lk.SignalResponse{Message: &lk.SignalResponse_TrackPublished{TrackPublished: &lk.TrackPublishedResponse{
		Cid: req.GetCid(), Track: info,
	}}})
}

// trackKind maps LiveKit's track type and source to Entente's
// (spec/client-api.md §5.2 publish_offer).
func trackKind(req *lk.AddTrackRequest) (kind, source string, err error) {
	switch req.GetType() {
	case lk.TrackType_AUDIO:
		return "audio", "microphone", nil
	case lk.TrackType_VIDEO:
		if req.GetSource() == lk.TrackSource_SCREEN_SHARE {
			return "video", "screen", nil
		}
		return "video", "camera", nil
	}
	return "", "", fmt.Errorf("track type %s is not supported (audio and video are)", req.GetType())
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// offer passes a publisher offer to the session with the tracks whose
// m-section it newly carries. A published track whose m-section no longer
// sends (the client unpublished it, LiveKit's way) is unpublished first.
func (p *participant) offer(sd *lk.SessionDescription) {
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(sd.GetSdp()); err != nil {
		p.refuseRequest("publisher offer does not parse as SDP: " + err.Error())
		return
	}
	var tracks []media.Announcement
	var gone []string
	p.mu.Lock()
	p.offerID = sd.GetId()
	for _, m := range parsed.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		if sid, ok := p.mids[mid]; ok && mid != "" {
			if !sends(m) {
				gone = append(gone, sid)
				delete(p.mids, mid)
				delete(p.own, sid)
			}
			continue
		}
		cid := msidTrack(m)
		pt, ok := p.pending[cid]
		if mid == "" || !ok {
			continue
		}
		delete(p.pending, cid)
		p.mids[mid] = pt.sid
		kind, source, _ := trackKind(pt.req)
		_, simulcast := m.Attribute("simulcast")
		tracks = append(tracks, media.Announcement{
			ID: pt.sid, Mid: mid, Kind: kind, Source: source, Simulcast: simulcast && kind == "video",
			Width: int(pt.req.GetWidth()), Height: int(pt.req.GetHeight()),
		})
	}
	p.mu.Unlock()
	for _, sid := range gone {
		p.sess.Unpublish(sid)
	}
	p.sess.PublishOffer(sd.GetSdp(), tracks)
}

// sends reports whether an m-section of a publisher offer still sends media.
func sends(m *sdp.MediaDescription) bool {
	if m.MediaName.Port.Value == 0 {
		return false
	}
	for _, a := range []string{"inactive", "recvonly"} {
		if _, ok := m.Attribute(a); ok {
			return false
		}
	}
	return true
}

// midToTrack maps each m-section of an SDP to the track ID of its msid.
func midToTrack(s string) map[string]string {
	var parsed sdp.SessionDescription
	if parsed.UnmarshalString(s) != nil {
		return nil
	}
	out := make(map[string]string)
	for _, m := range parsed.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		if track := msidTrack(m); mid != "" && track != "" {
			out[mid] = track
		}
	}
	return out
}

// msidTrack is the track ID of an m-section's msid ("a=msid:<stream>
// <track>"), which LiveKit clients set to the AddTrack cid.
func msidTrack(m *sdp.MediaDescription) string {
	v, ok := m.Attribute("msid")
	if !ok {
		return ""
	}
	_, track, found := strings.Cut(v, " ")
	if !found {
		return ""
	}
	return strings.TrimSpace(track)
}

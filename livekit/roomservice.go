package livekit

import (
	"context"
	"net/http"

	"github.com/livekit/protocol/auth"
	lk "github.com/livekit/protocol/livekit"
	"github.com/twitchtv/twirp"
)

// roomService is the part of LiveKit's RoomService server API (Twirp, at
// /twirp/livekit.RoomService/) that a front end's backend needs to run a
// meeting: list participants, remove one, mute a track
// (spec/client-api.md §8.7). Rooms are conferences; they are made and
// ended through Entente, not here.
type roomService struct{ s *Server }

type adminKey struct{}

// roomServiceHandler authenticates each call with an access token granting
// roomAdmin, as LiveKit's server does, before Twirp decodes it.
func (s *Server) roomServiceHandler() http.Handler {
	twirpServer := lk.NewRoomServiceServer(roomService{s})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		grants, err := s.verifyAdmin(tokenOf(r))
		if err != nil {
			writeTwirpError(w, twirp.Unauthenticated, err.Error())
			return
		}
		twirpServer.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey{}, grants)))
	})
}

func writeTwirpError(w http.ResponseWriter, code twirp.ErrorCode, msg string) {
	_ = twirp.WriteError(w, twirp.NewError(code, msg))
}

// verifyAdmin checks a server API token: signature, issuer and expiry.
func (s *Server) verifyAdmin(raw string) (*auth.ClaimGrants, error) {
	if raw == "" {
		return nil, refuse(http.StatusUnauthorized, "no access token: send it as an Authorization bearer token")
	}
	v, err := auth.ParseAPIToken(raw)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, "access token is not a JWT: %v", err)
	}
	if v.APIKey() != s.opts.APIKey {
		return nil, refuse(http.StatusUnauthorized, "access token signed with unknown API key %q", v.APIKey())
	}
	_, grants, err := v.Verify(s.opts.APISecret)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, "access token refused: %v", err)
	}
	return grants, nil
}

// admin refuses a call whose token does not grant roomAdmin on room.
func admin(ctx context.Context, room string) error {
	g, _ := ctx.Value(adminKey{}).(*auth.ClaimGrants)
	if g == nil || g.Video == nil || !g.Video.RoomAdmin || g.Video.Room != room {
		return twirp.NewError(twirp.PermissionDenied, "the access token does not grant roomAdmin on room "+room)
	}
	if room == "" {
		return twirp.NewError(twirp.InvalidArgument, "room is required")
	}
	return nil
}

func (rs roomService) participants(room string) []*lk.ParticipantInfo {
	ps, tracks := rs.s.opts.SFU.Participants(room)
	out := make([]*lk.ParticipantInfo, 0, len(ps))
	for _, p := range ps {
		info := participantInfo(rs.s.named(room, p))
		for _, t := range tracks {
			if t.Owner == p.User {
				info.Tracks = append(info.Tracks, trackInfo(t, ""))
			}
		}
		out = append(out, info)
	}
	return out
}

func (rs roomService) ListParticipants(ctx context.Context, req *lk.ListParticipantsRequest) (*lk.ListParticipantsResponse, error) {
	if err := admin(ctx, req.GetRoom()); err != nil {
		return nil, err
	}
	return &lk.ListParticipantsResponse{Participants: rs.participants(req.GetRoom())}, nil
}

func (rs roomService) GetParticipant(ctx context.Context, req *lk.RoomParticipantIdentity) (*lk.ParticipantInfo, error) {
	if err := admin(ctx, req.GetRoom()); err != nil {
		return nil, err
	}
	for _, p := range rs.participants(req.GetRoom()) {
		if p.Identity == req.GetIdentity() {
			return p, nil
		}
	}
	return nil, twirp.NewError(twirp.NotFound, "participant "+req.GetIdentity()+" is not in room "+req.GetRoom())
}

// RemoveParticipant disconnects the participant's media sessions on this
// node, as LiveKit does; removing them from the conference is a
// moderator's act in Entente.
func (rs roomService) RemoveParticipant(ctx context.Context, req *lk.RoomParticipantIdentity) (*lk.RemoveParticipantResponse, error) {
	if err := admin(ctx, req.GetRoom()); err != nil {
		return nil, err
	}
	user := req.GetIdentity()
	for _, p := range rs.participants(req.GetRoom()) {
		if p.Identity == user {
			user = p.Sid // the user reference (§8.4)
			break
		}
	}
	if rs.s.opts.SFU.Disconnect(req.GetRoom(), user, "removed") == 0 {
		return nil, twirp.NewError(twirp.NotFound, "participant "+req.GetIdentity()+" has no media session in room "+req.GetRoom()+" on this node")
	}
	return &lk.RemoveParticipantResponse{}, nil
}

func (rs roomService) MutePublishedTrack(ctx context.Context, req *lk.MuteRoomTrackRequest) (*lk.MuteRoomTrackResponse, error) {
	if err := admin(ctx, req.GetRoom()); err != nil {
		return nil, err
	}
	if !rs.s.opts.SFU.SetTrackMuted(req.GetRoom(), req.GetTrackSid(), req.GetMuted()) {
		return nil, twirp.NewError(twirp.NotFound, "no track "+req.GetTrackSid()+" in room "+req.GetRoom())
	}
	_, tracks := rs.s.opts.SFU.Participants(req.GetRoom())
	for _, t := range tracks {
		if t.ID == req.GetTrackSid() {
			return &lk.MuteRoomTrackResponse{Track: trackInfo(t, "")}, nil
		}
	}
	return &lk.MuteRoomTrackResponse{}, nil
}

func unimplemented(method string) error {
	return twirp.NewError(twirp.Unimplemented, method+" is not supported by this server: rooms are Entente conferences")
}

func (roomService) CreateRoom(context.Context, *lk.CreateRoomRequest) (*lk.Room, error) {
	return nil, unimplemented("CreateRoom")
}

func (roomService) ListRooms(context.Context, *lk.ListRoomsRequest) (*lk.ListRoomsResponse, error) {
	return nil, unimplemented("ListRooms")
}

func (roomService) DeleteRoom(context.Context, *lk.DeleteRoomRequest) (*lk.DeleteRoomResponse, error) {
	return nil, unimplemented("DeleteRoom")
}

func (roomService) UpdateParticipant(context.Context, *lk.UpdateParticipantRequest) (*lk.ParticipantInfo, error) {
	return nil, unimplemented("UpdateParticipant")
}

func (roomService) UpdateSubscriptions(context.Context, *lk.UpdateSubscriptionsRequest) (*lk.UpdateSubscriptionsResponse, error) {
	return nil, unimplemented("UpdateSubscriptions")
}

func (roomService) SendData(context.Context, *lk.SendDataRequest) (*lk.SendDataResponse, error) {
	return nil, unimplemented("SendData")
}

func (roomService) UpdateRoomMetadata(context.Context, *lk.UpdateRoomMetadataRequest) (*lk.Room, error) {
	return nil, unimplemented("UpdateRoomMetadata")
}

func (roomService) ForwardParticipant(context.Context, *lk.ForwardParticipantRequest) (*lk.ForwardParticipantResponse, error) {
	return nil, unimplemented("ForwardParticipant")
}

func (roomService) MoveParticipant(context.Context, *lk.MoveParticipantRequest) (*lk.MoveParticipantResponse, error) {
	return nil, unimplemented("MoveParticipant")
}

func (roomService) PerformRpc(context.Context, *lk.PerformRpcRequest) (*lk.PerformRpcResponse, error) {
	return nil, unimplemented("PerformRpc")
}

// AdminRoomOf returns the room a RoomService call's verified token grants
// roomAdmin on: a node of several replicas sends the call to the replica
// running that conference, where its participants are.
func (s *Server) AdminRoomOf(r *http.Request) (string, error) {
	g, err := s.verifyAdmin(tokenOf(r))
	if err != nil {
		return "", err
	}
	if g.Video == nil || g.Video.Room == "" {
		return "", refuse(http.StatusForbidden, "the access token grants no room")
	}
	return g.Video.Room, nil
}

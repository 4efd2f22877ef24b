package media

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// trunkControlVector is one entry of spec/vectors/trunk-control.json: a
// control message exactly as it goes on the wire, and the same message
// parsed, for readers.
type trunkControlVector struct {
	Type        ctlType         `json:"type"`
	Description string          `json:"description"`
	Wire        string          `json:"wire"`
	Message     json.RawMessage `json:"message"`
}

// vectorMessages are the messages of spec/vectors/trunk-control.json as
// this node builds them.
func vectorMessages() map[ctlType]controlMessage {
	alice := Participant{User: "alice@did:web:ministry.example", DisplayName: "Alice Martin", Organisation: "Ministry of Transport"}
	bob := Participant{User: "bob@did:web:agency.example", DisplayName: "Bob Weber", Organisation: "Federal Agency"}
	withheld := bob
	withheld.MediaWithheld = true
	video := trunkTrack{TrackInfo: TrackInfo{ID: "t-4f1c9a", Owner: alice.User, Kind: "video", Source: "camera", Layers: []string{"q", "h", "f"}},
		Width: 1280, Height: 720, Codec: trunkCodec{MimeType: "video/VP8", ClockRate: 90000}}
	audio := trunkTrack{TrackInfo: TrackInfo{ID: "t-8b2e07", Owner: bob.User, Kind: "audio", Source: "microphone", Layers: []string{}},
		Codec: trunkCodec{MimeType: "audio/opus", ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}}
	return map[ctlType]controlMessage{
		ctlState:              trunkStateMsg{Participants: []Participant{alice}, Tracks: []trunkTrack{video}},
		ctlParticipantJoined:  trunkParticipantJoinedMsg{Participant: &bob},
		ctlParticipantUpdated: trunkParticipantUpdatedMsg{Participant: &withheld},
		ctlParticipantLeft:    trunkParticipantLeftMsg{User: bob.User},
		ctlTrackAdded:         trunkTrackAddedMsg{Info: &audio},
		ctlTrackRemoved:       trunkTrackRemovedMsg{Track: audio.ID},
		ctlTrackMuted:         trunkTrackMutedMsg{Track: audio.ID, Muted: true},
		ctlWant:               trunkWantMsg{Track: video.ID, Layers: []int{0, 2}},
		ctlRates: trunkRatesMsg{Rates: map[string][]uint64{video.ID: {150000, 0, 1200000}},
			Estimate: 1400000, Loss: 0.02, Dropped: map[string][]int{video.ID: {2}}},
		ctlBind:    trunkBindMsg{Slot: "3", Track: video.ID, Layer: 2},
		ctlUnbind:  trunkUnbindMsg{Slot: "3"},
		ctlGrow:    trunkGrowMsg{Kind: "video", Slots: 16},
		ctlRelay:   trunkRelayMsg{Relay: false},
		ctlRefused: trunkRefusedMsg{Track: video.ID, Layer: 1, Reason: "no free slot"},
		ctlData:    trunkDataMsg{From: alice.User, To: []string{bob.User}, Reliable: true, Payload: []byte("hello")},
	}
}

// TestTrunkControlVectors checks spec/vectors/trunk-control.json: each
// message type has one vector, this node encodes the message to exactly
// its bytes, and decodes the bytes back to the same message.
func TestTrunkControlVectors(t *testing.T) {
	raw, err := os.ReadFile("../spec/vectors/trunk-control.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []trunkControlVector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatalf("spec/vectors/trunk-control.json: %v", err)
	}
	want := vectorMessages()
	seen := map[ctlType]bool{}
	for _, v := range vectors {
		if seen[v.Type] {
			t.Errorf("%s: two vectors", v.Type)
		}
		seen[v.Type] = true
		m, ok := want[v.Type]
		if !ok {
			t.Errorf("%s: a vector of a type this node does not know", v.Type)
			continue
		}
		got, err := marshalControl(m)
		if err != nil {
			t.Errorf("%s: encode: %v", v.Type, err)
		} else if string(got) != v.Wire {
			t.Errorf("%s: encoded\n%s\nthe vector is\n%s", v.Type, got, v.Wire)
		}
		decoded, err := decodeControl([]byte(v.Wire))
		if err != nil {
			t.Errorf("%s: decode: %v", v.Type, err)
		} else if !reflect.DeepEqual(decoded, m) {
			t.Errorf("%s: decoded %#v, want %#v", v.Type, decoded, m)
		}
		// The readable form is the same message.
		var compact bytes.Buffer
		if err := json.Compact(&compact, v.Message); err != nil {
			t.Errorf("%s: message: %v", v.Type, err)
		} else if a, b := canonical(t, compact.Bytes()), canonical(t, []byte(v.Wire)); a != b {
			t.Errorf("%s: message %s differs from wire %s", v.Type, a, b)
		}
	}
	for typ := range want {
		if !seen[typ] {
			t.Errorf("%s: no vector", typ)
		}
	}
}

func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Empty lists are left out of a state, and a want for nothing says [].
func TestTrunkControlEmpty(t *testing.T) {
	for _, c := range []struct {
		m    controlMessage
		wire string
	}{
		{trunkStateMsg{Participants: []Participant{}, Tracks: []trunkTrack{}}, `{"type":"state","layer":0}`},
		{trunkWantMsg{Track: "t", Layers: []int{}}, `{"type":"want","track":"t","layers":[]}`},
		{trunkRelayMsg{Relay: true}, `{"type":"relay","relay":true}`},
	} {
		got, err := marshalControl(c.m)
		if err != nil || string(got) != c.wire {
			t.Errorf("%T: got %s, %v; want %s", c.m, got, err, c.wire)
		}
	}
}

func TestTrunkControlDecodeRefusals(t *testing.T) {
	for _, c := range []struct {
		in      string
		wantErr string
	}{
		{`not json`, "invalid character"},
		{`{"type":`, "unexpected end"},
		{`{"type":7}`, "cannot unmarshal number"},
		{`{"type":"bind","layer":"two"}`, "bind: json: cannot unmarshal string"},
		{`{"type":"want","track":"` + strings.Repeat("x", maxControlMessage) + `"}`, "too large"},
	} {
		m, err := decodeControl([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || m != nil {
			t.Errorf("%.40s: got %v, %v; want an error with %q", c.in, m, err, c.wantErr)
		}
	}
	if _, err := decodeControl([]byte(`{"type":"want","track":"` + strings.Repeat("x", maxControlMessage) + `"}`)); !errors.Is(err, errControlTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	// Unknown types are ignored, so either side may add messages later.
	if m, err := decodeControl([]byte(`{"type":"something-new","x":1}`)); m != nil || err != nil {
		t.Errorf("unknown type: got %v, %v", m, err)
	}
}

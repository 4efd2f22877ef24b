package scenario

import "github.com/entente-org/entente/internal/mediabench"

// Report is the JSON that `entente bench media` prints.
type Report struct {
	Scenario Scenario `json:"scenario"`
	// CPU is the whole process's: the nodes share it, so it is not split
	// per node; forwarded packets are given per node.
	ServerCPUPerPacket *float64 `json:"server_cpu_us_per_forwarded_packet"`
	// The SFU counts a packet as forwarded to every subscriber of the
	// track, whichever simulcast layer it selected; per packet the clients
	// received is the cost of what was actually delivered.
	ServerCPUPerReceived *float64 `json:"server_cpu_us_per_received_packet"`
	// ServerUserCPUPerPacket is the user-space part: on loopback the
	// kernel time of a send includes delivering the packet to the
	// receiving socket, which on a real network the receiver's host pays.
	ServerUserCPUPerPacket *float64           `json:"server_user_cpu_us_per_forwarded_packet"`
	ServerCPUMillis        float64            `json:"server_cpu_ms"`
	ForwardedPackets       map[string]int64   `json:"forwarded_packets"`
	ServerMallocsPerPacket *float64           `json:"server_mallocs_per_forwarded_packet"`
	PacketsSent            int64              `json:"packets_sent"`
	PacketsReceived        int64              `json:"packets_received"`
	PacketsLost            int64              `json:"packets_lost"`
	Subscriptions          int                `json:"subscriptions"`
	SubscriptionsNoMedia   int                `json:"subscriptions_without_media"`
	UDPRcvbufErrors        int64              `json:"udp_rcvbuf_errors"`
	Latency                mediabench.Summary `json:"latency_ms"`
	JoinToFirstFrame       mediabench.Summary `json:"join_to_first_frame_ms"`
	// TrunkEfficiency is the payload bytes sent on trunks divided by the
	// payload bytes of the tracks wanted across them (each once per trunk,
	// at the layer its subscribers there received); 1 is ideal, and it must
	// not grow with the number of remote subscribers. Null with one node.
	TrunkEfficiency *float64 `json:"trunk_efficiency"`
	// UDPFloor is the CPU one thread spends to send one datagram of the
	// run's mean forwarded size to as many loopback sockets as a track has
	// subscribers, without WebRTC: no SFU forwards a packet for less.
	// Measured after the clients have gone.
	UDPFloor *mediabench.Floor `json:"udp_floor"`
	Clients  string            `json:"clients"`
	Cores    int               `json:"cores"`
	Go       string            `json:"go"`
}

// Scenario is what was run, as the flags gave it.
type Scenario struct {
	Nodes       int `json:"nodes"`
	Conferences int `json:"conferences"`
	Publishers  int `json:"publishers"`
	Subscribers int `json:"subscribers"`
	Meeting     int `json:"meeting"`
	// VideoPublishers is, in a meeting, how many participants per
	// conference publish a camera besides their microphone.
	VideoPublishers int     `json:"video_publishers,omitempty"`
	Participants    int     `json:"participants"`
	DurationS       float64 `json:"duration_s"`
	Simulcast       bool    `json:"simulcast"`
	UDP             string  `json:"udp"`
	// ClientKind is the kind of client every participant was: "native"
	// (Entente's signalling, spec/client-api.md §5) or "livekit" (LiveKit's
	// Go SDK against the node's LiveKit signalling, §8).
	ClientKind string `json:"client_kind"`
}

// Comparison is what `bench media --clients both` prints: the same
// scenario measured with each kind of client on the same nodes.
type Comparison struct {
	Native  Report `json:"native"`
	LiveKit Report `json:"livekit"`
}

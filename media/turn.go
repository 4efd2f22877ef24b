package media

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
)

// TURNOptions configure the optional embedded TURN server, for browsers
// behind firewalls that let no UDP through to the SFU directly.
type TURNOptions struct {
	// Listen is the UDP address the TURN server listens on (host:port).
	Listen string
	// RelayIP is the address relays are announced at: the node's public IP.
	RelayIP string
	// Realm names the server in the TURN exchange; the node's host name.
	Realm string
	// Secret signs the short-lived credentials the node hands its users
	// (TURN REST API). Empty: a random one per start.
	Secret string
	// Peers are the only addresses relays may send to: the SFU's own. A relay
	// must never become a way into the node's network or anyone else's.
	Peers []netip.Addr
}

// TURNServer is the embedded TURN server.
type TURNServer struct {
	srv    *turn.Server
	conn   net.PacketConn
	secret string
	realm  string
	url    string
}

// StartTURN starts the embedded TURN server.
func StartTURN(o TURNOptions) (*TURNServer, error) {
	relay, err := netip.ParseAddr(o.RelayIP)
	if err != nil {
		return nil, fmt.Errorf("turn: relay address %q: %w", o.RelayIP, err)
	}
	if len(o.Peers) == 0 {
		return nil, errors.New("turn: no peer address: relays would have nowhere to go")
	}
	if o.Realm == "" {
		return nil, errors.New("turn: realm is required")
	}
	if o.Secret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		o.Secret = hex.EncodeToString(b)
	}
	conn, err := net.ListenPacket("udp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("turn: %w", err)
	}
	host, _, _ := net.SplitHostPort(o.Listen)
	allowed := map[netip.Addr]bool{}
	for _, p := range o.Peers {
		allowed[p.Unmap()] = true
	}
	permit := func(_ net.Addr, peer net.IP) bool {
		a, ok := netip.AddrFromSlice(peer)
		return ok && allowed[a.Unmap()]
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         o.Realm,
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(o.Secret, quietLogger{}),
		LoggerFactory: quietFactory{},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:        conn,
			PermissionHandler: permit,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
				RelayAddress: net.IP(relay.AsSlice()),
				Address:      host,
			},
		}},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("turn: %w", err)
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	return &TURNServer{
		srv: srv, conn: conn, secret: o.Secret, realm: o.Realm,
		url: "turn:" + net.JoinHostPort(relay.String(), strconv.Itoa(port)) + "?transport=udp",
	}, nil
}

// Addr is the UDP address the server listens on.
func (t *TURNServer) Addr() net.Addr { return t.conn.LocalAddr() }

// Credentials gives user short-lived TURN credentials (TURN REST API:
// "<expiry>:<opaque id>" signed with the server's secret), as the ICE server
// entry a browser needs.
func (t *TURNServer) Credentials(user string, ttl time.Duration) (webrtc.ICEServer, error) {
	sum := sha256.Sum256([]byte(user))
	username, password, err := turn.GenerateLongTermTURNRESTCredentials(t.secret, hex.EncodeToString(sum[:8]), ttl)
	if err != nil {
		return webrtc.ICEServer{}, err
	}
	return webrtc.ICEServer{URLs: []string{t.url}, Username: username, Credential: password}, nil
}

// Close stops the server and its relays.
func (t *TURNServer) Close() error { return t.srv.Close() }

// quietFactory keeps pion/turn's own logging off: it logs failed
// authentications at error level, which any client can provoke.
type quietFactory struct{}

func (quietFactory) NewLogger(string) logging.LeveledLogger { return quietLogger{} }

type quietLogger struct{}

func (quietLogger) Trace(string)          {}
func (quietLogger) Tracef(string, ...any) {}
func (quietLogger) Debug(string)          {}
func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Info(string)           {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warn(string)           {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Error(string)          {}
func (quietLogger) Errorf(string, ...any) {}

// iceServers are the STUN and TURN servers a user's client is given.
func (s *SFU) iceServers(user string) []webrtc.ICEServer {
	servers := append([]webrtc.ICEServer{}, s.opts.ICEServers...)
	if s.opts.UserICEServers != nil {
		servers = append(servers, s.opts.UserICEServers.ICEServersFor(user)...)
	}
	return servers
}

package media

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

func startTestTURN(t *testing.T) *TURNServer {
	t.Helper()
	srv, err := StartTURN(TURNOptions{
		Listen: "127.0.0.1:0", RelayIP: "127.0.0.1", Realm: "ministry.example",
		Peers: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// allocate makes a TURN client with the given credentials and asks for a relay.
func allocate(t *testing.T, srv *TURNServer, user, pass string) (net.PacketConn, *turn.Client, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: srv.Addr().String(), TURNServerAddr: srv.Addr().String(),
		Username: user, Password: pass, Realm: "ministry.example", Conn: conn,
		LoggerFactory: quietFactory{}, RTO: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err == nil {
		t.Cleanup(func() { relay.Close() })
	}
	return relay, c, err
}

func TestTURNRelaysOnlyToTheSFU(t *testing.T) {
	srv := startTestTURN(t)
	ice, err := srv.Credentials("alice@did:web:ministry.example", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := "turn:127.0.0.1:" + portOf(srv.Addr()) + "?transport=udp"
	if len(ice.URLs) != 1 || ice.URLs[0] != want || ice.Username == "" || ice.Credential == "" {
		t.Fatalf("ICE server %+v, want URL %s with credentials", ice, want)
	}
	relay, _, err := allocate(t, srv, ice.Username, ice.Credential.(string))
	if err != nil {
		t.Fatalf("allocate with valid credentials: %v", err)
	}

	// The SFU's own address is reachable through the relay.
	sfu, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sfu.Close()
	if _, err := relay.WriteTo([]byte("media for the SFU"), sfu.LocalAddr()); err != nil {
		t.Fatalf("relay to the SFU: %v", err)
	}
	buf := make([]byte, 64)
	sfu.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, _, err := sfu.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "media for the SFU" {
		t.Fatalf("the SFU received %q, %v", buf[:n], err)
	}

	// Any other address is refused: the relay is no open proxy.
	other, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("no 127.0.0.2 on this host: %v", err)
	}
	defer other.Close()
	relay.WriteTo([]byte("not for you"), other.LocalAddr())
	other.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, _, err := other.ReadFrom(buf); err == nil {
		t.Fatalf("the relay reached another address: %q", buf[:n])
	}
}

func TestTURNRefusesBadCredentials(t *testing.T) {
	srv := startTestTURN(t)
	ice, _ := srv.Credentials("alice", time.Hour)
	if _, _, err := allocate(t, srv, ice.Username, "forged"); err == nil {
		t.Fatal("allocation with a forged password succeeded")
	}
	expired, _ := srv.Credentials("alice", -time.Minute)
	if _, _, err := allocate(t, srv, expired.Username, expired.Credential.(string)); err == nil {
		t.Fatal("allocation with expired credentials succeeded")
	}
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

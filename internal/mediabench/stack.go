package mediabench

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/internal/repairedrid"
)

// The clients' network and WebRTC stack: TLS towards the nodes, a loopback
// UDP socket per peer connection, and pion configured as a browser would be.

func tlsClient(caPEM string) (*http.Client, error) {
	pool := x509.NewCertPool()
	if caPEM != "" && !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return nil, errors.New("plan: ca_pem holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	if caPEM == "" {
		tr.TLSClientConfig.RootCAs = nil
	}
	return &http.Client{Transport: tr, Timeout: connectLimit}, nil
}

// clientReadBuffer is the kernel receive buffer of a client's socket: a
// subscriber of a large meeting receives thousands of packets a second,
// and the clients share the machine's cores with the nodes, so bursts must
// wait in the kernel rather than be dropped there.
const clientReadBuffer = 4 << 20

// clientSocket is a UDP socket on loopback for one of a client's peer
// connections, and the WebRTC stack that uses it.
// Closing the mux closes the socket.
func clientSocket() (io.Closer, *webrtc.API, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, fmt.Errorf("client socket: %w", err)
	}
	_ = conn.SetReadBuffer(clientReadBuffer)
	mux := webrtc.NewICEUDPMux(nil, conn)
	api, err := newAPI(mux)
	if err != nil {
		mux.Close()
		return nil, nil, err
	}
	return mux, api, nil
}

// newAPI is the clients' WebRTC stack: pion's default codecs and
// interceptors (NACK, reports, TWCC) as a browser would negotiate them,
// on loopback only, over mux.
func newAPI(mux ice.UDPMux) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("media engine: %w", err)
	}
	ir := &interceptor.Registry{}
	// Innermost: it sees the NACK responder's retransmissions (repairedrid).
	ir.Add(repairedrid.Factory{})
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("audio level extension: %w", err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEUDPMux(mux)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

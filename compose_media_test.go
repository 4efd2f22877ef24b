package entente_test

// Media in the compose file: every replica announces a UDP port of its own,
// published on this machine.

import (
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// Every replica receives media on a UDP port of its own, published on the
// same number, and says so in media.udp_port.
func TestComposeMediaPorts(t *testing.T) {
	p := mustLoadCompose(t, testPasswords())

	seen := map[string]string{}
	for _, r := range composeReplicas {
		s := p.Services[r.service]
		if got := envValue(t, s, "ENTENTE_MEDIA_UDP_PORT"); got != r.udpPort {
			t.Errorf("%s ENTENTE_MEDIA_UDP_PORT = %q, want %s", r.service, got, r.udpPort)
		}
		var udp []types.ServicePortConfig
		for _, port := range s.Ports {
			if port.Protocol == "udp" {
				udp = append(udp, port)
			}
		}
		if len(udp) != 1 || udp[0].Published != r.udpPort || udp[0].Target != mustPort(t, r.udpPort) {
			t.Errorf("%s UDP ports = %+v, want exactly %s -> %s/udp", r.service, udp, r.udpPort, r.udpPort)
		}
		if other, dup := seen[r.udpPort]; dup {
			t.Errorf("%s and %s share the UDP port %s", other, r.service, r.udpPort)
		}
		seen[r.udpPort] = r.service
	}
}

func TestComposeMediaPublicIP(t *testing.T) {
	env := testPasswords()
	env["MEDIA_PUBLIC_IP"] = "192.0.2.7"
	p := mustLoadCompose(t, env)
	for _, r := range composeReplicas {
		if got := envValue(t, p.Services[r.service], "ENTENTE_MEDIA_PUBLIC_IPS"); got != "192.0.2.7" {
			t.Errorf("%s ENTENTE_MEDIA_PUBLIC_IPS = %q, want MEDIA_PUBLIC_IP", r.service, got)
		}
	}
}

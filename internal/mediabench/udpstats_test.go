package mediabench

import (
	"strings"
	"testing"
)

func TestParseRcvbufErrors(t *testing.T) {
	const snmp = "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"Udp: 1000 3 7 990 42 0 0 0 0\n" +
		"UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n" +
		"UdpLite: 0 0 0 0 9 0 0 0 0\n"
	got, err := parseRcvbufErrors([]byte(snmp))
	if err != nil || got != 42 {
		t.Fatalf("got %d, %v; want 42", got, err)
	}
	if _, err := parseRcvbufErrors([]byte("Udp: InDatagrams\nUdp: 5\n")); err == nil || !strings.Contains(err.Error(), "no RcvbufErrors") {
		t.Fatalf("without the column: %v", err)
	}
	if _, err := parseRcvbufErrors([]byte("Udp: RcvbufErrors\nUdp: x\n")); err == nil || !strings.Contains(err.Error(), `RcvbufErrors "x"`) {
		t.Fatalf("bad value: %v", err)
	}
}

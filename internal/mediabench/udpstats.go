package mediabench

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// UDPRcvbufErrors reads the kernel's count of UDP datagrams dropped for a
// full receive buffer, for the whole network namespace.
func UDPRcvbufErrors() (int64, error) {
	data, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, fmt.Errorf("UDP counters: %w", err)
	}
	return parseRcvbufErrors(data)
}

// parseRcvbufErrors finds RcvbufErrors in the two "Udp:" lines of
// /proc/net/snmp: names, then values.
func parseRcvbufErrors(data []byte) (int64, error) {
	var names []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(fields) {
				var v int64
				if _, err := fmt.Sscan(fields[i], &v); err != nil {
					return 0, fmt.Errorf("UDP counters: RcvbufErrors %q: %w", fields[i], err)
				}
				return v, nil
			}
		}
		break
	}
	return 0, errors.New("UDP counters: no RcvbufErrors in /proc/net/snmp")
}

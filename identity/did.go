package identity

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

const didWebPrefix = "did:web:"

// DIDFromBaseURL derives a node's did:web from its public base URL:
// "https://host" gives "did:web:host" and "https://host:8441" gives
// "did:web:host%3A8441" (the did:web encoding of a port). Only bare https
// origins are accepted, so one node has exactly one DID.
func DIDFromBaseURL(baseURL string) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return "", fmt.Errorf("base URL %q: %w", baseURL, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("base URL %q: scheme must be https", baseURL)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("base URL %q: no host", baseURL)
	case u.User != nil:
		return "", fmt.Errorf("base URL %q: userinfo not allowed", baseURL)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("base URL %q: query not allowed", baseURL)
	case u.Fragment != "" || strings.Contains(baseURL, "#"):
		return "", fmt.Errorf("base URL %q: fragment not allowed", baseURL)
	case u.Path != "" && u.Path != "/":
		return "", fmt.Errorf("base URL %q: path not allowed (did:web with a path is not supported for nodes)", baseURL)
	}
	host, err := checkHost(u.Hostname())
	if err != nil {
		return "", fmt.Errorf("base URL %q: %w", baseURL, err)
	}
	port, err := checkPort(u.Port())
	if err != nil {
		return "", fmt.Errorf("base URL %q: %w", baseURL, err)
	}
	if port == "" {
		return didWebPrefix + host, nil
	}
	return didWebPrefix + host + "%3A" + port, nil
}

// DocumentURL is the inverse of DIDFromBaseURL and also accepts did:web
// paths: "did:web:host%3A8441" gives "https://host:8441/.well-known/did.json"
// and "did:web:host:a:b" gives "https://host/a/b/did.json".
func DocumentURL(did string) (string, error) {
	rest, ok := strings.CutPrefix(did, didWebPrefix)
	if !ok {
		return "", fmt.Errorf("DID %q: not a did:web DID", did)
	}
	if strings.ContainsAny(rest, "/?#") {
		return "", fmt.Errorf("DID %q: path, query or fragment characters not allowed", did)
	}
	segments := strings.Split(rest, ":")
	hostPort, err := url.PathUnescape(segments[0])
	if err != nil {
		return "", fmt.Errorf("DID %q: bad percent-encoding in host: %w", did, err)
	}
	hostPart, portPart, hasPort := strings.Cut(hostPort, ":")
	host, err := checkHost(hostPart)
	if err != nil {
		return "", fmt.Errorf("DID %q: %w", did, err)
	}
	if hostPart != host {
		return "", fmt.Errorf("DID %q: host must be lower case", did)
	}
	if hasPort {
		port, err := checkPort(portPart)
		if err != nil {
			return "", fmt.Errorf("DID %q: %w", did, err)
		}
		if port == "" {
			return "", fmt.Errorf("DID %q: the default port 443 must be omitted", did)
		}
		if port != portPart {
			return "", fmt.Errorf("DID %q: port %q is not in canonical form", did, portPart)
		}
		hostPort = host + ":" + port
	}
	path := "/.well-known"
	if len(segments) > 1 {
		var b strings.Builder
		for _, seg := range segments[1:] {
			if err := checkPathSegment(seg); err != nil {
				return "", fmt.Errorf("DID %q: %w", did, err)
			}
			b.WriteString("/" + seg)
		}
		path = b.String()
	}
	return "https://" + hostPort + path + "/did.json", nil
}

// checkHost accepts lower-case DNS names and IPv4 literals. IPv6 literals are
// refused because did:web has no agreed encoding for their brackets.
func checkHost(host string) (string, error) {
	if host == "" {
		return "", errors.New("empty host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !ip.Is4() {
			return "", fmt.Errorf("host %q: IPv6 literals cannot be expressed as did:web", host)
		}
		return ip.String(), nil
	}
	if len(host) > 253 {
		return "", fmt.Errorf("host %q: longer than 253 characters", host)
	}
	lower := strings.ToLower(host)
	for label := range strings.SplitSeq(lower, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("host %q: empty or over-long label", host)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("host %q: label starts or ends with '-'", host)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("host %q: character %q not allowed", host, c)
			}
		}
	}
	return lower, nil
}

// checkPort returns the port in canonical form, or "" for none or 443 so that
// https://host and https://host:443 are the same node.
func checkPort(port string) (string, error) {
	if port == "" {
		return "", nil
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("bad port %q", port)
	}
	if n == 443 {
		return "", nil
	}
	return strconv.FormatUint(n, 10), nil
}

func checkPathSegment(seg string) error {
	if seg == "" || seg == "." || seg == ".." {
		return fmt.Errorf("path segment %q not allowed", seg)
	}
	for _, c := range seg {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("path segment %q: character %q not allowed", seg, c)
		}
	}
	return nil
}

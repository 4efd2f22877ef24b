package federation

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// SignatureParams are the parameters of a Signature header
// (draft-cavage-http-signatures-12 §2.1).
type SignatureParams struct {
	KeyID     string
	Algorithm string // "" when the parameter is absent
	Headers   []string
	Signature []byte
	Created   int64 // 0 when absent
	Expires   int64 // 0 when absent
}

const (
	maxSignatureHeader = 4096
	maxSignatureBytes  = 512
	// maxTimestampDigits keeps created and expires far from int64 overflow
	// when the receiver adds its skew to them.
	maxTimestampDigits = 12
)

// ParseSignatureHeader parses a Signature header value strictly (spec §3.2
// step 2). Its grammar is narrower than the draft on purpose: go-fed/httpsig
// splits the header on every ',' and does not trim spaces, so a value
// holding a ',' or a space after a separator would be read differently by
// the verifier than by this policy layer. Refusing those keeps the two in
// agreement about what was signed.
func ParseSignatureHeader(v string) (SignatureParams, error) {
	var p SignatureParams
	if v == "" {
		return p, errors.New("empty Signature header")
	}
	if len(v) > maxSignatureHeader {
		return p, fmt.Errorf("Signature header longer than %d bytes", maxSignatureHeader)
	}
	seen := make(map[string]bool)
	for rest := v; ; {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return p, fmt.Errorf("parameter %q has no value", rest)
		}
		if !validParamName(name) {
			return p, fmt.Errorf("malformed parameter name %q", name)
		}
		if seen[name] {
			return p, fmt.Errorf("parameter %q given twice", name)
		}
		seen[name] = true

		var value string
		quoted := strings.HasPrefix(after, `"`)
		if quoted {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return p, fmt.Errorf("parameter %q: unterminated quoted value", name)
			}
			value, rest = after[1:1+end], after[2+end:]
			if err := checkQuotedValue(value, name == "headers"); err != nil {
				return p, fmt.Errorf("parameter %q: %w", name, err)
			}
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			value, rest = after[:end], after[end:]
		}
		if value == "" {
			return p, fmt.Errorf("parameter %q is empty", name)
		}
		if err := p.set(name, value, quoted); err != nil {
			return p, err
		}

		if rest == "" {
			break
		}
		if rest[0] != ',' || len(rest) == 1 {
			return p, fmt.Errorf("expected ',' and a parameter after %q", name)
		}
		rest = rest[1:]
	}
	for _, required := range []string{"keyId", "headers", "signature"} {
		if !seen[required] {
			return p, fmt.Errorf("parameter %q missing", required)
		}
	}
	return p, nil
}

func (p *SignatureParams) set(name, value string, quoted bool) error {
	if !quoted && name != "created" && name != "expires" {
		return fmt.Errorf("parameter %q must be quoted", name)
	}
	switch name {
	case "keyId":
		p.KeyID = value
	case "algorithm":
		p.Algorithm = value
	case "headers":
		headers := strings.Split(value, " ")
		for i, h := range headers {
			if !validHeaderName(h) {
				return fmt.Errorf("headers: malformed entry %q", h)
			}
			if slices.Contains(headers[:i], h) {
				return fmt.Errorf("headers: %q listed twice", h)
			}
		}
		p.Headers = headers
	case "signature":
		sig, err := base64.StdEncoding.Strict().DecodeString(value)
		if err != nil {
			return fmt.Errorf("signature is not base64: %w", err)
		}
		if len(sig) > maxSignatureBytes {
			return fmt.Errorf("signature longer than %d bytes", maxSignatureBytes)
		}
		p.Signature = sig
	case "created", "expires":
		n, err := parseTimestamp(value)
		if err != nil {
			return fmt.Errorf("parameter %q: %w", name, err)
		}
		if name == "created" {
			p.Created = n
		} else {
			p.Expires = n
		}
	default:
		return fmt.Errorf("unknown parameter %q", name)
	}
	return nil
}

func parseTimestamp(s string) (int64, error) {
	if len(s) > maxTimestampDigits || s[0] == '0' {
		return 0, fmt.Errorf("%q is not a positive decimal integer of at most %d digits", s, maxTimestampDigits)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a positive decimal integer", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// checkQuotedValue allows a space only where the grammar needs one, between
// the entries of headers.
func checkQuotedValue(v string, spaces bool) error {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == ' ' && !spaces:
			return errors.New("space is not allowed in this value")
		case c == '\\':
			return errors.New("escapes are not allowed")
		case c == ',':
			return errors.New("',' is not allowed in a value")
		case c < 0x20 || c > 0x7e:
			return fmt.Errorf("byte 0x%02x is not allowed", c)
		}
	}
	return nil
}

func validParamName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// validHeaderName accepts lower-case field names and the pseudo-headers
// "(request-target)", "(created)" and "(expires)".
func validHeaderName(s string) bool {
	if strings.HasPrefix(s, "(") {
		return s == "(request-target)" || s == "(created)" || s == "(expires)"
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

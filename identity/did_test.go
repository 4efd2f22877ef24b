package identity

import (
	"strings"
	"testing"
)

func TestDIDFromBaseURL(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{in: "https://meet.example.gov", want: "did:web:meet.example.gov"},
		{in: "https://Meet.Example.GOV/", want: "did:web:meet.example.gov"},
		{in: "https://127.0.0.1:8441", want: "did:web:127.0.0.1%3A8441"},
		{in: "https://meet.example.gov:443", want: "did:web:meet.example.gov"},
		{in: "http://meet.example.gov", err: `base URL "http://meet.example.gov": scheme must be https`},
		{in: "https://meet.example.gov/entente", err: `base URL "https://meet.example.gov/entente": path not allowed (did:web with a path is not supported for nodes)`},
		{in: "https://meet.example.gov/?a=1", err: `base URL "https://meet.example.gov/?a=1": query not allowed`},
		{in: "https://meet.example.gov/?", err: `base URL "https://meet.example.gov/?": query not allowed`},
		{in: "https://meet.example.gov/#x", err: `base URL "https://meet.example.gov/#x": fragment not allowed`},
		{in: "https://admin:pw@meet.example.gov", err: `base URL "https://admin:pw@meet.example.gov": userinfo not allowed`},
		{in: "https://", err: `base URL "https://": no host`},
		{in: "https://[::1]:8441", err: `base URL "https://[::1]:8441": host "::1": IPv6 literals cannot be expressed as did:web`},
		{in: "https://meet.example.gov:0", err: `base URL "https://meet.example.gov:0": bad port "0"`},
		{in: "https://meet.example.gov:99999", err: `base URL "https://meet.example.gov:99999": bad port "99999"`},
		{in: "https://meet_x.example.gov", err: `base URL "https://meet_x.example.gov": host "meet_x.example.gov": character '_' not allowed`},
		{in: "https://meet..gov", err: `base URL "https://meet..gov": host "meet..gov": empty or over-long label`},
		{in: "https://-meet.gov", err: `base URL "https://-meet.gov": host "-meet.gov": label starts or ends with '-'`},
		{in: "meet.example.gov", err: `base URL "meet.example.gov": scheme must be https`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := DIDFromBaseURL(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			back, err := DocumentURL(got)
			if err != nil {
				t.Fatalf("DocumentURL(%q): %v", got, err)
			}
			if want := "https://" + got[len("did:web:"):] + "/.well-known/did.json"; back != strings.Replace(want, "%3A", ":", 1) {
				t.Errorf("DocumentURL(%q) = %q", got, back)
			}
		})
	}
}

func TestDocumentURL(t *testing.T) {
	cases := []struct {
		in, want, err string
	}{
		{in: "did:web:meet.example.gov", want: "https://meet.example.gov/.well-known/did.json"},
		{in: "did:web:127.0.0.1%3A8441", want: "https://127.0.0.1:8441/.well-known/did.json"},
		{in: "did:web:127.0.0.1%3a8441", want: "https://127.0.0.1:8441/.well-known/did.json"},
		{in: "did:web:meet.example.gov:org:unit", want: "https://meet.example.gov/org/unit/did.json"},
		{in: "did:web:meet.example.gov%3A8443:org", want: "https://meet.example.gov:8443/org/did.json"},
		{in: "did:plc:abc", err: `DID "did:plc:abc": not a did:web DID`},
		{in: "did:web:", err: `DID "did:web:": empty host`},
		{in: "did:web:Meet.example.gov", err: `DID "did:web:Meet.example.gov": host must be lower case`},
		{in: "did:web:meet.example.gov#k-1", err: `DID "did:web:meet.example.gov#k-1": path, query or fragment characters not allowed`},
		{in: "did:web:meet.example.gov/x", err: `DID "did:web:meet.example.gov/x": path, query or fragment characters not allowed`},
		{in: "did:web:meet.example.gov%3A443", err: `DID "did:web:meet.example.gov%3A443": the default port 443 must be omitted`},
		{in: "did:web:meet.example.gov%3A08441", err: `DID "did:web:meet.example.gov%3A08441": port "08441" is not in canonical form`},
		{in: "did:web:meet.example.gov%3Ax", err: `DID "did:web:meet.example.gov%3Ax": bad port "x"`},
		{in: "did:web:meet.example.gov%2F..", err: `DID "did:web:meet.example.gov%2F..": host "meet.example.gov/..": character '/' not allowed`},
		{in: "did:web:meet%ZZ", err: `DID "did:web:meet%ZZ": bad percent-encoding in host: invalid URL escape "%ZZ"`},
		{in: "did:web:meet.example.gov:..", err: `DID "did:web:meet.example.gov:..": path segment ".." not allowed`},
		{in: "did:web:meet.example.gov::a", err: `DID "did:web:meet.example.gov::a": path segment "" not allowed`},
		{in: "did:web:meet.example.gov:a%2Fb", err: `DID "did:web:meet.example.gov:a%2Fb": path segment "a%2Fb": character '%' not allowed`},
		{in: "did:web:admin@meet.example.gov", err: `DID "did:web:admin@meet.example.gov": host "admin@meet.example.gov": character '@' not allowed`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := DocumentURL(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

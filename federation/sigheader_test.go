package federation

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSignatureHeader(t *testing.T) {
	const sig = "MEUCIQD/"
	good := `keyId="did:web:a.example#k-1",algorithm="hs2019",created=1764093600,expires=1764093900,headers="(request-target) (created) (expires) host date digest",signature="` + sig + `"`
	p, err := ParseSignatureHeader(good)
	if err != nil {
		t.Fatal(err)
	}
	want := SignatureParams{
		KeyID: "did:web:a.example#k-1", Algorithm: "hs2019", Created: 1764093600, Expires: 1764093900,
		Headers:   []string{"(request-target)", "(created)", "(expires)", "host", "date", "digest"},
		Signature: []byte{0x30, 0x45, 0x02, 0x21, 0x00, 0xff},
	}
	if p.KeyID != want.KeyID || p.Algorithm != want.Algorithm || p.Created != want.Created || p.Expires != want.Expires ||
		!slices.Equal(p.Headers, want.Headers) || !slices.Equal(p.Signature, want.Signature) {
		t.Fatalf("parsed %+v, want %+v", p, want)
	}
	if p, err := ParseSignatureHeader(`keyId="a#b",created="12",headers="date",signature="` + sig + `"`); err != nil || p.Created != 12 || p.Algorithm != "" {
		t.Fatalf("quoted created: %+v %v", p, err)
	}

	tests := []struct{ name, in, err string }{
		{"empty", ``, "empty Signature header"},
		{"missing keyId", `headers="date",signature="` + sig + `"`, `parameter "keyId" missing`},
		{"missing headers", `keyId="a#b",signature="` + sig + `"`, `parameter "headers" missing`},
		{"missing signature", `keyId="a#b",headers="date"`, `parameter "signature" missing`},
		{"unquoted keyId", `keyId=a,headers="date",signature="` + sig + `"`, `parameter "keyId" must be quoted`},
		{"unterminated", `keyId="a`, `parameter "keyId": unterminated quoted value`},
		{"duplicate", `keyId="a",keyId="b",headers="date",signature="` + sig + `"`, `parameter "keyId" given twice`},
		{"unknown", `keyId="a",nonce="1",headers="date",signature="` + sig + `"`, `unknown parameter "nonce"`},
		{"name case", `KeyId="a",headers="date",signature="` + sig + `"`, `unknown parameter "KeyId"`},
		{"space after comma", `keyId="a", headers="date",signature="` + sig + `"`, `malformed parameter name " headers"`},
		{"comma in value", `keyId="a,b",headers="date",signature="` + sig + `"`, `parameter "keyId": ',' is not allowed in a value`},
		{"escape in value", `keyId="a\"b",headers="date",signature="` + sig + `"`, `escapes are not allowed`},
		{"junk after value", `keyId="a"x,headers="date"`, `expected ',' and a parameter after "keyId"`},
		{"trailing comma", `keyId="a",headers="date",signature="` + sig + `",`, `expected ',' and a parameter after "signature"`},
		{"no value", `keyId`, `parameter "keyId" has no value`},
		{"empty value", `keyId="",headers="date",signature="` + sig + `"`, `parameter "keyId" is empty`},
		{"bad base64", `keyId="a",headers="date",signature="a*b="`, "signature is not base64"},
		{"unpadded base64", `keyId="a",headers="date",signature="MEUCIQD"`, "signature is not base64"},
		{"negative created", `keyId="a",created=-1,headers="date",signature="` + sig + `"`, `parameter "created": "-1" is not a positive decimal integer`},
		{"leading zero", `keyId="a",expires=01,headers="date",signature="` + sig + `"`, `parameter "expires": "01" is not a positive decimal integer of at most 12 digits`},
		{"huge created", `keyId="a",created=9999999999999999999,headers="date",signature="` + sig + `"`, "at most 12 digits"},
		{"double space in headers", `keyId="a",headers="host  date",signature="` + sig + `"`, `headers: malformed entry ""`},
		{"upper-case header", `keyId="a",headers="Date",signature="` + sig + `"`, `headers: malformed entry "Date"`},
		{"unknown pseudo-header", `keyId="a",headers="(nonce)",signature="` + sig + `"`, `headers: malformed entry "(nonce)"`},
		{"repeated header", `keyId="a",headers="date date",signature="` + sig + `"`, `headers: "date" listed twice`},
		{"space in keyId", `keyId="a b",headers="date",signature="` + sig + `"`, `parameter "keyId": space is not allowed`},
		{"non-ASCII", "keyId=\"a\xc3\xa9\",headers=\"date\",signature=\"" + sig + "\"", "byte 0xc3 is not allowed"},
		{"too long", `keyId="` + strings.Repeat("a", 5000) + `"`, "longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSignatureHeader(tt.in)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %q, want %q", err, tt.err)
			}
		})
	}
}

func FuzzParseSignatureHeader(f *testing.F) {
	f.Add(`keyId="did:web:a.example#k-1",algorithm="hs2019",created=1764093600,expires=1764093900,headers="(request-target) (created) (expires) host date digest",signature="MEUCIQD/"`)
	f.Add(`keyId="a",keyId="b"`)
	f.Add(`keyId=a,headers="",signature="=="`)
	f.Fuzz(func(t *testing.T, v string) {
		p, err := ParseSignatureHeader(v)
		if err != nil {
			return
		}
		// Whatever is accepted is unambiguous for go-fed's comma split.
		if p.KeyID == "" || len(p.Headers) == 0 || strings.ContainsAny(p.KeyID, `,"\ `) {
			t.Fatalf("accepted %q as %+v", v, p)
		}
		for _, h := range p.Headers {
			if !validHeaderName(h) {
				t.Fatalf("accepted header %q in %q", h, v)
			}
		}
		if p.Created < 0 || p.Expires < 0 {
			t.Fatalf("negative time in %q", v)
		}
	})
}

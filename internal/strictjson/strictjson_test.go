package strictjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	elems := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("1,", n), ",") + "]" }
	tests := []struct {
		name string
		in   string
		err  string // "" means accepted
	}{
		{"object", `{"id":"a","n":-12,"ok":true,"x":null,"l":[1,2,{"z":false}]}`, ""},
		{"whitespace around", " \n{\"a\" : 1 }\t", ""},
		{"escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`, ""},
		{"max safe integer", `[9007199254740991,-9007199254740991]`, ""},
		{"negative zero", `-0`, ""},
		{"depth 8", deep(8), ""},
		{"256 elements", elems(256), ""},
		{"4096-byte string", `"` + strings.Repeat("a", 4096) + `"`, ""},
		{"4096 bytes with escapes", `"` + strings.Repeat(`\u00e9`, 2048) + `"`, ""},

		{"empty", ``, "unexpected end of input at offset 0"},
		{"byte order mark", "\xef\xbb\xbf{}", "byte order mark at offset 0"},
		{"invalid UTF-8 in string", "{\"a\":\"\xff\"}", "invalid UTF-8 at offset 6"},
		{"overlong UTF-8", "\"\xc0\xaf\"", "invalid UTF-8 at offset 1"},
		{"lone high surrogate", `"\ud800"`, `lone surrogate \ud800 at offset 7`},
		{"lone low surrogate", `"\udc00x"`, `lone surrogate \udc00 at offset 7`},
		{"bad pair", `"\ud800\u0041"`, "invalid surrogate pair at offset 13"},
		{"duplicate key", `{"id":1,"id":2}`, `duplicate key "id" at offset 8`},
		{"duplicate key by escape", `{"id":1,"i\u0064":2}`, `duplicate key "id" at offset 8`},
		{"nested duplicate", `{"a":{"b":1,"b":1}}`, `duplicate key "b" at offset 12`},
		{"case variant", `{"id":1,"ID":2}`, `keys "id" and "ID" differ only in case at offset 8`},
		{"kelvin sign", "{\"k\":1,\"\u212a\":2}", `keys "k" and "` + "\u212a" + `" differ only in case at offset 7`},
		{"fraction", `{"n":1.5}`, "number 1.5 is not an integer at offset 5"},
		{"zero fraction", `1.0`, "number 1.0 is not an integer at offset 0"},
		{"exponent", `[1e3]`, "number 1e3 is not an integer at offset 1"},
		{"2^53", `9007199254740992`, "number 9007199254740992 is outside ±(2^53−1) at offset 0"},
		{"-2^53", `-9007199254740992`, "number -9007199254740992 is outside ±(2^53−1) at offset 0"},
		{"beyond int64", `123456789012345678901234567890`, "number 123456789012345678901234567890 is outside ±(2^53−1) at offset 0"},
		{"leading zero", `012`, "number with a leading zero at offset 0"},
		{"plus sign", `+1`, "unexpected character '+' at offset 0"},
		{"depth 9", deep(9), "nested deeper than 8 at offset 8"},
		{"257 elements", elems(257), "array longer than 256 elements at offset 513"},
		{"4097-byte string", `"` + strings.Repeat("a", 4097) + `"`, "string longer than 4096 bytes at offset 0"},
		{"long key", `{"` + strings.Repeat("k", 4097) + `":1}`, "string longer than 4096 bytes at offset 1"},
		{"trailing value", `{} {}`, "data after the top-level value at offset 3"},
		{"trailing garbage", `1x`, "data after the top-level value at offset 1"},
		{"control character", "\"a\nb\"", "control character in string at offset 2"},
		{"bad escape", `"\x"`, `invalid escape \x at offset 3`},
		{"unterminated", `{"a":"b`, "unterminated string at offset 5"},
		{"trailing comma", `[1,]`, "unexpected character ']' at offset 3"},
		{"single quotes", `{'a':1}`, "expected an object key at offset 1"},
		{"bad literal", `nul`, "invalid literal at offset 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check([]byte(tt.in), Limits{})
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && err == nil:
				t.Fatalf("accepted, want %q", tt.err)
			case tt.err != "" && err.Error() != tt.err:
				t.Fatalf("error %q, want %q", err, tt.err)
			}
		})
	}
}

func TestCheckCustomLimits(t *testing.T) {
	lim := Limits{MaxDepth: 2, MaxString: 3, MaxArray: 2}
	for in, want := range map[string]string{
		`[[1]]`:   "",
		`[[[1]]]`: "nested deeper than 2 at offset 2",
		`"abc"`:   "",
		`"abcd"`:  "string longer than 3 bytes at offset 0",
		`[1,2]`:   "",
		`[1,2,3]`: "array longer than 2 elements at offset 5",
	} {
		err := Check([]byte(in), lim)
		if got := errString(err); got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

type inner struct {
	Name string `json:"name"`
}

type outer struct {
	ID    string           `json:"id"`
	Items []inner          `json:"items"`
	Sub   *inner           `json:"sub"`
	Map   map[string]inner `json:"map"`
	Raw   json.RawMessage  `json:"raw"`
	Skip  string           `json:"-"`
	Plain int
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  string
	}{
		{"all fields", `{"id":"x","items":[{"name":"a"}],"sub":{"name":"b"},"map":{"k":{"name":"c"}},"raw":{"Any":1},"Plain":3}`, ""},
		{"unknown top field", `{"id":"x","extra":1}`, `unknown field "extra"`},
		{"case-variant field name", `{"ID":"x"}`, `unknown field "ID"`},
		{"case-variant nested in slice", `{"items":[{"Name":"a"}]}`, `unknown field "items.0.Name"`},
		{"case-variant nested in pointer", `{"sub":{"NAME":"a"}}`, `unknown field "sub.NAME"`},
		{"case-variant nested in map", `{"map":{"k":{"nAme":"a"}}}`, `unknown field "map.k.nAme"`},
		{"dash field", `{"-":"x"}`, `unknown field "-"`},
		{"tag-less field by other case", `{"plain":3}`, `unknown field "plain"`},
		{"strict rules first", `{"id":"x","id":"y"}`, `duplicate key "id" at offset 10`},
		{"type mismatch", `{"id":1}`, "json: cannot unmarshal number into Go struct field outer.id of type string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v outer
			err := Decode([]byte(tt.in), &v, Limits{})
			if got := errString(err); got != tt.err {
				t.Fatalf("got %q, want %q", got, tt.err)
			}
		})
	}
	var v outer
	if err := Decode([]byte(`{"id":"x","items":[{"name":"a"}],"sub":{"name":"b"},"Plain":3}`), &v, Limits{}); err != nil {
		t.Fatal(err)
	}
	if v.ID != "x" || len(v.Items) != 1 || v.Items[0].Name != "a" || v.Sub == nil || v.Sub.Name != "b" || v.Plain != 3 {
		t.Fatalf("decoded %+v", v)
	}
}

func TestRequire(t *testing.T) {
	if err := Require([]byte(`{"a":"","b":0}`), "a", "b"); err != nil {
		t.Fatal(err)
	}
	if got := errString(Require([]byte(`{"a":""}`), "a", "b")); got != `missing field "b"` {
		t.Fatalf("got %q", got)
	}
	if got := errString(Require([]byte(`null`), "a")); got != "not a JSON object" {
		t.Fatalf("got %q", got)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"c"}]}`, `"\ud83d\ude00"`, `-0`, `[1.5]`, `{"a":1,"A":2}`, "\xef\xbb\xbf1", `9007199254740991`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := Check(data, Limits{}); err == nil && !json.Valid(data) {
			t.Fatalf("Check accepted invalid JSON %q", data)
		}
	})
}

func TestRequireFields(t *testing.T) {
	type content struct {
		Kind  string `json:"kind"`
		Text  string `json:"text,omitempty"`
		On    bool   `json:"on,omitzero"`
		Plain int
		skip  int
	}
	for _, doc := range []string{`{"kind":"hand","Plain":0}`, `{"kind":"chat","text":"x","on":true,"Plain":1}`} {
		if err := RequireFields([]byte(doc), &content{}); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
	for doc, want := range map[string]string{
		`{"text":"x","Plain":0}`: `missing field "kind"`,
		`{"kind":"hand"}`:        `missing field "Plain"`,
		`null`:                   "not a JSON object",
	} {
		if got := errString(RequireFields([]byte(doc), content{})); got != want {
			t.Errorf("%s: got %q, want %q", doc, got, want)
		}
	}
	if err := RequireFields([]byte(`{}`), &struct{}{}); err != nil {
		t.Errorf("empty struct: %v", err)
	}
}

// Package strictjson refuses the JSON that encoding/json silently accepts
// and that a signed protocol must not: invalid UTF-8, byte order marks,
// duplicate keys or keys differing only in case, non-integer or oversized
// numbers, oversized strings and arrays, deep nesting and trailing data
// (Entente federation spec §4.3).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits bound a document. A zero field takes the default of spec §4.3.
type Limits struct {
	MaxDepth  int // containers nested in one another; default 8
	MaxString int // bytes of a decoded string or key; default 4096
	MaxArray  int // elements of one array; default 256
}

const (
	defaultMaxDepth  = 8
	defaultMaxString = 4096
	defaultMaxArray  = 256
	// maxSafeInteger is 2^53−1: larger integers do not survive a trip
	// through an IEEE double, so two implementations could read different
	// values from the same signed bytes.
	maxSafeInteger = 1<<53 - 1
)

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxString <= 0 {
		l.MaxString = defaultMaxString
	}
	if l.MaxArray <= 0 {
		l.MaxArray = defaultMaxArray
	}
	return l
}

// Check applies every rule of spec §4.3 except unknown and missing fields,
// which depend on the type decoded into.
func Check(data []byte, lim Limits) error {
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return errors.New("byte order mark at offset 0")
	}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return fmt.Errorf("invalid UTF-8 at offset %d", i)
		}
		i += size
	}
	s := scanner{data: data, lim: lim.withDefaults()}
	s.skipSpace()
	if err := s.value(1); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		return fmt.Errorf("data after the top-level value at offset %d", s.pos)
	}
	return nil
}

// Decode checks data, then decodes it into v refusing unknown fields. Field
// names must match exactly: encoding/json alone would let "ID" fill "id".
// Callers validate required fields themselves (see Require).
func Decode(data []byte, v any, lim Limits) error {
	if err := Check(data, lim); err != nil {
		return err
	}
	if err := exactFields(data, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	return nil
}

// Require reports the first of fields that is not a member of the top-level
// object in data, so that a missing field is told apart from a zero one.
func Require(data []byte, fields ...string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return err
	}
	if obj == nil {
		return errors.New("not a JSON object")
	}
	for _, f := range fields {
		if _, ok := obj[f]; !ok {
			return fmt.Errorf("missing field %q", f)
		}
	}
	return nil
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// exactFields walks data along t and refuses any object key that is not
// exactly the JSON name of a field of the struct it decodes into.
func exactFields(data []byte, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t == rawMessageType || bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil // the type mismatch is reported by the real decode
		}
		fields := jsonFields(t)
		for key, raw := range obj {
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("unknown field %q", path+key)
			}
			if err := exactFields(raw, ft, path+key+"."); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		var list []json.RawMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil
		}
		for i, raw := range list {
			if err := exactFields(raw, t.Elem(), fmt.Sprintf("%s%d.", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil
		}
		for key, raw := range obj {
			if err := exactFields(raw, t.Elem(), path+key+"."); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonFields maps the JSON names of t's exported fields to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				for k, v := range jsonFields(f.Type) {
					out[k] = v
				}
				continue
			}
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// scanner is a recursive-descent reader of RFC 8259 JSON that enforces the
// limits as it goes, so an oversized document fails early.
type scanner struct {
	data []byte
	pos  int
	lim  Limits
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf(format+" at offset %d", append(args, s.pos)...)
}

func (s *scanner) value(depth int) error {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end of input")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.errorf("unexpected character %q", c)
	}
}

func (s *scanner) literal(word string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		return s.errorf("invalid literal")
	}
	s.pos += len(word)
	return nil
}

func (s *scanner) object(depth int) error {
	if depth > s.lim.MaxDepth {
		return s.errorf("nested deeper than %d", s.lim.MaxDepth)
	}
	s.pos++ // '{'
	seen := make(map[string]string)
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.errorf("expected an object key")
		}
		keyAt := s.pos
		key, err := s.str()
		if err != nil {
			return err
		}
		folded := foldKey(key)
		if prev, dup := seen[folded]; dup {
			if prev == key {
				return fmt.Errorf("duplicate key %q at offset %d", key, keyAt)
			}
			return fmt.Errorf("keys %q and %q differ only in case at offset %d", prev, key, keyAt)
		}
		seen[folded] = key
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.errorf("expected ':' after key %q", key)
		}
		s.pos++
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of input in object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or '}'")
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth > s.lim.MaxDepth {
		return s.errorf("nested deeper than %d", s.lim.MaxDepth)
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for n := 1; ; n++ {
		if n > s.lim.MaxArray {
			return s.errorf("array longer than %d elements", s.lim.MaxArray)
		}
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of input in array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or ']'")
		}
	}
}

// str reads a string and returns it decoded. Escapes are decoded here,
// rather than by encoding/json, because encoding/json turns a lone
// surrogate into U+FFFD instead of refusing it.
func (s *scanner) str() (string, error) {
	start := s.pos
	s.pos++ // '"'
	var b strings.Builder
	for {
		if s.pos >= len(s.data) {
			return "", fmt.Errorf("unterminated string at offset %d", start)
		}
		if b.Len() > s.lim.MaxString {
			return "", fmt.Errorf("string longer than %d bytes at offset %d", s.lim.MaxString, start)
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			if b.Len() > s.lim.MaxString {
				return "", fmt.Errorf("string longer than %d bytes at offset %d", s.lim.MaxString, start)
			}
			return b.String(), nil
		case c < 0x20:
			return "", s.errorf("control character in string")
		case c == '\\':
			if err := s.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			s.pos++
		}
	}
}

func (s *scanner) escape(b *strings.Builder) error {
	if s.pos+1 >= len(s.data) {
		return s.errorf("unterminated escape")
	}
	c := s.data[s.pos+1]
	s.pos += 2
	switch c {
	case '"', '\\', '/':
		b.WriteByte(c)
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return err
		}
		if utf16.IsSurrogate(r) {
			if r >= 0xdc00 || !bytes.HasPrefix(s.data[s.pos:], []byte(`\u`)) {
				return s.errorf("lone surrogate \\u%04x", r)
			}
			s.pos += 2
			low, err := s.hex4()
			if err != nil {
				return err
			}
			r = utf16.DecodeRune(r, low)
			if r == unicode.ReplacementChar {
				return s.errorf("invalid surrogate pair")
			}
		}
		b.WriteRune(r)
	default:
		return s.errorf("invalid escape \\%c", c)
	}
	return nil
}

func (s *scanner) hex4() (rune, error) {
	if s.pos+4 > len(s.data) {
		return 0, s.errorf("short \\u escape")
	}
	n, err := strconv.ParseUint(string(s.data[s.pos:s.pos+4]), 16, 32)
	if err != nil {
		return 0, s.errorf("invalid \\u escape")
	}
	s.pos += 4
	return rune(n), nil
}

func (s *scanner) number() error {
	start := s.pos
	if s.data[s.pos] == '-' {
		s.pos++
	}
	digits := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	switch n := s.pos - digits; {
	case n == 0:
		return s.errorf("invalid number")
	case n > 1 && s.data[digits] == '0':
		return fmt.Errorf("number with a leading zero at offset %d", start)
	}
	integer := true
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		integer = false
		s.pos++
		if !s.digits() {
			return s.errorf("invalid number")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		integer = false
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if !s.digits() {
			return s.errorf("invalid number")
		}
	}
	text := string(s.data[start:s.pos])
	if !integer {
		return fmt.Errorf("number %s is not an integer at offset %d", text, start)
	}
	// ParseInt fails on anything beyond int64, which is beyond the limit too.
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n > maxSafeInteger || n < -maxSafeInteger {
		return fmt.Errorf("number %s is outside ±(2^53−1) at offset %d", text, start)
	}
	return nil
}

func (s *scanner) digits() bool {
	at := s.pos
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
	}
	return s.pos > at
}

// foldKey maps every rune to the smallest rune of its case-folding orbit,
// so that two keys have the same fold exactly when strings.EqualFold says
// they are equal, with one map lookup per key instead of comparing pairs.
func foldKey(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

package strictjson

import (
	"reflect"
	"strings"
)

// RequireFields applies Require with the required fields of v's struct
// type: those whose json tag has no omitempty. A protocol that leaves a
// field out only when it is empty (Entente federation spec §4.4) thereby
// refuses a document that drops any other field, instead of reading it as
// its zero value. v is a struct or a pointer to one; for any other type
// there is nothing to require.
func RequireFields(data []byte, v any) error {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	var required []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || f.Anonymous {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if !hasOption(opts, "omitempty") && !hasOption(opts, "omitzero") {
			required = append(required, name)
		}
	}
	return Require(data, required...)
}

func hasOption(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable that overrides a setting.
const EnvPrefix = "ENTENTE_"

// maxFileBytes bounds the config file; a real one is a few kilobytes.
const maxFileBytes = 1 << 20

// Default returns a Config holding every default value.
func Default() Config {
	var c Config
	walk(&c, func(s setting) {
		if def, ok := s.field.Tag.Lookup("default"); ok {
			// Defaults are literals in this file; a bad one is a programming
			// error caught by the tests, not an operator's mistake.
			if err := s.set(def); err != nil {
				panic(fmt.Sprintf("config: bad default for %s: %v", s.path, err))
			}
		}
	})
	return c
}

// Load reads the YAML file at path (none when path is empty), applies the
// environment overrides from environ (os.Environ() form) and validates the
// result. Unknown settings in the file are errors.
func Load(path string, environ []string) (Config, error) {
	c := Default()
	if path != "" {
		if err := loadFile(&c, path); err != nil {
			return Config{}, err
		}
	}
	if err := applyEnv(&c, environ); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func loadFile(c *Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return fmt.Errorf("config file %s: larger than %d bytes", path, maxFileBytes)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("config file %s: %s", path, yamlMessage(err))
	}
	if len(root.Content) == 0 {
		return nil // an empty file leaves the defaults
	}
	settings := map[string]setting{}
	walk(c, func(s setting) { settings[s.path] = s })
	if err := applyYAML(root.Content[0], reflect.TypeOf(*c), "", settings); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// applyYAML walks the YAML mapping against the struct and sets each value
// through the same parsing as the environment, so that an unknown, misplaced
// or malformed setting is reported with its full dotted path and line.
func applyYAML(n *yaml.Node, t reflect.Type, prefix string, settings map[string]setting) error {
	if n.Kind != yaml.MappingNode {
		where := prefix
		if where == "" {
			where = "top level"
		}
		return fieldErr(where, "must be a mapping (line %d)", n.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		path := key.Value
		if prefix != "" {
			path = prefix + "." + key.Value
		}
		if seen[key.Value] {
			return fieldErr(path, "set twice (line %d)", key.Line)
		}
		seen[key.Value] = true
		f, ok := fieldByYAML(t, key.Value)
		if !ok {
			return fieldErr(path, "unknown setting (line %d)", key.Line)
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			if err := applyYAML(val, f.Type, path, settings); err != nil {
				return err
			}
		case val.Kind != yaml.ScalarNode:
			return fieldErr(path, "must be a single value (line %d)", val.Line)
		case val.Tag == "!!null":
			// "key:" with no value keeps the default.
		default:
			if err := settings[path].set(val.Value); err != nil {
				return fieldErr(path, "%v (line %d)", err, val.Line)
			}
		}
	}
	return nil
}

func fieldByYAML(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if yamlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// yamlMessage keeps the YAML library's one-line message without its prefix.
func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

func applyEnv(c *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	var firstErr error
	walk(c, func(s setting) {
		v, ok := env[s.env]
		if !ok || firstErr != nil {
			return
		}
		if err := s.set(v); err != nil {
			firstErr = fieldErr(s.path, "from %s: %v", s.env, err)
		}
	})
	return firstErr
}

// setting is one leaf of the Config, as seen by the defaults, the environment
// and the reference.
type setting struct {
	path  string // node.public_url
	env   string // ENTENTE_NODE_PUBLIC_URL
	field reflect.StructField
	value reflect.Value
}

func (s setting) set(raw string) error {
	switch s.value.Interface().(type) {
	case string:
		s.value.SetString(raw)
	case bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", raw)
		}
		s.value.SetBool(b)
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration such as 90s or 5m: %q", raw)
		}
		s.value.SetInt(int64(d))
	case int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return fmt.Errorf("not an integer: %q", raw)
		}
		s.value.SetInt(int64(n))
	default:
		return fmt.Errorf("unsupported setting type %s", s.value.Type())
	}
	return nil
}

func walk(c *Config, fn func(setting)) {
	walkStruct(reflect.ValueOf(c).Elem(), "", fn)
}

func walkStruct(v reflect.Value, prefix string, fn func(setting)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		path := yamlName(f)
		if prefix != "" {
			path = prefix + "." + path
		}
		if f.Type.Kind() == reflect.Struct {
			walkStruct(v.Field(i), path, fn)
			continue
		}
		env := EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
		fn(setting{path: path, env: env, field: f, value: v.Field(i)})
	}
}

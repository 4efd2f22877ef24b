package store

import (
	"errors"
	"strings"
	"testing"
)

func TestRebind(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no placeholders", "SELECT 1", "SELECT 1"},
		{"numbered in order", "INSERT INTO t (a, b, c) VALUES (?, ?, ?)", "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)"},
		{"string literal kept", "SELECT '?' || ? FROM t WHERE a = ?", "SELECT '?' || $1 FROM t WHERE a = $2"},
		{"doubled quote in literal", "SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"quoted identifier kept", `SELECT "odd?col" FROM t WHERE x = ?`, `SELECT "odd?col" FROM t WHERE x = $1`},
		{"line comment kept", "SELECT ? -- why?\nFROM t WHERE y = ?", "SELECT $1 -- why?\nFROM t WHERE y = $2"},
		{"unterminated literal left alone", "SELECT ?, 'oops ?", "SELECT $1, 'oops ?"},
		{"ten or more", strings.Repeat("?,", 10) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rebind(tt.in); got != tt.want {
				t.Errorf("rebind(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRenderDialects(t *testing.T) {
	m := migration{Version: 1, Name: "t", SQL: "CREATE TABLE t (id {{.AutoID}}, b {{.Blob}}, at {{.Timestamp}}, s {{.Text}})"}
	tests := []struct {
		d    dialect
		want string
	}{
		{sqliteDialect(), "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, at TIMESTAMP, s TEXT)"},
		{postgresDialect(), `CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, b BYTEA, at TIMESTAMPTZ, s TEXT COLLATE "C")`},
	}
	for _, tt := range tests {
		t.Run(tt.d.name, func(t *testing.T) {
			got, err := tt.d.render(m)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if got != tt.want {
				t.Errorf("render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderRefusesUnknownType(t *testing.T) {
	_, err := sqliteDialect().render(migration{Version: 3, Name: "typo", SQL: "CREATE TABLE t (b {{.Blobb}})"})
	if err == nil || !strings.Contains(err.Error(), "migration 3 (typo)") {
		t.Fatalf("render with unknown type: err = %v, want an error naming migration 3 (typo)", err)
	}
}

func TestEveryMigrationRenders(t *testing.T) {
	if err := checkHistory(migrations()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []dialect{sqliteDialect(), postgresDialect()} {
		for _, m := range migrations() {
			sql, err := d.render(m)
			if err != nil {
				t.Errorf("%s: %v", d.name, err)
			}
			if strings.Contains(sql, "{{") {
				t.Errorf("%s: migration %d left a template action: %s", d.name, m.Version, sql)
			}
		}
	}
}

func TestCheckHistory(t *testing.T) {
	tests := []struct {
		name    string
		ms      []migration
		wantErr string
	}{
		{"empty", nil, ""},
		{"in order", []migration{{1, "a", ""}, {2, "b", ""}}, ""},
		{"gap", []migration{{1, "a", ""}, {3, "c", ""}}, `migration "c" has version 3, want 2`},
		{"starts at zero", []migration{{0, "a", ""}}, `migration "a" has version 0, want 1`},
		{"unnamed", []migration{{1, "", ""}}, "migration 1 has no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHistory(tt.ms)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkHistory: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkHistory: err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	forms, err := checkPostgresURL("postgres://u:p%40ss%20w@h/db")
	if err != nil {
		t.Fatalf("checkPostgresURL: %v", err)
	}
	cause := errors.New(`dial "postgres://u:p%40ss%20w@h/db" failed for p@ss w (p%40ss+w)`)
	got := redact(cause, forms...)
	want := `dial "postgres://u:xxxxx@h/db" failed for xxxxx (xxxxx)`
	if got.Error() != want {
		t.Errorf("redact = %q, want %q", got.Error(), want)
	}
	if !errors.Is(got, cause) {
		t.Error("redacted error no longer wraps its cause")
	}
	noPassword, err := checkPostgresURL("postgres://u@h/db")
	if err != nil {
		t.Fatalf("checkPostgresURL: %v", err)
	}
	if got := redact(cause, noPassword...); got != cause {
		t.Errorf("redact without a password = %v, want the cause unchanged", got)
	}
}

package store

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// dialect holds every difference between the backends' SQL, so that the
// rest of the package is written once.
type dialect struct {
	name string
	// numbered placeholders ($1, $2, …) instead of ?.
	numbered bool
	// forShare ends a subquery whose rows must stay as read until the
	// statement's transaction ends: PostgreSQL locks them, while SQLite's
	// transaction already holds the whole database.
	forShare string
	// types are substituted into migration SQL as {{.Blob}}, {{.Timestamp}},
	// {{.AutoID}} and {{.Text}}.
	types columnTypes
}

type columnTypes struct {
	Blob      string
	Timestamp string
	// AutoID is a complete column definition for a generated integer key.
	AutoID string
	// Text is a text column that sorts bytewise, as SQLite's TEXT does, so
	// that ORDER BY gives the same order on both backends whatever the
	// PostgreSQL database's locale.
	Text string
}

func sqliteDialect() dialect {
	return dialect{
		name: BackendSQLite,
		types: columnTypes{
			Blob:      "BLOB",
			Timestamp: "TIMESTAMP",
			AutoID:    "INTEGER PRIMARY KEY AUTOINCREMENT",
			Text:      "TEXT",
		},
	}
}

func postgresDialect() dialect {
	return dialect{
		name:     BackendPostgres,
		numbered: true,
		forShare: " FOR SHARE",
		types: columnTypes{
			Blob:      "BYTEA",
			Timestamp: "TIMESTAMPTZ",
			AutoID:    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
			Text:      `TEXT COLLATE "C"`,
		},
	}
}

// render fills the dialect's types into a migration's SQL template.
func (d dialect) render(m migration) (string, error) {
	t, err := template.New(m.Name).Option("missingkey=error").Parse(m.SQL)
	if err != nil {
		return "", fmt.Errorf("migration %d (%s): parse template: %w", m.Version, m.Name, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, d.types); err != nil {
		return "", fmt.Errorf("migration %d (%s): render for %s: %w", m.Version, m.Name, d.name, err)
	}
	return b.String(), nil
}

// rebind turns ? placeholders into $1..$n for PostgreSQL. A ? inside a
// quoted string, quoted identifier or comment is left alone.
func rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			end := strings.IndexByte(query[i+1:], c)
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+2])
			i += end + 1
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				b.WriteString(query[i:])
				return b.String()
			}
			b.WriteString(query[i : i+end+1])
			i += end
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

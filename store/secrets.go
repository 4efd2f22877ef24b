package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

func (s queries) GetSecret(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, errors.New("store: get secret: name is empty")
	}
	var value []byte
	err := s.q.queryRow(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&value)
	if err != nil {
		return nil, fmt.Errorf("store: get secret %q: %w", name, err)
	}
	if value == nil {
		// An empty blob may scan as nil; callers should see what they stored.
		value = []byte{}
	}
	return value, nil
}

func (s queries) PutSecret(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return errors.New("store: put secret: name is empty")
	}
	if value == nil {
		// Both drivers would send a nil slice as NULL.
		value = []byte{}
	}
	_, err := s.q.exec(ctx, `
INSERT INTO secrets (name, value, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, value, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("store: put secret %q: %w", name, err)
	}
	return nil
}

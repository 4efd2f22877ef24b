package store

import (
	"context"
	"fmt"
	"time"
)

// ChatLine is who wrote a chat line of a conference: the signal's sender (a
// user ref, or a node's DID for a line bridged from Matrix) and, for a
// bridged line, the Matrix user it is written under.
type ChatLine struct {
	Conference string
	ID         string
	Sender     string
	As         string
	CreatedAt  time.Time
}

const chatLineColumns = `conference, id, sender, as_user, created_at`

func (s queries) PutChatLine(ctx context.Context, l ChatLine) error {
	if l.Conference == "" || l.ID == "" || l.Sender == "" {
		return fmt.Errorf("store: put chat line %q of %q: conference, id and sender must be set", l.ID, l.Conference)
	}
	n, err := s.q.exec(ctx, `INSERT INTO chat_lines (`+chatLineColumns+`) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (conference, id) DO NOTHING`,
		l.Conference, l.ID, l.Sender, l.As, l.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: put chat line %q of %q: %w", l.ID, l.Conference, err)
	}
	if n == 0 {
		return fmt.Errorf("store: chat line %q of %q is already stored: %w", l.ID, l.Conference, ErrConflict)
	}
	return nil
}

func (s queries) GetChatLine(ctx context.Context, conference, id string) (ChatLine, error) {
	var l ChatLine
	err := s.q.queryRow(ctx, `SELECT `+chatLineColumns+` FROM chat_lines WHERE conference = ? AND id = ?`, conference, id).
		Scan(&l.Conference, &l.ID, &l.Sender, &l.As, millisTime{&l.CreatedAt})
	if err != nil {
		return ChatLine{}, fmt.Errorf("store: get chat line %q of %q: %w", id, conference, err)
	}
	return l, nil
}

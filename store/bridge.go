package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// BridgePortal is the Matrix room that mirrors a conference.
type BridgePortal struct {
	Conference string
	RoomID     string
	// Created is true when the bridge made the room, false when an
	// existing room was linked to the conference.
	Created  bool
	LinkedAt time.Time
}

// BridgeGhost is the Matrix user standing for an Entente participant.
type BridgeGhost struct {
	// UserRef is the participant, "local@did:web:…".
	UserRef    string
	MatrixUser string
	// DisplayName is the Matrix display name last set for the ghost, so
	// that it is only set again when it changes.
	DisplayName string
	UpdatedAt   time.Time
}

// BridgeEvent maps an Entente item of a conference (a chat message, the
// posted join link) to the Matrix event that mirrors it.
type BridgeEvent struct {
	Conference string
	Item       string
	RoomID     string
	EventID    string
	CreatedAt  time.Time
}

const (
	bridgePortalColumns = `conference, room_id, created, linked_at`
	bridgeGhostColumns  = `user_ref, matrix_user, display_name, updated_at`
	bridgeEventColumns  = `conference, item, room_id, event_id, created_at`
)

func scanBridgePortal(r rowScanner) (BridgePortal, error) {
	var p BridgePortal
	err := r.Scan(&p.Conference, &p.RoomID, &p.Created, millisTime{&p.LinkedAt})
	return p, err
}

func scanBridgeGhost(r rowScanner) (BridgeGhost, error) {
	var g BridgeGhost
	err := r.Scan(&g.UserRef, &g.MatrixUser, &g.DisplayName, millisTime{&g.UpdatedAt})
	return g, err
}

func scanBridgeEvent(r rowScanner) (BridgeEvent, error) {
	var e BridgeEvent
	err := r.Scan(&e.Conference, &e.Item, &e.RoomID, &e.EventID, millisTime{&e.CreatedAt})
	return e, err
}

func (s queries) PutBridgePortal(ctx context.Context, p BridgePortal) error {
	if p.Conference == "" || p.RoomID == "" {
		return fmt.Errorf("store: put bridge portal %q: conference and room id must be set", p.Conference)
	}
	_, err := s.q.exec(ctx, `INSERT INTO bridge_portals (`+bridgePortalColumns+`) VALUES (?, ?, ?, ?)`,
		p.Conference, p.RoomID, p.Created, millisArg(p.LinkedAt))
	if err != nil {
		return fmt.Errorf("store: put bridge portal %q (room %q): %w", p.Conference, p.RoomID, err)
	}
	return nil
}

func (s queries) GetBridgePortal(ctx context.Context, conference string) (BridgePortal, error) {
	p, err := scanBridgePortal(s.q.queryRow(ctx, `SELECT `+bridgePortalColumns+` FROM bridge_portals WHERE conference = ?`, conference))
	if err != nil {
		return BridgePortal{}, fmt.Errorf("store: get bridge portal of %q: %w", conference, err)
	}
	return p, nil
}

func (s queries) GetBridgePortalByRoom(ctx context.Context, roomID string) (BridgePortal, error) {
	p, err := scanBridgePortal(s.q.queryRow(ctx, `SELECT `+bridgePortalColumns+` FROM bridge_portals WHERE room_id = ?`, roomID))
	if err != nil {
		return BridgePortal{}, fmt.Errorf("store: get bridge portal in room %q: %w", roomID, err)
	}
	return p, nil
}

func (s queries) ListBridgePortals(ctx context.Context) ([]BridgePortal, error) {
	rs, err := s.q.query(ctx, `SELECT `+bridgePortalColumns+` FROM bridge_portals ORDER BY linked_at DESC, conference`)
	if err != nil {
		return nil, fmt.Errorf("store: list bridge portals: %w", err)
	}
	ps, err := scanAll(rs, scanBridgePortal)
	if err != nil {
		return nil, fmt.Errorf("store: list bridge portals: %w", err)
	}
	return ps, nil
}

func (s queries) BridgeTransactionApplied(ctx context.Context, txnID string) (bool, error) {
	var at int64
	err := s.q.queryRow(ctx, `SELECT applied_at FROM bridge_transactions WHERE txn_id = ?`, txnID).Scan(&at)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: read bridge transaction %q: %w", txnID, err)
	}
	return true, nil
}

func (s queries) MarkBridgeTransaction(ctx context.Context, txnID string, at time.Time) error {
	if txnID == "" {
		return errors.New("store: mark bridge transaction: id is empty")
	}
	_, err := s.q.exec(ctx, `
INSERT INTO bridge_transactions (txn_id, applied_at) VALUES (?, ?)
ON CONFLICT (txn_id) DO NOTHING`, txnID, at.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: mark bridge transaction %q: %w", txnID, err)
	}
	return nil
}

func (s queries) PruneBridgeTransactions(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.q.exec(ctx, `DELETE FROM bridge_transactions WHERE applied_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: prune bridge transactions before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}

func (s queries) PutBridgeGhost(ctx context.Context, g BridgeGhost) error {
	if g.UserRef == "" || g.MatrixUser == "" {
		return fmt.Errorf("store: put bridge ghost %q: user ref and Matrix user must be set", g.UserRef)
	}
	_, err := s.q.exec(ctx, `
INSERT INTO bridge_ghosts (`+bridgeGhostColumns+`) VALUES (?, ?, ?, ?)
ON CONFLICT (user_ref) DO UPDATE SET matrix_user = excluded.matrix_user,
	display_name = excluded.display_name, updated_at = excluded.updated_at`,
		g.UserRef, g.MatrixUser, g.DisplayName, millisArg(g.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: put bridge ghost %q (%q): %w", g.UserRef, g.MatrixUser, err)
	}
	return nil
}

func (s queries) GetBridgeGhost(ctx context.Context, userRef string) (BridgeGhost, error) {
	g, err := scanBridgeGhost(s.q.queryRow(ctx, `SELECT `+bridgeGhostColumns+` FROM bridge_ghosts WHERE user_ref = ?`, userRef))
	if err != nil {
		return BridgeGhost{}, fmt.Errorf("store: get bridge ghost of %q: %w", userRef, err)
	}
	return g, nil
}

func (s queries) GetBridgeGhostByMatrixUser(ctx context.Context, matrixUser string) (BridgeGhost, error) {
	g, err := scanBridgeGhost(s.q.queryRow(ctx, `SELECT `+bridgeGhostColumns+` FROM bridge_ghosts WHERE matrix_user = ?`, matrixUser))
	if err != nil {
		return BridgeGhost{}, fmt.Errorf("store: get bridge ghost %q: %w", matrixUser, err)
	}
	return g, nil
}

func (s queries) PutBridgeEvent(ctx context.Context, e BridgeEvent) error {
	if e.Conference == "" || e.Item == "" || e.EventID == "" {
		return fmt.Errorf("store: put bridge event %q of %q: conference, item and event id must be set", e.Item, e.Conference)
	}
	_, err := s.q.exec(ctx, `INSERT INTO bridge_events (`+bridgeEventColumns+`) VALUES (?, ?, ?, ?, ?)`,
		e.Conference, e.Item, e.RoomID, e.EventID, millisArg(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: put bridge event %q of %q: %w", e.Item, e.Conference, err)
	}
	return nil
}

func (s queries) GetBridgeEvent(ctx context.Context, conference, item string) (BridgeEvent, error) {
	e, err := scanBridgeEvent(s.q.queryRow(ctx, `SELECT `+bridgeEventColumns+` FROM bridge_events WHERE conference = ? AND item = ?`, conference, item))
	if err != nil {
		return BridgeEvent{}, fmt.Errorf("store: get bridge event %q of %q: %w", item, conference, err)
	}
	return e, nil
}

func (s queries) GetBridgeEventByMatrixID(ctx context.Context, eventID string) (BridgeEvent, error) {
	e, err := scanBridgeEvent(s.q.queryRow(ctx, `SELECT `+bridgeEventColumns+` FROM bridge_events WHERE event_id = ?`, eventID))
	if err != nil {
		return BridgeEvent{}, fmt.Errorf("store: get bridge event %q: %w", eventID, err)
	}
	return e, nil
}

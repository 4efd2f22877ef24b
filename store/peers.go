package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Peer is one entry of the trust list (spec/federation.md §2).
type Peer struct {
	DID  string
	Name string
	// KeyPin is a publicKeyMultibase; when set, only that key of the peer is
	// accepted. "" when not pinned.
	KeyPin        string
	MayInvite     bool
	MayRelayMedia bool
	AddedAt       time.Time
}

const peerColumns = `did, name, key_pin, may_invite, may_relay_media, added_at`

func scanPeer(r rowScanner) (Peer, error) {
	var p Peer
	err := r.Scan(&p.DID, &p.Name, &p.KeyPin, &p.MayInvite, &p.MayRelayMedia, millisTime{&p.AddedAt})
	return p, err
}

func (s queries) PutPeer(ctx context.Context, p Peer) error {
	if p.DID == "" {
		return errors.New("store: put peer: DID is empty")
	}
	_, err := s.q.exec(ctx, `
INSERT INTO peers (`+peerColumns+`) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (did) DO UPDATE SET name = excluded.name, key_pin = excluded.key_pin,
	may_invite = excluded.may_invite, may_relay_media = excluded.may_relay_media, added_at = excluded.added_at`,
		p.DID, p.Name, p.KeyPin, p.MayInvite, p.MayRelayMedia, millisArg(p.AddedAt))
	if err != nil {
		return fmt.Errorf("store: put peer %q: %w", p.DID, err)
	}
	return nil
}

func (s queries) GetPeer(ctx context.Context, did string) (Peer, error) {
	p, err := scanPeer(s.q.queryRow(ctx, `SELECT `+peerColumns+` FROM peers WHERE did = ?`, did))
	if err != nil {
		return Peer{}, fmt.Errorf("store: get peer %q: %w", did, err)
	}
	return p, nil
}

func (s queries) ListPeers(ctx context.Context) ([]Peer, error) {
	rs, err := s.q.query(ctx, `SELECT `+peerColumns+` FROM peers ORDER BY did`)
	if err != nil {
		return nil, fmt.Errorf("store: list peers: %w", err)
	}
	ps, err := scanAll(rs, scanPeer)
	if err != nil {
		return nil, fmt.Errorf("store: list peers: %w", err)
	}
	return ps, nil
}

func (s queries) DeletePeer(ctx context.Context, did string) error {
	if err := affectedOne(s.q.exec(ctx, `DELETE FROM peers WHERE did = ?`, did)); err != nil {
		return fmt.Errorf("store: delete peer %q: %w", did, err)
	}
	return nil
}

package store

import (
	"context"
	"fmt"
	"time"
)

// Activity is what a node is doing now, as its store records it: the
// figures behind the node's gauges on /metrics.
type Activity struct {
	// HostedConferences are the conferences not ended that this node hosts,
	// MemberConferences those not ended it keeps a replica of.
	HostedConferences, MemberConferences int64
	// Participants are the users in conferences not ended, Waiting those of
	// them still in a lobby.
	Participants, Waiting int64
	// Outbox counts the outbox messages by state; every state is present.
	Outbox map[string]int64
	// OldestPending is when the oldest pending outbox message was written,
	// zero when none is pending.
	OldestPending time.Time
}

func (s queries) Activity(ctx context.Context, node string) (Activity, error) {
	a := Activity{Outbox: map[string]int64{OutboxPending: 0, OutboxDelivered: 0, OutboxFailed: 0, OutboxExpired: 0}}
	err := s.q.queryRow(ctx, `SELECT COALESCE(SUM(CASE WHEN host = ? THEN 1 ELSE 0 END), 0),
	COALESCE(SUM(CASE WHEN host <> ? THEN 1 ELSE 0 END), 0)
FROM conferences WHERE NOT ended`, node, node).Scan(&a.HostedConferences, &a.MemberConferences)
	if err != nil {
		return Activity{}, fmt.Errorf("store: activity: conferences: %w", err)
	}
	err = s.q.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN p.waiting THEN 1 ELSE 0 END), 0)
FROM participants p JOIN conferences c ON c.id = p.conference WHERE NOT c.ended`).Scan(&a.Participants, &a.Waiting)
	if err != nil {
		return Activity{}, fmt.Errorf("store: activity: participants: %w", err)
	}
	rs, err := s.q.query(ctx, `SELECT state, COUNT(*) FROM outbox GROUP BY state`)
	if err != nil {
		return Activity{}, fmt.Errorf("store: activity: outbox: %w", err)
	}
	type stateCount struct {
		state string
		n     int64
	}
	counts, err := scanAll(rs, func(r rowScanner) (stateCount, error) {
		var c stateCount
		return c, r.Scan(&c.state, &c.n)
	})
	if err != nil {
		return Activity{}, fmt.Errorf("store: activity: outbox: %w", err)
	}
	for _, c := range counts {
		a.Outbox[c.state] = c.n
	}
	err = s.q.queryRow(ctx, `SELECT MIN(created_at) FROM outbox WHERE state = ?`, OutboxPending).Scan(millisTime{&a.OldestPending})
	if err != nil {
		return Activity{}, fmt.Errorf("store: activity: oldest pending message: %w", err)
	}
	return a, nil
}

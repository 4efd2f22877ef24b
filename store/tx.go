package store

import (
	"context"
	"fmt"
	"time"
)

// Tx is every data method of the store. Store runs each on its own; the Tx
// that InTx hands its function runs them all in one transaction.
//
// Lookups that find nothing return an error wrapping ErrNotFound, writes
// refused by a unique constraint one wrapping ErrConflict. Times are kept to
// the millisecond and returned in UTC; a zero time is kept as such.
type Tx interface {
	// GetSecret returns the named secret, or an error wrapping ErrNotFound
	// when there is none. Secrets are small named blobs, such as the node's
	// key ring when keys are kept in the database.
	GetSecret(ctx context.Context, name string) ([]byte, error)
	// PutSecret inserts the named secret or replaces its value.
	PutSecret(ctx context.Context, name string, value []byte) error

	// PutPeer inserts the trust list entry for p.DID or replaces it whole.
	PutPeer(ctx context.Context, p Peer) error
	GetPeer(ctx context.Context, did string) (Peer, error)
	// ListPeers returns the trust list ordered by DID.
	ListPeers(ctx context.Context) ([]Peer, error)
	DeletePeer(ctx context.Context, did string) error

	// PutUser inserts the local user u.ID or replaces it whole.
	PutUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	// ListUsers returns the local users ordered by ID.
	ListUsers(ctx context.Context) ([]User, error)
	// PutToken inserts t; ErrConflict when its hash is already stored,
	// ErrNotFound when its user does not exist.
	PutToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, hash string) (Token, error)
	RevokeToken(ctx context.Context, hash string) error

	// PutIdentity inserts or replaces the link of (id.Issuer, id.Subject);
	// ErrConflict when id.UserID is already another account's.
	PutIdentity(ctx context.Context, id Identity) error
	GetIdentity(ctx context.Context, issuer, subject string) (Identity, error)
	GetIdentityOfUser(ctx context.Context, userID string) (Identity, error)
	// PutSession inserts s; ErrConflict when its hash is already stored.
	PutSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, hash string) (Session, error)
	DeleteSession(ctx context.Context, hash string) error
	// DeleteUserSessions ends every session of a user, returning how many.
	DeleteUserSessions(ctx context.Context, userID string) (int64, error)
	// PutSessionCheck inserts or replaces the provider's tokens of a
	// session; ErrNotFound when the session does not exist. They go when
	// the session is deleted.
	PutSessionCheck(ctx context.Context, c SessionCheck) error
	GetSessionCheck(ctx context.Context, hash string) (SessionCheck, error)
	// PutSignInFlow stores a sign-in under way; TakeSignInFlow returns and
	// deletes it, so that each is used at most once.
	PutSignInFlow(ctx context.Context, f SignInFlow) error
	TakeSignInFlow(ctx context.Context, state string) (SignInFlow, error)
	// PruneSignIn deletes the flows and sessions that expired before
	// before, returning how many.
	PruneSignIn(ctx context.Context, before time.Time) (int64, error)

	// PutConference inserts the conference c.ID or replaces it whole.
	PutConference(ctx context.Context, c Conference) error
	GetConference(ctx context.Context, id string) (Conference, error)
	// ListConferences returns every conference, newest first.
	ListConferences(ctx context.Context) ([]Conference, error)
	// CountHostedConferences counts the conferences hosted by host that
	// have not ended, as member node sees them: those member has not
	// declined, and among them those it has not answered yet.
	CountHostedConferences(ctx context.Context, host, member string) (HostedCount, error)

	// AppendRecord adds r to its conference's log; ErrConflict when the
	// conference already has a record with r's seq or r's event id.
	AppendRecord(ctx context.Context, r Record) error
	// ListRecords returns the conference's records with seq > afterSeq in
	// ascending order, at most limit of them (all when limit <= 0).
	ListRecords(ctx context.Context, conference string, afterSeq int64, limit int) ([]Record, error)
	GetRecordByEvent(ctx context.Context, conference, eventID string) (Record, error)

	// PutConferenceNode inserts or replaces the entry for (n.Conference,
	// n.Node).
	PutConferenceNode(ctx context.Context, n ConferenceNode) error
	GetConferenceNode(ctx context.Context, conference, node string) (ConferenceNode, error)
	// ListConferenceNodes returns the conference's nodes ordered by DID.
	ListConferenceNodes(ctx context.Context, conference string) ([]ConferenceNode, error)

	// PutParticipant inserts or replaces the entry for (p.Conference,
	// p.User).
	PutParticipant(ctx context.Context, p Participant) error
	DeleteParticipant(ctx context.Context, conference, user string) error
	// ListParticipants returns the conference's participants ordered by
	// JoinedSeq.
	ListParticipants(ctx context.Context, conference string) ([]Participant, error)

	// PutGuestLink inserts l; ErrConflict when its id is already stored.
	PutGuestLink(ctx context.Context, l GuestLink) error
	GetGuestLink(ctx context.Context, id string) (GuestLink, error)
	// ListGuestLinks returns the conference's guest links, oldest first.
	ListGuestLinks(ctx context.Context, conference string) ([]GuestLink, error)
	RevokeGuestLink(ctx context.Context, id string) error
	// LockGuestLink holds the link's row until the transaction ends, so
	// that its guests are counted one redemption at a time.
	LockGuestLink(ctx context.Context, id string) error
	// PutGuest records a guest who came through a link; ErrNotFound when
	// the user or the link does not exist.
	PutGuest(ctx context.Context, g Guest) error
	GetGuest(ctx context.Context, userID string) (Guest, error)

	// RecordInbound stores (origin, messageID) with the payload hash. It
	// returns duplicate=true when the same (origin, id) was stored with the
	// same hash, and an error wrapping ErrConflict when it was stored with
	// another hash (spec/federation.md §8).
	RecordInbound(ctx context.Context, origin, messageID, payloadHash string, at time.Time) (duplicate bool, err error)
	// PruneInbound deletes the entries recorded before before, returning
	// how many it deleted.
	PruneInbound(ctx context.Context, before time.Time) (int64, error)

	// PutChatLine remembers the author of a chat line; ErrConflict when the
	// conference already has a line with l.ID.
	PutChatLine(ctx context.Context, l ChatLine) error
	// GetChatLine returns the chat line id of conference; ErrNotFound when
	// there is none.
	GetChatLine(ctx context.Context, conference, id string) (ChatLine, error)

	// EnqueueOutbox stores m as pending and returns its ID.
	EnqueueOutbox(ctx context.Context, m OutboxMessage) (int64, error)
	// DueOutbox returns, for each destination that no other holder than
	// holder has a lease on at now, its oldest pending message if that
	// one's NextAttempt <= now; at most limit (all when limit <= 0),
	// ordered by ID.
	DueOutbox(ctx context.Context, now time.Time, holder string, limit int) ([]OutboxMessage, error)
	// NextOutboxWake is the earliest time at which holder may deliver one
	// of the oldest pending messages of each destination: its NextAttempt,
	// or the end of another holder's lease on its destination if that is
	// later. It is the zero time when nothing is pending.
	NextOutboxWake(ctx context.Context, now time.Time, holder string) (time.Time, error)
	// TakeOutboxLease gives holder the lease on destination until until:
	// a new one when nobody's lease runs past now, or holder's own renewed
	// (its token unchanged). When another holder's lease runs past now it
	// returns that lease and an error wrapping ErrLeaseHeld. Of processes
	// taking one lease at once, exactly one gets it.
	TakeOutboxLease(ctx context.Context, destination, holder string, now, until time.Time) (OutboxLease, error)
	// ReleaseOutboxLease ends l now, if it is still the destination's
	// current lease (ErrLeaseLost otherwise), so that another holder may
	// take the destination without waiting for it to expire.
	ReleaseOutboxLease(ctx context.Context, l OutboxLease) error
	// GetOutboxLease returns the current or last lease on destination;
	// ErrNotFound when it never had one.
	GetOutboxLease(ctx context.Context, destination string) (OutboxLease, error)
	// MarkOutboxDelivered, MarkOutboxRetry and MarkOutboxFinal record the
	// outcome of a delivery attempt made under lease l (which must be on
	// the message's destination): they fail with ErrLeaseLost, changing
	// nothing, once another lease replaced l, and with ErrNotFound when
	// there is no such message.
	MarkOutboxDelivered(ctx context.Context, l OutboxLease, id int64, receipt []byte, at time.Time) error
	MarkOutboxRetry(ctx context.Context, l OutboxLease, id int64, attempts int, next time.Time, lastErr string) error
	// RetryOutboxNow makes every pending message to destination due at now
	// with its backoff started over (attempts 0), for a destination heard
	// from again; it returns how many messages were waiting longer.
	RetryOutboxNow(ctx context.Context, destination string, now time.Time) (int64, error)
	// MarkOutboxFinal ends the message's delivery; state is OutboxFailed or
	// OutboxExpired, and reason is kept as its LastError.
	MarkOutboxFinal(ctx context.Context, l OutboxLease, id int64, state, reason string) error
	// ListOutbox returns the messages to destination in state, ordered by
	// ID; "" for either matches any.
	ListOutbox(ctx context.Context, destination string, state string) ([]OutboxMessage, error)
	// GetOutbox returns the message messageID queued for destination;
	// ErrNotFound when there is none.
	GetOutbox(ctx context.Context, destination, messageID string) (OutboxMessage, error)
	// CountOutbox counts the messages in state; "" counts them all.
	CountOutbox(ctx context.Context, state string) (int64, error)
	// Activity counts, for the node's gauges, the conferences not ended
	// (those node hosts and the others), their participants and the outbox
	// messages by state.
	Activity(ctx context.Context, node string) (Activity, error)

	// PutBridgePortal links p.Conference to p.RoomID; ErrConflict when the
	// conference already has a portal or the room is another's portal.
	PutBridgePortal(ctx context.Context, p BridgePortal) error
	GetBridgePortal(ctx context.Context, conference string) (BridgePortal, error)
	GetBridgePortalByRoom(ctx context.Context, roomID string) (BridgePortal, error)
	// ListBridgePortals returns every portal, the most recently linked
	// first.
	ListBridgePortals(ctx context.Context) ([]BridgePortal, error)

	// BridgeTransactionApplied reports whether the appservice transaction
	// txnID was marked applied.
	BridgeTransactionApplied(ctx context.Context, txnID string) (bool, error)
	// MarkBridgeTransaction marks txnID applied; marking it again keeps
	// the first time.
	MarkBridgeTransaction(ctx context.Context, txnID string, at time.Time) error
	// PruneBridgeTransactions forgets the transactions applied before
	// before, returning how many it deleted.
	PruneBridgeTransactions(ctx context.Context, before time.Time) (int64, error)

	// PutBridgeGhost inserts the ghost of g.UserRef or replaces it whole;
	// ErrConflict when g.MatrixUser is another participant's ghost.
	PutBridgeGhost(ctx context.Context, g BridgeGhost) error
	GetBridgeGhost(ctx context.Context, userRef string) (BridgeGhost, error)
	GetBridgeGhostByMatrixUser(ctx context.Context, matrixUser string) (BridgeGhost, error)

	// PutBridgeEvent records that e.EventID mirrors e.Item of
	// e.Conference; ErrConflict when the item or the event is already
	// mapped.
	PutBridgeEvent(ctx context.Context, e BridgeEvent) error
	GetBridgeEvent(ctx context.Context, conference, item string) (BridgeEvent, error)
	GetBridgeEventByMatrixID(ctx context.Context, eventID string) (BridgeEvent, error)
}

// queries implements Tx once over a querier, which is either the backend's
// pool (for Store) or one of its transactions (for InTx).
type queries struct {
	q querier
	// forShare is the dialect's locking clause for a subquery (see
	// dialect.forShare).
	forShare string
}

func (s *dbStore) InTx(ctx context.Context, fn func(tx Tx) error) error {
	var fnErr error
	err := s.db.inTx(ctx, func(q querier) error {
		fnErr = fn(queries{q: q, forShare: s.dialect.forShare})
		return fnErr
	})
	if err != nil && fnErr == nil {
		// Beginning or committing failed; fn's own errors are returned as
		// they are so that callers can match them.
		return fmt.Errorf("store: transaction on %s: %w", s.dialect.name, err)
	}
	return err
}

// Times are stored as BIGINT milliseconds since the Unix epoch, so that both
// backends compare and order them alike and none of the drivers' time zone
// handling is involved. The zero time is stored as NULL.
func millisArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// millisTime scans a column written by millisArg.
type millisTime struct{ t *time.Time }

func (m millisTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*m.t = time.Time{}
	case int64:
		*m.t = time.UnixMilli(v).UTC()
	default:
		return fmt.Errorf("time column holds %T, want integer milliseconds", src)
	}
	return nil
}

// nonNil keeps an empty blob from being sent as NULL, which both drivers do
// with a nil slice.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scanAll reads every row of rs with scan, closing rs.
func scanAll[T any](rs rows, scan func(r rowScanner) (T, error)) ([]T, error) {
	defer rs.Close()
	var out []T
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// affectedOne turns an update or delete that touched no row into
// ErrNotFound.
func affectedOne(n int64, err error) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
)

const testRoom = "!portal:localhost"

// pushTransaction sends what a homeserver sends: one m.room.message from a
// Matrix user in the portal room.
func pushTransaction(t *testing.T, b *Bridge, token, txnID, eventID string) int {
	t.Helper()
	return pushEvents(t, b, token, txnID, map[string]any{
		"type":             "m.room.message",
		"room_id":          testRoom,
		"event_id":         eventID,
		"sender":           "@alice:localhost",
		"origin_server_ts": time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC).UnixMilli(),
		"content":          map[string]any{"msgtype": "m.text", "body": "hello from Matrix"},
	})
}

// pushEvents sends a transaction of events to the bridge as a homeserver
// does, and returns the answer's status.
func pushEvents(t *testing.T, b *Bridge, token, txnID string, events ...map[string]any) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
		"http://"+b.Addr().String()+"/_matrix/app/v1/transactions/"+txnID, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func recorded(t *testing.T, st store.Store, eventID string) func() (bool, error) {
	return func() (bool, error) {
		_, err := st.GetBridgeEventByMatrixID(t.Context(), eventID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}

func TestTransactionsApplyOnceAcrossRestarts(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if err := e.store.PutBridgePortal(ctx, store.BridgePortal{Conference: "conf-1", RoomID: testRoom, Created: true}); err != nil {
		t.Fatal(err)
	}
	b := e.start(t)
	hsToken := e.reg.ServerToken

	if got := pushTransaction(t, b, "not-the-hs-token", "txn-0", "$forged"); got != http.StatusUnauthorized {
		t.Fatalf("transaction with a wrong hs_token: status %d, want 401", got)
	}
	if got := pushTransaction(t, b, hsToken, "txn-1", "$first"); got != http.StatusOK {
		t.Fatalf("transaction txn-1: status %d, want 200", got)
	}
	waitFor(t, "txn-1's message to be recorded", recorded(t, e.store, "$first"))
	got, err := e.store.GetBridgeEventByMatrixID(ctx, "$first")
	want := store.BridgeEvent{Conference: "conf-1", Item: "matrix-chat:sig-1", RoomID: testRoom, EventID: "$first",
		CreatedAt: time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)}
	if err != nil || got != want {
		t.Fatalf("recorded message = %+v, %v; want %+v", got, err, want)
	}
	if ok, err := e.store.BridgeTransactionApplied(ctx, "txn-0"); err != nil || ok {
		t.Errorf("refused transaction marked applied = %t, %v; want false", ok, err)
	}

	// A new bridge on the same store is a restart: the homeserver resending
	// txn-1 (here with other content, to see whether it is applied) is
	// answered 200 and ignored.
	b.Stop()
	b = e.start(t)
	if got := pushTransaction(t, b, hsToken, "txn-1", "$resent"); got != http.StatusOK {
		t.Fatalf("resent txn-1: status %d, want 200", got)
	}
	if got := pushTransaction(t, b, hsToken, "txn-2", "$second"); got != http.StatusOK {
		t.Fatalf("transaction txn-2: status %d, want 200", got)
	}
	// Events are handled in order, so once txn-2's is recorded a resent
	// txn-1 would have been too.
	waitFor(t, "txn-2's message to be recorded", recorded(t, e.store, "$second"))
	if ok, _ := recorded(t, e.store, "$resent")(); ok {
		t.Error("the resent transaction txn-1 was applied again after the restart")
	}
	wantChat := []sentChat{
		{Conference: "conf-1", MatrixUser: "@alice:localhost", Kind: "chat", Text: "hello from Matrix", SignalID: "sig-1"},
		{Conference: "conf-1", MatrixUser: "@alice:localhost", Kind: "chat", Text: "hello from Matrix", SignalID: "sig-2"},
	}
	if got := e.chat.all(); !slices.Equal(got, wantChat) {
		t.Errorf("chat sent to the conference = %+v, want %+v", got, wantChat)
	}
	for _, txn := range []string{"txn-1", "txn-2"} {
		if ok, err := e.store.BridgeTransactionApplied(ctx, txn); err != nil || !ok {
			t.Errorf("%s applied = %t, %v; want true", txn, ok, err)
		}
	}
}

func TestBridgeRestartsInProcess(t *testing.T) {
	e := newEnv(t)
	b := e.start(t)
	b.Stop()
	if b.Addr() != nil {
		t.Fatalf("Addr after Stop = %v, want nil", b.Addr())
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := b.Start(t.Context()); err == nil {
		t.Error("Start of a running bridge succeeded")
	}
	b.Stop()
	b.Stop()
}

// A started bridge forgets transaction ids a homeserver can no longer retry,
// and keeps the recent ones.
func TestOldTransactionsArePruned(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if err := e.store.MarkBridgeTransaction(ctx, "txn-old", time.Now().Add(-8*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MarkBridgeTransaction(ctx, "txn-recent", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.start(t)
	waitFor(t, "the old transaction to be forgotten", func() (bool, error) {
		applied, err := e.store.BridgeTransactionApplied(ctx, "txn-old")
		return !applied, err
	})
	if applied, err := e.store.BridgeTransactionApplied(ctx, "txn-recent"); err != nil || !applied {
		t.Fatalf("recent transaction forgotten: %v %v", applied, err)
	}
}

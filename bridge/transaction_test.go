package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
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

// The same Matrix event delivered again in a new transaction, before or
// after a restart, reaches the conference once.
func TestMatrixEventAppliesOnceAcrossTransactions(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if err := e.store.PutBridgePortal(ctx, store.BridgePortal{Conference: "conf-1", RoomID: testRoom, Created: true}); err != nil {
		t.Fatal(err)
	}
	b := e.start(t)
	hsToken := e.reg.ServerToken
	for _, txn := range []struct{ id, event string }{{"txn-1", "$same"}, {"txn-2", "$same"}, {"txn-3", "$other"}} {
		if got := pushTransaction(t, b, hsToken, txn.id, txn.event); got != http.StatusOK {
			t.Fatalf("transaction %s: status %d, want 200", txn.id, got)
		}
	}
	// Events are handled in order: once $other is recorded, a second
	// $same would have been sent.
	waitFor(t, "$other to be recorded", recorded(t, e.store, "$other"))
	b.Stop()
	b = e.start(t)
	if got := pushTransaction(t, b, hsToken, "txn-4", "$same"); got != http.StatusOK {
		t.Fatalf("transaction txn-4: status %d, want 200", got)
	}
	if got := pushTransaction(t, b, hsToken, "txn-5", "$last"); got != http.StatusOK {
		t.Fatalf("transaction txn-5: status %d, want 200", got)
	}
	waitFor(t, "$last to be recorded", recorded(t, e.store, "$last"))
	want := []sentChat{
		{Conference: "conf-1", MatrixUser: "@alice:localhost", Kind: "chat", Text: "hello from Matrix", SignalID: "sig-1"},
		{Conference: "conf-1", MatrixUser: "@alice:localhost", Kind: "chat", Text: "hello from Matrix", SignalID: "sig-2"},
		{Conference: "conf-1", MatrixUser: "@alice:localhost", Kind: "chat", Text: "hello from Matrix", SignalID: "sig-3"},
	}
	if got := e.chat.all(); !slices.Equal(got, want) {
		t.Errorf("chat sent to the conference = %+v, want %+v (one per event)", got, want)
	}
	for ev, item := range map[string]string{"$same": "matrix-chat:sig-1", "$other": "matrix-chat:sig-2", "$last": "matrix-chat:sig-3"} {
		if got, err := e.store.GetBridgeEventByMatrixID(ctx, ev); err != nil || got.Item != item {
			t.Errorf("%s recorded as %+v, %v; want item %s", ev, got, err, item)
		}
	}
}

// A transaction body over maxTransactionBody is answered 413 and never
// applied, whether its length was announced or not.
func TestTransactionBodyIsCapped(t *testing.T) {
	e := newEnv(t)
	b := e.start(t)
	wantBody := `{"errcode":"M_TOO_LARGE","error":"transaction body over 16777216 bytes"}`
	big := bytes.Repeat([]byte(" "), maxTransactionBody+1)
	for _, tc := range []struct {
		name   string
		txn    string
		body   io.Reader
		length int64
	}{
		{"announced", "txn-big-1", bytes.NewReader(big), int64(len(big))},
		{"chunked", "txn-big-2", io.MultiReader(bytes.NewReader(big)), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPut,
				"http://"+b.Addr().String()+"/_matrix/app/v1/transactions/"+tc.txn, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tc.length
			req.Header.Set("Authorization", "Bearer "+e.reg.ServerToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || string(body) != wantBody {
				t.Errorf("status %d, body %s; want 413, %s", resp.StatusCode, body, wantBody)
			}
			if ok, err := e.store.BridgeTransactionApplied(t.Context(), tc.txn); err != nil || ok {
				t.Errorf("refused transaction marked applied = %t, %v", ok, err)
			}
		})
	}
	// A transaction at the limit is still taken.
	events, _ := json.Marshal(map[string]any{"events": []any{}})
	atLimit := append(events, bytes.Repeat([]byte(" "), maxTransactionBody-len(events))...)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPut,
		"http://"+b.Addr().String()+"/_matrix/app/v1/transactions/txn-at-limit", bytes.NewReader(atLimit))
	req.Header.Set("Authorization", "Bearer "+e.reg.ServerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("transaction of exactly %d bytes: status %d, want 200", maxTransactionBody, resp.StatusCode)
	}
}

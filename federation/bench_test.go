package federation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

const (
	benchOrigin = "did:web:ministry.example"
	benchDest   = "did:web:agency.example"
)

// benchInvite is an invitation as the host sends it: one node, named users.
func benchInvite(b *testing.B) []byte {
	b.Helper()
	now := time.Now()
	p, err := federation.MarshalPayload(federation.Payload{
		ID:          federation.NewMessageID(),
		Type:        federation.TypeInvite,
		Origin:      benchOrigin,
		Destination: benchDest,
		Sender:      federation.UserRef("alice", benchOrigin),
		Conference:  federation.NewConferenceID(),
		Created:     now.UnixMilli(),
		Expires:     now.Add(24 * time.Hour).UnixMilli(),
		Content:     json.RawMessage(`{"node":"` + benchDest + `","users":["bruno","chloe"]}`),
	})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkSealOpen(b *testing.B) {
	ctx := context.Background()
	kr, err := identity.GenerateKeyring(ctx, identity.NewFileKeyStorage(filepath.Join(b.TempDir(), "keys.json")), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	info := kr.Keys(time.Now())[0]
	pub, err := atcrypto.ParsePublicMultibase(info.PublicMultibase)
	if err != nil {
		b.Fatal(err)
	}
	keyID := benchOrigin + "#" + info.ID
	lookup := func(_ context.Context, id string) (atcrypto.PublicKey, error) {
		if id != keyID {
			return nil, fmt.Errorf("unknown key %s", id)
		}
		return pub, nil
	}
	payload := benchInvite(b)
	b.ReportAllocs()
	for b.Loop() {
		env, err := federation.Seal(benchOrigin, kr, payload)
		if err != nil {
			b.Fatal(err)
		}
		p, _, err := federation.Open(ctx, env, lookup)
		if err != nil {
			b.Fatal(err)
		}
		if p.Type != federation.TypeInvite {
			b.Fatalf("opened a %s", p.Type)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
}

func BenchmarkStrictDecodePayload(b *testing.B) {
	payload := benchInvite(b)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		p, err := federation.DecodePayload(payload)
		if err != nil {
			b.Fatal(err)
		}
		if p.Destination != benchDest {
			b.Fatalf("decoded destination %s", p.Destination)
		}
	}
}

// BenchmarkOutboxDelivery times b.N lock/unlock events of a conference from
// the first enqueue on the host until the guest's replica holds the last,
// over real HTTPS between two nodes.
func BenchmarkOutboxDelivery(b *testing.B) {
	ctx := context.Background()
	f := nodetest.New(b)
	host := f.Start(b, "Ministry", nil)
	guest := f.Start(b, "Agency", nil)
	nodetest.Trust(b, host, guest)
	alice, _ := nodetest.User(b, host, "alice", "Alice")
	bruno, _ := nodetest.User(b, guest, "bruno", "Bruno")

	conf := invitedConference(b, host, alice, "Outbox benchmark", guest)
	nodetest.Eventually(b, wait, "the invitation at the agency", func() bool {
		inv, _ := guest.Federation().Invitations(ctx, bruno)
		return len(inv) == 1
	})
	if _, _, err := guest.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
		b.Fatal(err)
	}
	nodetest.Eventually(b, wait, "the acceptance at the host", func() bool {
		n, err := host.Store().GetConferenceNode(ctx, conf.ID, guest.DID())
		return err == nil && n.State == "accepted"
	})

	b.ResetTimer()
	var last int64
	var err error
	for i := range b.N {
		typ := federation.TypeLock
		if i%2 == 1 {
			typ = federation.TypeUnlock
		}
		if last, err = host.Federation().Moderate(ctx, alice, conf.ID, typ, ""); err != nil {
			b.Fatal(err)
		}
	}
	// One delivery at a time per peer: allow each message a generous share.
	limit := wait + time.Duration(b.N)*100*time.Millisecond
	nodetest.Eventually(b, limit, fmt.Sprintf("record %d at the agency", last), func() bool {
		c, err := guest.Store().GetConference(ctx, conf.ID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			b.Fatal(err)
		}
		return c.HeadSeq >= last
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")

	c, err := guest.Store().GetConference(ctx, conf.ID)
	if err != nil || c.HeadSeq != last || c.Locked != (b.N%2 == 1) {
		b.Fatalf("guest replica %+v %v; want head %d, locked %v", c, err, last, b.N%2 == 1)
	}
}

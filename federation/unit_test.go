package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/federation"
)

// TestJoinUnit: a join's unit is kept as the signing node states it, and an
// over-long one is refused without changing anything (spec §6.1).
func TestJoinUnit(t *testing.T) {
	fx := newSecFixture(t)
	a := fx.attacker
	if got := fx.deliver(t, a, fx.inbox, fx.accept(t)); got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Fatalf("accept: %d %+v %s", got.status, got.receipt, got.raw)
	}
	user := "eve@" + a.DID()
	join := func(unit string) string {
		return fmt.Sprintf(`{"user":%q,"display_name":"Eve","organisation":"Agency","unit":%q}`, user, unit)
	}
	fx.attack(t, "unit of 101 bytes", secRefusal{400, "bad_request", "unit must be 1 to 100 bytes"}, func(t *testing.T) *http.Request {
		p := fx.payload(a, federation.TypeJoin, join(strings.Repeat("d", 101)))
		return secSigned(t, a, http.MethodPost, fx.inbox, fx.envelope(t, a, p), time.Now())
	})
	p := fx.payload(a, federation.TypeJoin, join("Direction des statistiques"))
	if got := fx.deliver(t, a, fx.inbox, fx.envelope(t, a, p)); got.status != http.StatusOK || got.receipt.Status != "accepted" {
		t.Fatalf("join with a unit: %d %+v %s", got.status, got.receipt, got.raw)
	}
	roster, err := fx.target.Federation().LocalRoster(context.Background(), fx.conference)
	if err != nil {
		t.Fatal(err)
	}
	if len(roster.Participants) != 1 || roster.Participants[0].Unit != "Direction des statistiques" || roster.Participants[0].Organisation != "Agency" {
		t.Fatalf("roster %+v", roster.Participants)
	}
}

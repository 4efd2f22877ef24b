package media

import (
	"context"
	"fmt"
	"strings"
)

// Trunks between replicas of one node. A conference too big for the replica
// that owns it grows onto others, each joined to the owner by a trunk like
// those between organisations (spec/federation.md §10) but inside the
// node's trust boundary: the owner's SFU is the conference's host for the
// other replicas, and only the owner holds trunks to other organisations.
// A replica trunk differs from a member node's in three ways: the peer may
// announce any user of the node; every track crosses it that the replica's
// users could receive on the owner, whatever the relay permissions of the
// other organisations (their media stays inside the node they allowed); and
// it counts, on the owner, as a local participant of the conference, so the
// owner opens the conference's trunk to its host organisation even when no
// client of the conference is connected to the owner itself.

// replicaPeerPrefix names a replica in the trunk set. A DID starts with
// "did:", so a replica's name is never a peer organisation's.
const replicaPeerPrefix = "replica:"

// ReplicaPeer is the trunk peer name of the replica with id: what a
// replica's Cascade.Host returns for a conference owned by another replica.
func ReplicaPeer(id string) string { return replicaPeerPrefix + id }

// ReplicaOf returns the replica id of a trunk peer name made by
// ReplicaPeer, and whether it is one.
func ReplicaOf(peer string) (string, bool) {
	id, ok := strings.CutPrefix(peer, replicaPeerPrefix)
	return id, ok && id != ""
}

func isReplicaPeer(peer string) bool {
	_, ok := ReplicaOf(peer)
	return ok
}

// AcceptReplicaTrunk answers the trunk offer of replica, another replica of
// this node, for a conference this replica owns. node is the node's DID:
// the replica announces only the node's users. The caller has
// authenticated the replica; nothing here is signed.
func (s *SFU) AcceptReplicaTrunk(ctx context.Context, conference, replica, node, offerSDP string) (string, error) {
	if replica == "" || strings.ContainsAny(replica, " \t\r\n") {
		return "", fmt.Errorf("media: replica id %q: %w", replica, ErrBadTrunkOffer)
	}
	if node == "" {
		return "", fmt.Errorf("media: replica trunk without the node's DID: %w", ErrBadTrunkOffer)
	}
	return s.acceptTrunk(ctx, trunkPeer{conference: conference, name: ReplicaPeer(replica), users: node, relay: true, replica: true}, offerSDP)
}

// holdLink counts the replica trunk t as a local participant of its
// conference until it closes: when the conference is hosted by another
// organisation, the owner keeps its trunk there open for the replica's
// users.
func (t *trunk) holdLink() {
	if t.link.Swap(true) {
		return
	}
	t.set.linkJoined(t.conference, false)
}

// LocalCounter is implemented by a Cascade that wants to know how many
// local clients each conference has on this SFU: a replica reports it so
// that the node places the next participant (PlaceParticipant in
// internal/cluster). LocalParticipants is called on every change, in
// order, with the SFU's trunk lock held: it must not block nor call into
// the SFU.
type LocalCounter interface {
	LocalParticipants(conference string, clients int)
}

// countLocked tells the cascade, if it counts, l's local clients.
func (ts *trunkSet) countLocked(l *memberLink) {
	if lc, ok := ts.sfu.opts.Cascade.(LocalCounter); ok {
		lc.LocalParticipants(l.conference, l.people)
	}
}

// ReplicaTrunkStats is what crossed this SFU's trunks to other replicas
// of the node, apart from those to other organisations.
func (s *SFU) ReplicaTrunkStats() TrunkStats {
	var st TrunkStats
	for _, t := range s.trunks.all() {
		if !t.replica {
			continue
		}
		st.Trunks++
		t.mu.Lock()
		for _, c := range t.sent {
			for i := range c.packets {
				st.PacketsSent += c.packets[i].Load() + c.resent[i].Load()
			}
			st.BytesSent += c.bytes.Load()
		}
		t.mu.Unlock()
	}
	return st
}

// all returns every trunk of the set.
func (ts *trunkSet) all() []*trunk {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]*trunk, 0, len(ts.trunks))
	for _, t := range ts.trunks {
		out = append(out, t)
	}
	return out
}

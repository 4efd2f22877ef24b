package main

import (
	"strings"
	"testing"
)

// The admin commands work on the node's store, with no node running.
func TestPeersUsersTokenConfCommands(t *testing.T) {
	_, env := nodeEnv(t)
	agency := "did:web:visio.agency.example"

	if r := runCLI(t, env, "peers", "add", agency, "--name", "National Statistics Agency", "--may-relay-media=false"); r.code != 0 || r.stdout != "trusted "+agency+" (National Statistics Agency)\n" {
		t.Fatalf("peers add: %+v", r)
	}
	if r := runCLI(t, env, "peers", "add", "https://nope", "--name", "X"); r.code != 2 || !strings.Contains(r.stderr, "did:") {
		t.Fatalf("peers add with a bad DID: %+v", r)
	}
	r := runCLI(t, env, "peers", "list")
	if r.code != 0 || !strings.Contains(r.stdout, agency) || !strings.Contains(r.stdout, "National Statistics Agency  true        false") {
		t.Fatalf("peers list: %+v", r)
	}
	r = runCLI(t, env, "peers", "show", agency)
	if r.code != 0 || !strings.Contains(r.stdout, `"may_relay_media": false`) || !strings.Contains(r.stdout, `"may_invite": true`) {
		t.Fatalf("peers show: %+v", r)
	}

	if r := runCLI(t, env, "users", "add", "alice", "--display-name", "Alice Martin"); r.code != 0 || !strings.HasPrefix(r.stdout, "user alice (Alice Martin) on did:web:ministry.example") {
		t.Fatalf("users add: %+v", r)
	}
	if r := runCLI(t, env, "users", "add", "Alice!"); r.code != 1 || !strings.Contains(r.stderr, `user name "Alice!"`) {
		t.Fatalf("users add with a bad name: %+v", r)
	}
	if r := runCLI(t, env, "token", "issue", "alice"); r.code != 0 || !strings.HasPrefix(r.stdout, "ent_") || len(strings.TrimSpace(r.stdout)) != 47 {
		t.Fatalf("token issue: %+v", r)
	}
	if r := runCLI(t, env, "token", "issue", "nobody"); r.code != 1 || !strings.Contains(r.stderr, `no user "nobody"`) {
		t.Fatalf("token for an unknown user: %+v", r)
	}

	r = runCLI(t, env, "conf", "create", "Budget 2027", "--as", "alice")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(id, "c-") {
		t.Fatalf("conf create: %+v", r)
	}
	if r := runCLI(t, env, "conf", "create", "No user"); r.code != 2 || !strings.Contains(r.stderr, "--as USER is required") {
		t.Fatalf("conf create without --as: %+v", r)
	}
	if r := runCLI(t, env, "conf", "invite", id, agency, "--as", "alice"); r.code != 0 || !strings.Contains(r.stdout, "invited "+agency+" (record 2)") {
		t.Fatalf("conf invite: %+v", r)
	}
	if r := runCLI(t, env, "conf", "invite", id, "did:web:stranger.example", "--as", "alice"); r.code != 1 || !strings.Contains(r.stderr, "not on this node's trust list") {
		t.Fatalf("invite of an untrusted node: %+v", r)
	}
	if r := runCLI(t, env, "conf", "list"); r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "Budget 2027") {
		t.Fatalf("conf list: %+v", r)
	}
	if r := runCLI(t, env, "conf", "end", id); r.code != 0 || r.stdout != "ended "+id+" (record 3)\n" {
		t.Fatalf("conf end: %+v", r)
	}
	r = runCLI(t, env, "conf", "audit", id)
	if r.code != 0 || !strings.Contains(r.stdout, "valid: 3 records, every signature and hash verified") ||
		!strings.Contains(r.stdout, "conference.create") || !strings.Contains(r.stdout, "conference.end") {
		t.Fatalf("conf audit: %+v", r)
	}
	if r := runCLI(t, env, "conf", "show", id); r.code != 0 || !strings.Contains(r.stdout, `"ended": true`) || !strings.Contains(r.stdout, `"state": "invited"`) {
		t.Fatalf("conf show: %+v", r)
	}
	if r := runCLI(t, env, "peers", "remove", agency); r.code != 0 {
		t.Fatalf("peers remove: %+v", r)
	}
	if r := runCLI(t, env, "peers", "show", agency); r.code != 1 || !strings.Contains(r.stderr, "not on the trust list") {
		t.Fatalf("peers show after remove: %+v", r)
	}
}

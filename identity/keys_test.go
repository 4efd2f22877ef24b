package identity

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func fileStorage(t *testing.T) (KeyStorage, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data", "keys.json")
	return NewFileKeyStorage(path), path
}

func TestGenerateKeyringStoresPrivately(t *testing.T) {
	ctx := context.Background()
	s, path := fileStorage(t)
	kr, err := GenerateKeyring(ctx, s, t0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode %04o, want 0600", got)
	}
	dst, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := dst.Mode().Perm(); got != 0o700 {
		t.Errorf("key directory mode %04o, want 0700", got)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "keys.json" {
		t.Errorf("directory holds %v, want only keys.json (no temporary files left)", entries)
	}

	keys := kr.Keys(t0)
	if len(keys) != 1 || !keys[0].Current() || keys[0].ID != kr.CurrentID() || !keys[0].Created.Equal(t0) {
		t.Fatalf("keys after generate: %+v", keys)
	}
	if !regexp.MustCompile(`^k-[a-z2-7]{8}$`).MatchString(keys[0].ID) {
		t.Errorf("key id %q does not have the form k-xxxxxxxx", keys[0].ID)
	}
	if !strings.HasPrefix(keys[0].PublicMultibase, "zDn") {
		t.Errorf("public multibase %q is not a P-256 Multikey", keys[0].PublicMultibase)
	}
	pub, err := atcrypto.ParsePublicMultibase(keys[0].PublicMultibase)
	if err != nil {
		t.Fatal(err)
	}
	if got := keyIDFor(pub); got != keys[0].ID {
		t.Errorf("key id %q, recomputed %q", keys[0].ID, got)
	}

	loaded, err := LoadKeyring(ctx, s, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := loaded.Keys(t0); !slices.Equal(got, keys) {
		t.Errorf("loaded keys %+v, want %+v", got, keys)
	}

	_, err = GenerateKeyring(ctx, s, t0)
	want := fmt.Sprintf("generate keys: key file %s already holds keys; rotate them instead", path)
	if err == nil || err.Error() != want {
		t.Errorf("second generate: got %v, want %q", err, want)
	}
}

func TestLoadKeyringWithoutKeys(t *testing.T) {
	s, _ := fileStorage(t)
	_, err := LoadKeyring(context.Background(), s, t0)
	if !errors.Is(err, ErrNoKeys) {
		t.Fatalf("got %v, want ErrNoKeys", err)
	}
}

func TestLoadOrGenerateKeyring(t *testing.T) {
	ctx := context.Background()
	s, _ := fileStorage(t)
	first, err := LoadOrGenerateKeyring(ctx, s, t0)
	if err != nil {
		t.Fatal(err)
	}
	second, err := LoadOrGenerateKeyring(ctx, s, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if first.CurrentID() != second.CurrentID() {
		t.Errorf("second start made key %s, want the stored %s", second.CurrentID(), first.CurrentID())
	}
}

func TestRotateOverlapAndRetire(t *testing.T) {
	ctx := context.Background()
	s, _ := fileStorage(t)
	kr, err := GenerateKeyring(ctx, s, t0)
	if err != nil {
		t.Fatal(err)
	}
	oldID := kr.CurrentID()
	rotatedAt := t0.Add(time.Hour)
	fresh, err := kr.Rotate(ctx, 24*time.Hour, rotatedAt)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.ID == oldID || !fresh.Current() || kr.CurrentID() != fresh.ID || !fresh.Created.Equal(rotatedAt) {
		t.Fatalf("rotate returned %+v (old %s, current %s)", fresh, oldID, kr.CurrentID())
	}
	retireAt := rotatedAt.Add(24 * time.Hour)

	during := kr.Keys(rotatedAt.Add(time.Minute))
	if len(during) != 2 || during[0].ID != fresh.ID || during[1].ID != oldID || !during[1].RetireAt.Equal(retireAt) || during[1].Current() {
		t.Fatalf("keys during overlap: %+v", during)
	}
	if after := kr.Keys(retireAt); len(after) != 1 || after[0].ID != fresh.ID {
		t.Fatalf("keys at retire time: %+v", after)
	}

	id, _, err := kr.Sign([]byte("x"))
	if err != nil || id != fresh.ID {
		t.Fatalf("sign after rotate used %q (%v), want %q", id, err, fresh.ID)
	}

	// Reloaded inside the overlap, both keys survive.
	reloaded, err := LoadKeyring(ctx, s, rotatedAt.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := reloaded.Keys(rotatedAt.Add(2 * time.Hour)); !slices.Equal(got, during) {
		t.Errorf("reloaded during overlap: %+v, want %+v", got, during)
	}

	// Reloaded after it, the old key is dropped and the file rewritten.
	if _, err := LoadKeyring(ctx, s, retireAt); err != nil {
		t.Fatal(err)
	}
	data, err := s.LoadKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := decodeKeys(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].info.ID != fresh.ID {
		t.Errorf("stored after retire: %d keys, first %s; want only %s", len(stored), stored[0].info.ID, fresh.ID)
	}
}

func TestRotateWithZeroOverlapDropsOldKey(t *testing.T) {
	ctx := context.Background()
	s, _ := fileStorage(t)
	kr, err := GenerateKeyring(ctx, s, t0)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := kr.Rotate(ctx, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.Keys(t0); len(got) != 1 || got[0].ID != fresh.ID {
		t.Errorf("keys: %+v, want only %s", got, fresh.ID)
	}
}

func TestRotateRefusesNegativeOverlap(t *testing.T) {
	ctx := context.Background()
	s, _ := fileStorage(t)
	kr, err := GenerateKeyring(ctx, s, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kr.Rotate(ctx, -time.Second, t0)
	if err == nil || err.Error() != "rotate keys: negative overlap -1s" {
		t.Errorf("got %v", err)
	}
}

// failingStorage holds keys in memory and fails saves on demand.
type failingStorage struct {
	data     []byte
	failSave bool
}

func (m *failingStorage) LoadKeys(context.Context) ([]byte, error) {
	if m.data == nil {
		return nil, ErrNoKeys
	}
	return m.data, nil
}

func (m *failingStorage) SaveKeys(_ context.Context, data []byte) error {
	if m.failSave {
		return errors.New("disk full")
	}
	m.data = slices.Clone(data)
	return nil
}

func TestRotateKeepsStateWhenSaveFails(t *testing.T) {
	ctx := context.Background()
	s := &failingStorage{}
	kr, err := GenerateKeyring(ctx, s, t0)
	if err != nil {
		t.Fatal(err)
	}
	before := kr.Keys(t0)
	s.failSave = true
	_, err = kr.Rotate(ctx, time.Hour, t0)
	if err == nil || err.Error() != "save keys: disk full" {
		t.Fatalf("got %v, want save error", err)
	}
	if got := kr.Keys(t0); !slices.Equal(got, before) {
		t.Errorf("keys changed after failed rotate: %+v, want %+v", got, before)
	}
}

func TestSignAndCurrentECDSA(t *testing.T) {
	kr, err := GenerateKeyring(context.Background(), &failingStorage{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte("conference invitation")
	id, sig, err := kr.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	if id != kr.CurrentID() || len(sig) != 64 {
		t.Fatalf("sign: id %q, %d-byte signature", id, len(sig))
	}
	pub, err := atcrypto.ParsePublicMultibase(kr.Keys(t0)[0].PublicMultibase)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.HashAndVerify(payload, sig); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	if err := pub.HashAndVerify([]byte("conference invitatioN"), sig); err == nil {
		t.Error("signature verifies for another payload")
	}

	ecID, priv, err := kr.CurrentECDSA()
	if err != nil {
		t.Fatal(err)
	}
	uncompressed, err := priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if ecID != id || string(uncompressed) != string(pub.UncompressedBytes()) {
		t.Errorf("CurrentECDSA gives key %s with another public key than %s", ecID, id)
	}
}

func TestKeyFileReadableByOthersRefused(t *testing.T) {
	ctx := context.Background()
	s, path := fileStorage(t)
	if _, err := GenerateKeyring(ctx, s, t0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := LoadKeyring(ctx, s, t0)
	want := fmt.Sprintf("load keys: key file %s has mode 0640 and is accessible by group or others; run chmod 600 %s", path, path)
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestCorruptKeyFile(t *testing.T) {
	p256, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	info, err := keyInfoFor(p256)
	if err != nil {
		t.Fatal(err)
	}
	p256b, err := atcrypto.GeneratePrivateKeyP256()
	if err != nil {
		t.Fatal(err)
	}
	infoB, err := keyInfoFor(p256b)
	if err != nil {
		t.Fatal(err)
	}
	k256, err := atcrypto.GeneratePrivateKeyK256()
	if err != nil {
		t.Fatal(err)
	}
	key := func(id, mb, retire string) string {
		s := fmt.Sprintf(`{"id":%q,"private_multibase":%q,"created":"2026-03-01T09:00:00Z"`, id, mb)
		if retire != "" {
			s += fmt.Sprintf(`,"retire_at":%q`, retire)
		}
		return s + "}"
	}
	good := key(info.ID, p256.Multibase(), "")
	other := key(infoB.ID, p256b.Multibase(), "")
	file := func(keys ...string) string {
		return `{"version":1,"keys":[` + strings.Join(keys, ",") + `]}`
	}

	cases := []struct {
		name, content, want string
	}{
		{"empty", "", "empty key file"},
		{"truncated JSON", `{"version":1,"keys":[`, "bad JSON: unexpected EOF"},
		{"not JSON", "version=1", "bad JSON: invalid character 'v' looking for beginning of value"},
		{"trailing data", file(good) + "{}", "bad JSON: data after the top-level value"},
		{"duplicate field", `{"version":1,"version":1,"keys":[]}`, `bad JSON: duplicate key "version"`},
		{"unknown field", `{"version":1,"keys":[],"extra":true}`, `bad JSON: json: unknown field "extra"`},
		{"unknown version", `{"version":2,"keys":[` + good + `]}`, "unknown version 2 (expected 1)"},
		{"missing version", `{"keys":[` + good + `]}`, "unknown version 0 (expected 1)"},
		{"no keys", file(), "no keys in key file"},
		{"key does not parse", file(key("k-aaaaaaaa", "zNotAKey", "")),
			`key 0 ("k-aaaaaaaa") does not parse: unsupported atproto key type (unknown multicodec prefix)`},
		{"K-256 key", file(key("k-aaaaaaaa", k256.Multibase(), "")), `key 0 ("k-aaaaaaaa") is not a P-256 key`},
		{"id does not match key", file(key("k-aaaaaaaa", p256.Multibase(), "")),
			fmt.Sprintf(`key 0 has id "k-aaaaaaaa" but its public key gives %q`, info.ID)},
		{"missing created", file(`{"id":"` + info.ID + `","private_multibase":"` + p256.Multibase() + `"}`),
			fmt.Sprintf("key %q has no created time", info.ID)},
		{"duplicate key", file(good, good), fmt.Sprintf("key %q appears twice", info.ID)},
		{"no current key", file(key(info.ID, p256.Multibase(), "2026-04-01T00:00:00Z")),
			"no current key (every key has a retire_at)"},
		{"two current keys", file(good, other), "2 current keys (keys without retire_at); expected exactly one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, path := fileStorage(t)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyring(context.Background(), s, t0)
			want := "key file " + path + ": " + tc.want
			if err == nil || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
		})
	}
}

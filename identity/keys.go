package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bluesky-social/indigo/atproto/atcrypto"
)

// ErrNoKeys is returned by a KeyStorage when nothing has been stored yet.
var ErrNoKeys = errors.New("identity: no keys stored")

// keyFileVersion is the only stored key format this code reads and writes.
const keyFileVersion = 1

// KeyInfo describes one of the node's signing keys without its secret.
type KeyInfo struct {
	// ID is the key's fragment in the DID document ("k-" and 8 base32
	// characters of the SHA-256 of the compressed public key), so it is the
	// same wherever the key is loaded.
	ID string
	// PublicMultibase is the atcrypto Multibase encoding ("zDn…").
	PublicMultibase string
	Created         time.Time
	// RetireAt is when a previous key stops being published; zero for the
	// current key.
	RetireAt time.Time
}

// Current reports whether this is the key new signatures are made with.
func (k KeyInfo) Current() bool { return k.RetireAt.IsZero() }

func (k KeyInfo) retiredAt(now time.Time) bool {
	return !k.RetireAt.IsZero() && !now.Before(k.RetireAt)
}

// KeyStorage persists the keyring's serialized form. The bytes contain
// private keys: implementations must keep them away from other users.
type KeyStorage interface {
	// LoadKeys returns ErrNoKeys (possibly wrapped) when nothing is stored.
	LoadKeys(ctx context.Context) ([]byte, error)
	SaveKeys(ctx context.Context, data []byte) error
}

// Keyring holds the node's current signing key and the previous keys that
// peers may still verify against during a rotation overlap. It is safe for
// concurrent use.
type Keyring struct {
	storage KeyStorage

	mu sync.RWMutex
	// keys holds the current key first, then previous keys newest first.
	keys []signingKey
}

type signingKey struct {
	info KeyInfo
	priv *atcrypto.PrivateKeyP256
}

// GenerateKeyring creates a keyring with one fresh key and stores it. It
// refuses to overwrite keys already in storage, since that would silently
// change the node's identity.
func GenerateKeyring(ctx context.Context, s KeyStorage, now time.Time) (*Keyring, error) {
	_, err := s.LoadKeys(ctx)
	switch {
	case err == nil:
		return nil, fmt.Errorf("generate keys: %s already holds keys; rotate them instead", describeStorage(s))
	case !errors.Is(err, ErrNoKeys):
		return nil, fmt.Errorf("generate keys: %w", err)
	}
	key, err := newSigningKey(now, nil)
	if err != nil {
		return nil, err
	}
	k := &Keyring{storage: s}
	if err := k.save(ctx, []signingKey{key}); err != nil {
		return nil, err
	}
	k.keys = []signingKey{key}
	return k, nil
}

// LoadKeyring reads the keyring from storage and drops previous keys whose
// retire time has passed, saving the result if anything was dropped.
// ErrNoKeys from the storage is returned unchanged.
func LoadKeyring(ctx context.Context, s KeyStorage, now time.Time) (*Keyring, error) {
	data, err := s.LoadKeys(ctx)
	if err != nil {
		if errors.Is(err, ErrNoKeys) {
			return nil, err
		}
		return nil, fmt.Errorf("load keys: %w", err)
	}
	keys, err := decodeKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describeStorage(s), err)
	}
	k := &Keyring{storage: s}
	kept := withoutRetired(keys, now)
	if len(kept) != len(keys) {
		if err := k.save(ctx, kept); err != nil {
			return nil, err
		}
	}
	k.keys = kept
	return k, nil
}

// LoadOrGenerateKeyring loads the stored keyring, or generates one when the
// storage is empty (a node's first start).
func LoadOrGenerateKeyring(ctx context.Context, s KeyStorage, now time.Time) (*Keyring, error) {
	k, err := LoadKeyring(ctx, s, now)
	if errors.Is(err, ErrNoKeys) {
		return GenerateKeyring(ctx, s, now)
	}
	return k, err
}

// Rotate makes a fresh key current. The previous current key stays published,
// verify-only, until now+overlap so peers holding messages signed with it can
// still check them. The new state is persisted before it takes effect.
func (k *Keyring) Rotate(ctx context.Context, overlap time.Duration, now time.Time) (KeyInfo, error) {
	if overlap < 0 {
		return KeyInfo{}, fmt.Errorf("rotate keys: negative overlap %s", overlap)
	}
	k.mu.Lock()
	defer k.mu.Unlock()

	fresh, err := newSigningKey(now, k.keys)
	if err != nil {
		return KeyInfo{}, err
	}
	next := make([]signingKey, 0, len(k.keys)+1)
	next = append(next, fresh)
	for _, old := range k.keys {
		if old.info.Current() {
			old.info.RetireAt = now.Add(overlap).UTC()
		}
		next = append(next, old)
	}
	next = withoutRetired(next, now)
	if err := k.save(ctx, next); err != nil {
		return KeyInfo{}, err
	}
	k.keys = next
	return fresh.info, nil
}

// Keys lists the keys to publish at now: the current key first, then
// previous keys still inside their overlap.
func (k *Keyring) Keys(now time.Time) []KeyInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]KeyInfo, 0, len(k.keys))
	for _, key := range k.keys {
		if !key.info.retiredAt(now) {
			out = append(out, key.info)
		}
	}
	return out
}

// CurrentID returns the fragment of the key new signatures are made with.
func (k *Keyring) CurrentID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[0].info.ID
}

// Sign signs payload with the current key: SHA-256, then a 64-byte r||s
// ECDSA signature normalised to low-S, as atcrypto verifies it.
func (k *Keyring) Sign(payload []byte) (keyID string, sig []byte, err error) {
	k.mu.RLock()
	key := k.keys[0]
	k.mu.RUnlock()
	sig, err = key.priv.HashAndSign(payload)
	if err != nil {
		return "", nil, fmt.Errorf("sign with key %s: %w", key.info.ID, err)
	}
	return key.info.ID, sig, nil
}

// CurrentECDSA exposes the current key as a standard library key, for
// signing schemes (HTTP Signatures) that atcrypto does not implement.
func (k *Keyring) CurrentECDSA() (keyID string, priv *ecdsa.PrivateKey, err error) {
	k.mu.RLock()
	key := k.keys[0]
	k.mu.RUnlock()
	priv, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), key.priv.Bytes())
	if err != nil {
		return "", nil, fmt.Errorf("convert key %s to ecdsa: %w", key.info.ID, err)
	}
	return key.info.ID, priv, nil
}

func (k *Keyring) save(ctx context.Context, keys []signingKey) error {
	data, err := encodeKeys(keys)
	if err != nil {
		return err
	}
	if err := k.storage.SaveKeys(ctx, data); err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	return nil
}

// newSigningKey generates a P-256 key whose ID differs from every existing
// one; the ID is a short hash, so a clash is astronomically unlikely but
// would make two keys indistinguishable in the DID document.
func newSigningKey(now time.Time, existing []signingKey) (signingKey, error) {
	for range 3 {
		priv, err := atcrypto.GeneratePrivateKeyP256()
		if err != nil {
			return signingKey{}, fmt.Errorf("generate P-256 key: %w", err)
		}
		info, err := keyInfoFor(priv)
		if err != nil {
			return signingKey{}, err
		}
		clash := slices.ContainsFunc(existing, func(s signingKey) bool { return s.info.ID == info.ID })
		if clash {
			continue
		}
		info.Created = now.UTC()
		return signingKey{info: info, priv: priv}, nil
	}
	return signingKey{}, errors.New("generate P-256 key: key id clashed three times")
}

func keyInfoFor(priv *atcrypto.PrivateKeyP256) (KeyInfo, error) {
	pub, err := priv.PublicKey()
	if err != nil {
		return KeyInfo{}, fmt.Errorf("derive public key: %w", err)
	}
	return KeyInfo{ID: keyIDFor(pub), PublicMultibase: pub.Multibase()}, nil
}

func keyIDFor(pub atcrypto.PublicKey) string {
	sum := sha256.Sum256(pub.Bytes())
	enc := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])
	return "k-" + strings.ToLower(enc[:8])
}

func withoutRetired(keys []signingKey, now time.Time) []signingKey {
	out := make([]signingKey, 0, len(keys))
	for _, key := range keys {
		if !key.info.retiredAt(now) {
			out = append(out, key)
		}
	}
	return out
}

// keyFile is the stored form of a keyring.
type keyFile struct {
	Version int         `json:"version"`
	Keys    []storedKey `json:"keys"`
}

type storedKey struct {
	ID               string    `json:"id"`
	PrivateMultibase string    `json:"private_multibase"`
	Created          time.Time `json:"created"`
	RetireAt         time.Time `json:"retire_at,omitzero"`
}

func encodeKeys(keys []signingKey) ([]byte, error) {
	f := keyFile{Version: keyFileVersion, Keys: make([]storedKey, 0, len(keys))}
	for _, key := range keys {
		f.Keys = append(f.Keys, storedKey{
			ID:               key.info.ID,
			PrivateMultibase: key.priv.Multibase(),
			Created:          key.info.Created,
			RetireAt:         key.info.RetireAt,
		})
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode keys: %w", err)
	}
	return append(data, '\n'), nil
}

// decodeKeys parses and checks the stored form; every error says what is
// wrong so that an operator can repair or restore the file.
func decodeKeys(data []byte) ([]signingKey, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty key file")
	}
	if err := checkStrictJSON(data); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f keyFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("bad JSON: data after the key object")
	}
	if f.Version != keyFileVersion {
		return nil, fmt.Errorf("unknown version %d (expected %d)", f.Version, keyFileVersion)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("no keys in key file")
	}
	keys := make([]signingKey, 0, len(f.Keys))
	for i, sk := range f.Keys {
		parsed, err := atcrypto.ParsePrivateMultibase(sk.PrivateMultibase)
		if err != nil {
			return nil, fmt.Errorf("key %d (%q) does not parse: %w", i, sk.ID, err)
		}
		priv, ok := parsed.(*atcrypto.PrivateKeyP256)
		if !ok {
			return nil, fmt.Errorf("key %d (%q) is not a P-256 key", i, sk.ID)
		}
		info, err := keyInfoFor(priv)
		if err != nil {
			return nil, fmt.Errorf("key %d (%q): %w", i, sk.ID, err)
		}
		if sk.ID != info.ID {
			return nil, fmt.Errorf("key %d has id %q but its public key gives %q", i, sk.ID, info.ID)
		}
		if sk.Created.IsZero() {
			return nil, fmt.Errorf("key %q has no created time", sk.ID)
		}
		if slices.ContainsFunc(keys, func(s signingKey) bool { return s.info.ID == sk.ID }) {
			return nil, fmt.Errorf("key %q appears twice", sk.ID)
		}
		info.Created = sk.Created.UTC()
		if !sk.RetireAt.IsZero() {
			info.RetireAt = sk.RetireAt.UTC()
		}
		keys = append(keys, signingKey{info: info, priv: priv})
	}
	current := 0
	for _, key := range keys {
		if key.info.Current() {
			current++
		}
	}
	switch {
	case current == 0:
		return nil, errors.New("no current key (every key has a retire_at)")
	case current > 1:
		return nil, fmt.Errorf("%d current keys (keys without retire_at); expected exactly one", current)
	}
	slices.SortStableFunc(keys, func(a, b signingKey) int {
		if a.info.Current() != b.info.Current() {
			if a.info.Current() {
				return -1
			}
			return 1
		}
		return b.info.Created.Compare(a.info.Created)
	})
	return keys, nil
}

// describeStorage names the storage in errors; file storage names its path.
func describeStorage(s KeyStorage) string {
	if str, ok := s.(fmt.Stringer); ok {
		return str.String()
	}
	return "key storage"
}

package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxKeyFileBytes bounds what is read from a key file; a real one holds a
// handful of keys and is well under a kilobyte.
const maxKeyFileBytes = 1 << 20

// FileKeyStorage keeps the keyring in one file that only its owner may read.
type FileKeyStorage struct {
	path string
}

// NewFileKeyStorage stores keys at path. The file is written atomically with
// mode 0600, creating its parent directory with mode 0700 when missing.
func NewFileKeyStorage(path string) KeyStorage {
	return &FileKeyStorage{path: path}
}

// String names the file in error messages.
func (f *FileKeyStorage) String() string { return "key file " + f.path }

// LoadKeys reads the key file. It refuses a file that group or others can
// access: the private keys may already have leaked, and the operator should
// know rather than have the node carry on.
func (f *FileKeyStorage) LoadKeys(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	file, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key file %s: %w", f.path, ErrNoKeys)
	}
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", f.path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o and is accessible by group or others; run chmod 600 %s", f.path, perm, f.path)
	}
	data, err := io.ReadAll(io.LimitReader(file, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("key file %s is larger than %d bytes", f.path, maxKeyFileBytes)
	}
	return data, nil
}

// SaveKeys replaces the key file atomically (temporary file, fsync, rename)
// so a crash never leaves a half-written keyring.
func (f *FileKeyStorage) SaveKeys(ctx context.Context, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(f.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary key file: %w", err)
	}
	tmpName := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod temporary key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write temporary key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync temporary key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temporary key file: %w", err)
	}
	if err := os.Rename(tmpName, f.path); err != nil {
		return fmt.Errorf("replace key file: %w", err)
	}
	ok = true
	// The rename is durable only once the directory entry is synced.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

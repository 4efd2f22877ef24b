package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLiveKitCredentials(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "lk-secret")
	if err := os.WriteFile(secretFile, []byte("  "+strings.Repeat("s", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"off", "", ""},
		{"inline", "livekit:\n  api_key: APIdemo\n  api_secret: " + strings.Repeat("x", 32) + "\n", ""},
		{"file", "livekit:\n  api_key: APIdemo\n  api_secret_file: " + secretFile + "\n", ""},
		{"short secret", "livekit:\n  api_key: APIdemo\n  api_secret: short\n", "livekit.api_secret: must be at least 32 characters, got 5"},
		{"short file", "livekit:\n  api_key: APIdemo\n  api_secret_file: " + short + "\n", "livekit.api_secret_file: must be at least 32 characters, got 8"},
		{"no secret", "livekit:\n  api_key: APIdemo\n", "livekit.api_secret: set exactly one of api_secret and api_secret_file"},
		{"both", "livekit:\n  api_key: APIdemo\n  api_secret: " + strings.Repeat("x", 32) + "\n  api_secret_file: " + secretFile + "\n", "livekit.api_secret: set exactly one"},
		{"secret without key", "livekit:\n  api_secret: " + strings.Repeat("x", 32) + "\n", "livekit.api_key: required with api_secret"},
		{"bad key", "livekit:\n  api_key: \"a b\"\n  api_secret: " + strings.Repeat("x", 32) + "\n", "livekit.api_key: must be 3 to 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, minimal+tc.yaml), nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestExampleWithLiveKitLoads(t *testing.T) {
	c := Default()
	c.LiveKit = NewLiveKitCredentials()
	got, err := Load(writeFile(t, ExampleOf(c)), nil)
	if err == nil {
		t.Fatal("example without node name loaded")
	}
	c.Node.Name, c.Node.PublicURL = "Example", "https://visio.example"
	got, err = Load(writeFile(t, ExampleOf(c)), nil)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := got.LiveKit.Secret()
	if err != nil || got.LiveKit.APIKey != c.LiveKit.APIKey || secret != c.LiveKit.APISecret || len(secret) < 32 {
		t.Fatalf("credentials %q %q (%v), want %q %q", got.LiveKit.APIKey, secret, err, c.LiveKit.APIKey, c.LiveKit.APISecret)
	}
	if NewLiveKitCredentials() == c.LiveKit {
		t.Fatal("two generated credentials are equal")
	}
}

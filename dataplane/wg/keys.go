package wg

import "github.com/pwgate/pwgate/dataplane/wg/wgkey"

// Key is a WireGuard key (Curve25519), private or public.
type Key = wgkey.Key

// GenerateKey returns a new private key, clamped as wg genkey's are.
func GenerateKey() (Key, error) { return wgkey.GenerateKey() }

// ParseKey parses a key in base64 (44 characters, as wg genkey and wg
// pubkey print them).
func ParseKey(s string) (Key, error) { return wgkey.Parse(s) }

// Package wgkey is WireGuard's keys (Curve25519) as wg genkey, wg pubkey
// and the configuration write them: standard library only, so that what
// reads a configuration or makes a key (pwctl) links no WireGuard.
package wgkey

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Key is a WireGuard key (Curve25519), private or public.
type Key [32]byte

// GenerateKey returns a new private key, clamped as wg genkey's are.
func GenerateKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return k, err
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	return k, nil
}

// PublicKey returns the public key of private key k (wg pubkey).
func (k Key) PublicKey() Key {
	var p Key
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil { // only for a wrong length, which a Key cannot have
		return p
	}
	copy(p[:], priv.PublicKey().Bytes())
	return p
}

// String returns the key in base64, as wg prints keys.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is all zeros (not set).
func (k Key) IsZero() bool { return k == Key{} }

// Hex returns the key in hex, as WireGuard's configuration protocol (UAPI)
// takes it.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// Short returns wireguard-go's abbreviation of a peer's public key,
// "peer(ABCD…WXYZ)", as its log lines name peers.
func (k Key) Short() string {
	s := k.String()
	return "peer(" + s[0:4] + "…" + s[39:43] + ")"
}

// Parse parses a key in base64 (44 characters, as wg genkey and wg
// pubkey print them).
func Parse(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("not a WireGuard key: want 44 characters of base64 encoding 32 bytes, as wg genkey prints")
	}
	copy(k[:], b)
	return k, nil
}

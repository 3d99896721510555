// Package codec encrypts Temporal payloads with AES-GCM, so URLs, results
// and heartbeat checkpoints are ciphertext in Temporal's database. Each
// payload names the key that sealed it, so keys can rotate: encrypt with
// the newest, decrypt with any still listed.
//
// Keys come as "id:base64key" entries (32-byte keys for AES-256), newest
// first, from BATCHFETCH_CODEC_KEYS (comma-separated) or a file (one per
// line, # comments):
//
//	head -c 32 /dev/urandom | base64    # a new key
//	export BATCHFETCH_CODEC_KEYS="2026-11:$(head -c 32 /dev/urandom | base64)"
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	MetadataEncoding = "binary/encrypted"
	MetadataKeyID    = "encryption-key-id"
)

// Codec is a converter.PayloadCodec sealing payloads with AES-256-GCM.
type Codec struct {
	current string
	keys    map[string]cipher.AEAD
}

// New builds a codec from "id:base64key" entries, the first one current.
func New(entries []string) (*Codec, error) {
	c := &Codec{keys: map[string]cipher.AEAD{}}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		id, b64, ok := strings.Cut(e, ":")
		if !ok || id == "" {
			return nil, fmt.Errorf("codec key %d: want id:base64key", i+1)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("codec key %q: not base64: %w", id, err)
		}
		if len(key) != 32 {
			return nil, fmt.Errorf("codec key %q: %d bytes, want 32 (AES-256)", id, len(key))
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		if _, dup := c.keys[id]; dup {
			return nil, fmt.Errorf("codec key %q listed twice", id)
		}
		c.keys[id] = aead
		if c.current == "" {
			c.current = id
		}
	}
	if c.current == "" {
		return nil, errors.New("codec: no keys")
	}
	return c, nil
}

// FromEnv reads keys from BATCHFETCH_CODEC_KEYS, or from the file named by
// BATCHFETCH_CODEC_KEY_FILE. It returns nil (no encryption) when neither
// is set.
func FromEnv() (*Codec, error) {
	if v := os.Getenv("BATCHFETCH_CODEC_KEYS"); v != "" {
		return New(strings.Split(v, ","))
	}
	if f := os.Getenv("BATCHFETCH_CODEC_KEY_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("codec keys: %w", err)
		}
		return New(strings.Split(string(b), "\n"))
	}
	return nil, nil
}

// Encode implements converter.PayloadCodec.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	aead := c.keys[c.current]
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(MetadataEncoding),
				MetadataKeyID:              []byte(c.current),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.current)),
		}
	}
	return out, nil
}

// Decode implements converter.PayloadCodec. Payloads it did not seal pass
// through unchanged.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != MetadataEncoding {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.keys[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload sealed with key %q, which is not configured", id)
		}
		if len(p.GetData()) < aead.NonceSize() {
			return nil, errors.New("codec: payload too short")
		}
		nonce, sealed := p.GetData()[:aead.NonceSize()], p.GetData()[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, []byte(id))
		if err != nil {
			return nil, fmt.Errorf("codec: payload sealed with key %q does not open: %w", id, err)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return nil, err
		}
		out[i] = &orig
	}
	return out, nil
}

// DataConverter wraps the default converter with c.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter also encrypts failure messages and stack traces, which
// name URLs.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          c.DataConverter(),
		EncodeCommonAttributes: true,
	})
}

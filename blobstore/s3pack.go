package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

var _ Packer = (*S3Bucket)(nil)

// S3PackPutEvery is how long a Sync of an S3 pack may leave its new bytes
// off the server when they have not yet doubled it (see CreatePack).
var S3PackPutEvery = 30 * time.Second

// S3PackSize is the size at which an S3 pack is put and takes no more
// bodies (ErrPackFull): what a chunk's fetch holds in memory of its small
// bodies.
var S3PackSize int64 = 8 << 20

// CreatePack implements Packer. An object cannot be appended to, so an S3
// pack is held in memory and put whole, as one object: on Close, when it
// reaches S3PackSize (the Append that takes it there returns once it is
// put; later ones fail with ErrPackFull), and on a Sync when it has at
// least doubled since it was last put (or was never put), or
// S3PackPutEvery after the last put. Its uploads add up to at most about
// three times its size, where putting it on every Sync (every second)
// would be quadratic; a Sync may therefore count fewer bytes than were
// appended. Bytes are readable, from any machine, once a Sync that counts
// them, or Close, has returned: not when Append returns, as in a Dir.
func (b *S3Bucket) CreatePack(ctx context.Context, key string) (Pack, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return &s3Pack{b: b, ctx: ctx, key: key}, nil
}

type s3Pack struct {
	b   *S3Bucket
	ctx context.Context
	key string

	mu  sync.Mutex // buf, err
	buf []byte
	err error

	put   sync.Mutex // one put at a time; n, putAt
	n     int64      // bytes in the object on the server
	putAt time.Time
}

func (p *s3Pack) Append(b []byte) (int64, error) {
	p.mu.Lock()
	if p.err != nil {
		p.mu.Unlock()
		return 0, p.err
	}
	off := int64(len(p.buf))
	p.buf = append(p.buf, b...)
	full := int64(len(p.buf)) >= S3PackSize
	if full {
		p.err = ErrPackFull
	}
	p.mu.Unlock()
	if full {
		if err := p.seal(); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// seal puts a full pack and lets its memory go. When the put fails, the
// bytes stay for Close to put.
func (p *s3Pack) seal() error {
	p.put.Lock()
	defer p.put.Unlock()
	b, _ := p.appended()
	if err := p.putObject(b); err != nil {
		return err
	}
	p.n, p.putAt = int64(len(b)), time.Now()
	p.mu.Lock()
	p.buf = nil
	p.mu.Unlock()
	return nil
}

// appended is what was appended so far. Appends only add bytes past its
// end, so it can be read while they go on.
func (p *s3Pack) appended() ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf[:len(p.buf):len(p.buf)], p.err
}

func (p *s3Pack) Sync() (int64, error) {
	p.put.Lock()
	defer p.put.Unlock()
	b, _ := p.appended() // a full pack has let its bytes go: all of them are put
	n := int64(len(b))
	if n <= p.n || (p.n > 0 && n < 2*p.n && time.Since(p.putAt) < S3PackPutEvery) {
		return p.n, nil
	}
	if err := p.putObject(b); err != nil {
		return p.n, err
	}
	p.n, p.putAt = n, time.Now()
	return n, nil
}

func (p *s3Pack) putObject(b []byte) error {
	_, err := p.b.client.PutObject(p.ctx, &s3.PutObjectInput{Bucket: &p.b.name, Key: aws.String(p.b.objectKey(p.key)),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b)))})
	if err != nil {
		return fmt.Errorf("blobstore: writing pack %s: %w", p.key, err)
	}
	return nil
}

// Close puts what was appended since the last put, and lets the memory
// go.
func (p *s3Pack) Close() error {
	p.mu.Lock()
	if p.err == nil {
		p.err = errors.New("blobstore: pack closed")
	}
	p.mu.Unlock()
	p.put.Lock()
	defer p.put.Unlock()
	b, _ := p.appended()
	var err error
	if int64(len(b)) > p.n {
		if err = p.putObject(b); err == nil {
			p.n = int64(len(b))
		}
	}
	p.mu.Lock()
	p.buf = nil
	p.mu.Unlock()
	return err
}

package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batchfetch/batchfetch/internal/freeport"
	"github.com/batchfetch/batchfetch/internal/promtext"
)

// The credentials the server accepts. Clients read them from the
// standard AWS variables (Env).
const (
	AccessKey = "batchfetch-test"
	SecretKey = "batchfetch-test-secret-key"
	Region    = "us-east-1"
	// Bucket is the bucket the server makes at start. Names need at
	// least 3 characters.
	Bucket = "batchfetch"
)

// Server is a running weed mini: S3 on Addr (127.0.0.1), its data in a
// directory of the test's (or the one New was given).
type Server struct {
	Addr string // host:port of the S3 API
	// MetricsAddr is host:port of its Prometheus metrics (Requests).
	MetricsAddr string
	dir         string
	bin         string
	args        []string

	mu    sync.Mutex
	cmd   *exec.Cmd
	outMu sync.Mutex
	out   *bytes.Buffer
}

// Start builds weed if need be (Binary), starts it on loopback ports of
// its own and waits until Bucket takes writes. It is stopped when the test
// ends. A machine where weed cannot be built fails the test: these tests
// exist to run against a real server.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// New is Start for a program that is not a test (a benchmark command):
// the server keeps its data in dir, which the caller removes after Stop.
// An error leaves nothing running.
func New(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	// Every port weed mini opens, named, on 127.0.0.1: its defaults
	// (9333, 8333, 9101, ...) would collide with other tests' and the
	// workers' metrics; its gRPC ports default to the HTTP port + 10000.
	p, err := freeport.Find(11)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(p), MetricsAddr: "127.0.0.1:" + strconv.Itoa(p+10), dir: dir, bin: bin}
	s.args = []string{"mini",
		"-dir=" + s.dir, "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-bucket=" + Bucket,
		"-s3.port=" + strconv.Itoa(p), "-s3.port.grpc=" + strconv.Itoa(p+1),
		"-master.port=" + strconv.Itoa(p+2), "-master.port.grpc=" + strconv.Itoa(p+3),
		"-filer.port=" + strconv.Itoa(p+4), "-filer.port.grpc=" + strconv.Itoa(p+5),
		"-volume.port=" + strconv.Itoa(p+6), "-volume.port.grpc=" + strconv.Itoa(p+7),
		"-admin.port=" + strconv.Itoa(p+8), "-admin.port.grpc=" + strconv.Itoa(p+9),
		"-metricsIp=127.0.0.1", "-metricsPort=" + strconv.Itoa(p+10),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-admin.port.legacy=0",
		"-master.telemetry=false", // it would report to a host on the internet
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Env is the environment a client (a worker, the starter) needs for the
// server: the credentials and the region, as the AWS SDK reads them.
func (s *Server) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_REGION=" + Region}
}

// SetEnv sets Env in this test process (for blobstore.Open in the test).
func (s *Server) SetEnv(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_REGION", Region)
}

// URL is the --blob-url of bucket on this server, reached at endpoint
// (host:port; empty: the server's own address, or a proxy in front of it),
// with the options an S3-compatible server needs: path-style addressing,
// plain HTTP, and checksums only where the API requires them.
func (s *Server) URL(bucket, endpoint string) string {
	if endpoint == "" {
		endpoint = s.Addr
	}
	q := url.Values{}
	q.Set("endpoint", "http://"+endpoint)
	q.Set("region", Region)
	q.Set("use_path_style", "true")
	q.Set("disable_https", "true")
	q.Set("request_checksum_calculation", "when_required")
	q.Set("response_checksum_validation", "when_required")
	return "s3://" + bucket + "?" + q.Encode()
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = append(os.Environ(), s.Env()...)
	cmd.Dir = s.dir
	s.out = &bytes.Buffer{}
	w := &lockedWriter{w: s.out, mu: &s.outMu}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("s3test: starting weed: %w", err)
	}
	s.cmd = cmd
	return nil
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server and starts it again on the same ports and
// data directory, and waits until it takes writes: what it held before
// (objects, unfinished uploads) it holds again.
func (s *Server) Restart() error {
	s.Stop()
	if err := s.start(); err != nil {
		return err
	}
	return s.waitReady()
}

// Output is what the server has printed so far.
func (s *Server) Output() string {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	return s.out.String()
}

// waitReady waits until an object can be written to and deleted from
// Bucket: the S3 port opens before the filer and volume behind it serve.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(2 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		if last = s.probe(); last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond) // a separate process: only trying tells
	}
	return fmt.Errorf("s3test: weed mini did not serve S3 on %s within 2 minutes: %v\n%s", s.Addr, last, s.Output())
}

func (s *Server) probe() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := s.Client()
	key := ".s3test-probe"
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(Bucket), Key: &key, Body: strings.NewReader("ok")}); err != nil {
		return err
	}
	_, err = cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(Bucket), Key: &key})
	return err
}

// Client is an S3 client for the server, with its credentials: for a
// test to look into a bucket the way an operator would.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     Region,
		BaseEndpoint:               aws.String("http://" + s.Addr),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Keys lists every object in bucket, and every multipart upload not
// completed or aborted (as "upload:<key>").
func (s *Server) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	keys, err := s.List(bucket)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// List is Keys for a program that is not a test.
func (s *Server) List(bucket string) ([]string, error) {
	ctx := context.Background()
	cl := s.Client()
	var keys []string
	p := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	ups, err := cl.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		return nil, fmt.Errorf("listing %s's multipart uploads: %w", bucket, err)
	}
	for _, u := range ups.Uploads {
		keys = append(keys, "upload:"+aws.ToString(u.Key))
	}
	return keys, nil
}

// Pid is the server process's (0 when it is not running): for a
// benchmark to read the CPU time it spent.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Requests counts the S3 requests the server has answered, by kind
// (its metrics' type label: PUT, GET, HEAD, DELETE, POST, LIST, COPY),
// whatever their status, since it started.
func (s *Server) Requests(t testing.TB) map[string]int64 {
	t.Helper()
	const name = "SeaweedFS_s3_request_total{"
	out := map[string]int64{}
	for sample, v := range promtext.Scrape(t, "http://"+s.MetricsAddr+"/metrics") {
		labels, ok := strings.CutPrefix(sample, name)
		if !ok {
			continue
		}
		for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			if kind, ok := strings.CutPrefix(l, `type="`); ok {
				out[strings.TrimSuffix(kind, `"`)] += int64(v)
			}
		}
	}
	return out
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Package cli holds what the worker and starter commands share: the
// Temporal connection from the standard TEMPORAL_* environment, and flags
// that fall back to BATCHFETCH_* environment variables.
package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/batchfetch/batchfetch/codec"
)

// ClientOptions reads the connection from the environment (and the
// optional config file) the temporal CLI uses: TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_CLIENT_CERT_PATH,
// TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH,
// TEMPORAL_PROFILE, TEMPORAL_CONFIG_FILE... Unset means localhost:7233 and
// namespace "default". With BATCHFETCH_CODEC_KEYS or
// BATCHFETCH_CODEC_KEY_FILE set, payloads are encrypted (package codec).
func ClientOptions() (client.Options, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return client.Options{}, fmt.Errorf("reading the Temporal connection from TEMPORAL_* variables: %w", err)
	}
	if opts.HostPort == "" {
		opts.HostPort = client.DefaultHostPort
	}
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	cd, err := codec.FromEnv()
	if err != nil {
		return client.Options{}, err
	}
	if cd != nil {
		opts.DataConverter, opts.FailureConverter = cd.DataConverter(), cd.FailureConverter()
	}
	return opts, nil
}

// EnvFallback sets every flag of fs not given on the command line from the
// environment variable prefix + NAME (dashes become underscores), so
// --fetch-slots can also come from BATCHFETCH_FETCH_SLOTS. Call it after
// fs.Parse.
func EnvFallback(fs *flag.FlagSet, prefix string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := EnvName(prefix, f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// EnvName is the variable EnvFallback reads for a flag.
func EnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ShellQuote quotes a word for a POSIX shell, unless it needs none: a
// command line said to copy (a directory with spaces, a URL with &).
func ShellQuote(w string) string {
	if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,@%+-") == "" {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

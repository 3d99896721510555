package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/net/http/httpproxy"

	"github.com/batchfetch/batchfetch/activities"
	"github.com/batchfetch/batchfetch/internal/buildinfo"
	"github.com/batchfetch/batchfetch/internal/workers"
)

// credentials are the flags of the fetch worker's secrets and proxy.
type credentials struct {
	secretsDir, proxy, proxySecret, userAgent string
	hosts                                     secretHosts
}

// credentialFlags declares the secrets and proxy flags.
func credentialFlags(fs *flag.FlagSet, c *credentials) {
	fs.StringVar(&c.secretsDir, "secrets-dir", "", "read secrets from `DIR`, one file per secret as Kubernetes and Docker Compose mount them: the file NAME is the value of ${secret:NAME} (less one trailing line break), read again when it changes; BATCHFETCH_SECRET_NAME comes first")
	c.hosts = secretHosts{}
	fs.Var(c.hosts, "secret-hosts", "limit where a secret may be sent: `NAME=HOSTS`, HOSTS comma-separated (TOKEN=api.example.com,*.example.org); repeatable; in BATCHFETCH_SECRET_HOSTS, entries separated by spaces or ';'")
	fs.StringVar(&c.userAgent, "user-agent", "batchfetch/"+buildinfo.ID(), "the User-Agent header of every request (a batch's own wins)")
	fs.StringVar(&c.proxy, "proxy", "", "send every request through the proxy at `URL`: http://HOST:PORT (CONNECT for https URLs), socks5://HOST:PORT or socks5h://; direct: no proxy, whatever the environment says (default: HTTPS_PROXY, HTTP_PROXY and NO_PROXY)")
	fs.StringVar(&c.proxySecret, "proxy-secret", "", "the secret `NAME` whose value, user:password, authenticates to the proxy; better than a password in --proxy, which ps shows (unless --secret-hosts says otherwise, it may go only to the proxy's host)")
}

// secretHosts is --secret-hosts: secret name to the hosts it may go to.
type secretHosts map[string][]string

func (s secretHosts) String() string {
	var out []string
	for name, hosts := range s {
		out = append(out, name+"="+strings.Join(hosts, ","))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Set takes one or more NAME=HOSTS entries, separated by spaces or ';'
// (BATCHFETCH_SECRET_HOSTS holds them all). A name given twice gets the
// hosts of both.
func (s secretHosts) Set(v string) error {
	entries := strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ' ' || r == '\t' || r == '\n' })
	if len(entries) == 0 {
		return fmt.Errorf("want NAME=HOST[,HOST...]")
	}
	for _, e := range entries {
		name, list, ok := strings.Cut(e, "=")
		if !ok || list == "" {
			return fmt.Errorf("entry %q: want NAME=HOST[,HOST...]", e)
		}
		if err := activities.CheckSecretName(name); err != nil {
			return fmt.Errorf("entry %q: %w", e, err)
		}
		for _, h := range strings.Split(list, ",") {
			if err := activities.CheckHostPattern(h); err != nil {
				return fmt.Errorf("entry %q: %w", e, err)
			}
			s[name] = append(s[name], h)
		}
	}
	return nil
}

// check says what is wrong with the flags (a usage error), or nil.
func (c *credentials) check() error {
	if c.proxy != "" && c.proxy != activities.ProxyDirect {
		if err := activities.CheckProxy(c.proxy); err != nil {
			return fmt.Errorf("--proxy: %w", err)
		}
	}
	if c.proxySecret != "" {
		if err := activities.CheckSecretName(c.proxySecret); err != nil {
			return fmt.Errorf("--proxy-secret: %w", err)
		}
		if len(c.proxyHosts()) == 0 {
			return fmt.Errorf("--proxy-secret %s: there is no proxy to send it to (give --proxy, or set HTTPS_PROXY or HTTP_PROXY)", c.proxySecret)
		}
	}
	return nil
}

// apply opens the secrets, sets cfg's, and says in the log what the
// worker has: names, never values.
func (c *credentials) apply(cfg *workers.Config, logger *zap.Logger) error {
	cfg.HTTP.UserAgent, cfg.HTTP.Proxy, cfg.HTTP.ProxySecret = c.userAgent, c.proxy, c.proxySecret
	if c.proxySecret != "" && c.hosts[c.proxySecret] == nil {
		c.hosts[c.proxySecret] = c.proxyHosts() // a batch's header cannot send it elsewhere
	}
	store, err := activities.NewSecretStore(c.secretsDir, c.hosts, os.Environ())
	if err != nil {
		return fmt.Errorf("--secrets-dir: %w", err)
	}
	cfg.Secrets, cfg.HTTP.Secrets = store, store
	names, err := store.Names()
	if err != nil {
		return fmt.Errorf("--secrets-dir: %w", err)
	}
	logger.Info("secrets", zap.Strings("environment", names.Env), zap.String("secrets_dir", c.secretsDir), zap.Strings("files", names.Dir),
		zap.String("proxy", c.describeProxy()), zap.String("user_agent", c.userAgent))
	if len(names.Unusable) > 0 {
		logger.Warn("files in --secrets-dir that no header can name (a name is letters, digits and '_')", zap.Strings("files", names.Unusable))
	}
	for _, name := range store.Scoped() {
		_, _, ok, err := store.Secret(name)
		switch {
		case err != nil:
			logger.Warn("a secret of --secret-hosts cannot be read", zap.String("secret", name), zap.Error(err))
		case !ok:
			logger.Warn("--secret-hosts names a secret this worker does not have", zap.String("secret", name), zap.String("looked_in", store.Where(name)))
		}
	}
	if c.proxySecret != "" {
		_, _, ok, err := store.Secret(c.proxySecret)
		if err != nil {
			return fmt.Errorf("--proxy-secret %s: %w", c.proxySecret, err)
		}
		if !ok {
			return fmt.Errorf("--proxy-secret %s: the worker has no such secret (looked in %s)", c.proxySecret, store.Where(c.proxySecret))
		}
	}
	return nil
}

// proxyHosts are the hosts of the proxies requests may go through.
func (c *credentials) proxyHosts() []string {
	var raw []string
	switch c.proxy {
	case activities.ProxyDirect:
	case "":
		env := httpproxy.FromEnvironment()
		raw = []string{env.HTTPSProxy, env.HTTPProxy}
	default:
		raw = []string{c.proxy}
	}
	var hosts []string
	for _, r := range raw {
		if r == "" {
			continue
		}
		if u, err := url.Parse(withScheme(r)); err == nil && u.Hostname() != "" {
			hosts = append(hosts, u.Hostname())
		}
	}
	return hosts
}

// describeProxy says which proxy requests go through, passwords hidden.
func (c *credentials) describeProxy() string {
	switch c.proxy {
	case activities.ProxyDirect:
		return "none (--proxy direct)"
	case "":
		env := httpproxy.FromEnvironment()
		if env.HTTPSProxy == "" && env.HTTPProxy == "" {
			return "none"
		}
		return fmt.Sprintf("from the environment: HTTPS_PROXY %q, HTTP_PROXY %q, NO_PROXY %q", redactProxy(env.HTTPSProxy), redactProxy(env.HTTPProxy), env.NoProxy)
	}
	return activities.Redact(c.proxy)
}

// withScheme is a proxy of the environment as a URL: it may be given as
// host:port, meaning http://host:port.
func withScheme(s string) string {
	if s != "" && !strings.Contains(s, "://") {
		return "http://" + s
	}
	return s
}

// redactProxy hides the password of a proxy of the environment.
func redactProxy(s string) string {
	u, err := url.Parse(withScheme(s))
	switch {
	case err != nil && strings.Contains(s, "@"):
		return "(not a URL)"
	case err != nil || u.User == nil:
		return s
	}
	return u.Redacted()
}

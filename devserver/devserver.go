// Package devserver runs a complete Temporal server in-process, backed by
// SQLite, with the Temporal Web UI beside it. It is what `starter --dev`
// and the end-to-end tests use; it is not meant for production.
//
//	srv, err := devserver.Start(devserver.Config{DBFile: "batchfetch.db", UIPort: 8233})
//	if err != nil { ... }
//	defer srv.Stop()
//	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort()})
package devserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	"github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config describes one dev server. The zero value is an in-memory server on
// 127.0.0.1 with a system-chosen port, namespace "default" and no Web UI.
type Config struct {
	// DBFile is the SQLite file that keeps the server's state across
	// restarts. It is created (with its schema) when missing. Empty means an
	// in-memory database that is lost on Stop.
	DBFile string
	// IP to listen on. Default 127.0.0.1.
	IP string
	// Port of the frontend gRPC service. 0 picks a free port.
	Port int
	// UIPort serves the Temporal Web UI on IP:UIPort. 0 disables the UI.
	UIPort int
	// Namespaces to register at start. Default: "default".
	Namespaces []string
	// LogLevel of the server's own log on stderr (debug, info, warn,
	// error). Empty: no server log (it is chatty, even when healthy).
	LogLevel string
	// CodecEndpoint is the codec server the Web UI decodes payloads with
	// (a URL the browser reaches). CodecIncludeCredentials makes the UI
	// send cookies with its decode requests (the codec endpoint's
	// sign-in session).
	CodecEndpoint           string
	CodecIncludeCredentials bool
	// DynamicConfig overrides server settings (see go.temporal.io/server/common/dynamicconfig).
	DynamicConfig map[string]any
}

// Server is a running dev server.
type Server struct {
	server   temporal.Server
	ui       *uiserver.Server
	uiDone   chan struct{}
	hostPort string
	uiAddr   string
	unlock   func() // the database file's lock
}

// Start starts a server and returns when its frontend accepts connections.
// A server with a database file holds it: a second one on the same file
// refuses to start.
func Start(cfg Config) (*Server, error) {
	if cfg.DBFile == "" {
		return startPicking(cfg)
	}
	unlock, err := lockDB(cfg.DBFile)
	if err != nil {
		return nil, err
	}
	s, err := startPicking(cfg)
	if err != nil {
		unlock()
		return nil, err
	}
	s.unlock = unlock
	return s, nil
}

func start(cfg Config) (*Server, error) {
	if cfg.IP == "" {
		cfg.IP = "127.0.0.1"
	}
	if len(cfg.Namespaces) == 0 {
		cfg.Namespaces = []string{"default"}
	}
	var err error
	if cfg.Port == 0 {
		// With a database file the 7 ports after the frontend's are the
		// server's too: pick a base whose whole block is free.
		n := 1
		if cfg.DBFile != "" {
			n = 8
		}
		if cfg.Port, err = freeBlock(cfg.IP, n); err != nil {
			return nil, err
		}
	} else if err := portFree(cfg.IP, cfg.Port); err != nil {
		return nil, err
	}
	if cfg.UIPort != 0 {
		if err := portFree(cfg.IP, cfg.UIPort); err != nil {
			return nil, err
		}
	}

	sqlCfg := &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		ConnectAttributes: map[string]string{},
		DatabaseName:      cfg.DBFile,
	}
	if cfg.DBFile == "" {
		sqlCfg.ConnectAttributes["mode"] = "memory"
		sqlCfg.ConnectAttributes["cache"] = "shared"
		// A distinct name per server: several in-memory servers may share a process.
		sqlCfg.DatabaseName = fmt.Sprintf("devserver-%d-%d", os.Getpid(), time.Now().UnixNano())
	} else {
		sqlCfg.ConnectAttributes["mode"] = "rwc"
		// Keys other than SQLite's URI parameters become PRAGMAs, by
		// name: a write-ahead log, synced at checkpoints rather than at
		// every commit. A crash of the process loses nothing; a power
		// cut may lose the last commits, which a dev server can afford.
		sqlCfg.ConnectAttributes["journal_mode"] = "wal"
		sqlCfg.ConnectAttributes["synchronous"] = "normal"
		sqlCfg.ConnectAttributes["busy_timeout"] = "10000"
		if _, err := os.Stat(cfg.DBFile); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(cfg.DBFile), 0o755); err != nil {
				return nil, fmt.Errorf("devserver: creating directory for %s: %w", cfg.DBFile, err)
			}
			if err := sqlite.SetupSchema(sqlCfg); err != nil {
				return nil, fmt.Errorf("devserver: setting up schema in %s: %w", cfg.DBFile, err)
			}
		}
	}

	serverCfg, err := serverConfig(cfg, sqlCfg)
	if err != nil {
		return nil, err
	}

	var namespaces []*sqlite.NamespaceConfig
	for _, ns := range cfg.Namespaces {
		nsCfg, err := sqlite.NewNamespaceConfig(serverCfg.ClusterMetadata.CurrentClusterName, ns, false, nil)
		if err != nil {
			return nil, fmt.Errorf("devserver: namespace %q: %w", ns, err)
		}
		namespaces = append(namespaces, nsCfg)
	}
	if err := sqlite.CreateNamespaces(sqlCfg, namespaces...); err != nil {
		return nil, fmt.Errorf("devserver: creating namespaces: %w", err)
	}

	var logger log.Logger = log.NewNoopLogger()
	if cfg.LogLevel != "" {
		lvl, err := zapcore.ParseLevel(cfg.LogLevel)
		if err != nil {
			return nil, fmt.Errorf("devserver: log level: %w", err)
		}
		zc := zap.NewProductionConfig()
		zc.Level = zap.NewAtomicLevelAt(lvl)
		z, err := zc.Build()
		if err != nil {
			return nil, fmt.Errorf("devserver: logger: %w", err)
		}
		logger = log.NewZapLogger(z)
	}
	authorizer, err := authorization.GetAuthorizerFromConfig(&serverCfg.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devserver: authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&serverCfg.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: claim mapper: %w", err)
	}

	dc := dynamicconfig.StaticClient{
		// Visibility is read right after writes by the starter and the tests.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
	}
	for k, v := range cfg.DynamicConfig {
		dc[dynamicconfig.MakeKey(k)] = v
	}

	srv, err := runServer(
		temporal.WithConfig(serverCfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dc),
	)
	if err != nil {
		return nil, err
	}
	s := &Server{server: srv, hostPort: net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port))}

	if cfg.UIPort != 0 {
		s.uiAddr = net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.UIPort))
		uc := uiconfig.Config{
			TemporalGRPCAddress: s.hostPort,
			Host:                cfg.IP,
			Port:                cfg.UIPort,
			EnableUI:            true,
			DefaultNamespace:    cfg.Namespaces[0],
			HideLogs:            true,
			DisableNewsFetch:    true,
			CORS:                uiconfig.CORS{CookieInsecure: true},
		}
		uc.Codec.Endpoint, uc.Codec.IncludeCredentials = cfg.CodecEndpoint, cfg.CodecIncludeCredentials
		s.ui = uiserver.NewServer(server_options.WithConfigProvider(&uiConfig{cfg: uc}))
		s.uiDone = make(chan struct{})
		uiErr := make(chan error, 1)
		go func() {
			defer close(s.uiDone)
			uiErr <- s.ui.Start()
		}()
		// Start returns once the UI answers: whoever opens it next (a
		// browser, a test) is not refused.
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", s.uiAddr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-uiErr:
				_ = s.Stop()
				return nil, fmt.Errorf("devserver: the Web UI on %s: %v", s.uiAddr, err)
			case <-time.After(20 * time.Millisecond): // the UI's listener is not ours to watch
			}
			if time.Now().After(deadline) {
				_ = s.Stop()
				return nil, fmt.Errorf("devserver: the Web UI on %s did not start within 30 s", s.uiAddr)
			}
		}
	}
	return s, nil
}

// FrontendHostPort is the host:port clients dial.
func (s *Server) FrontendHostPort() string { return s.hostPort }

// UIAddress is the Web UI's base URL, or "" when the UI is off.
func (s *Server) UIAddress() string {
	if s.uiAddr == "" {
		return ""
	}
	return "http://" + s.uiAddr
}

// Stop stops the Web UI and the server.
func (s *Server) Stop() error {
	if s.ui != nil {
		s.ui.Stop()
		<-s.uiDone
	}
	err := s.server.Stop()
	if s.unlock != nil {
		s.unlock()
	}
	return err
}

type uiConfig struct{ cfg uiconfig.Config }

func (u *uiConfig) GetConfig() (*uiconfig.Config, error) {
	c := u.cfg
	return &c, nil
}

func serverConfig(cfg Config, sqlCfg *config.SQL) (*config.Config, error) {
	// ports: membership of frontend; gRPC and membership of history,
	// matching and worker. With a database file they are fixed (next to
	// the frontend's, as in a default Temporal install) so a restarted
	// server finds itself at the addresses its database remembers;
	// otherwise the server waits for stale members to expire.
	ports := make([]int, 7)
	for i := range ports {
		if cfg.DBFile != "" {
			ports[i] = cfg.Port + 1 + i
			if err := portFree(cfg.IP, ports[i]); err != nil {
				return nil, fmt.Errorf("%w (a server with a database file also takes the %d ports after its frontend's, %d to %d)", err, len(ports), cfg.Port+1, cfg.Port+len(ports))
			}
			continue
		}
		p, err := freePort(cfg.IP)
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	service := func(grpc, membership int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: grpc, MembershipPort: membership, BindOnIP: cfg.IP}}
	}
	const clusterName = "active"
	return &config.Config{
		Global: config.Global{
			Membership: config.Membership{MaxJoinDuration: 30 * time.Second, BroadcastAddress: cfg.IP},
		},
		Persistence: config.Persistence{
			DefaultStore:     sqliteplugin.PluginName,
			VisibilityStore:  sqliteplugin.PluginName,
			NumHistoryShards: 1,
			DataStores:       map[string]config.DataStore{sqliteplugin.PluginName: {SQL: sqlCfg}},
		},
		ClusterMetadata: &cluster.Config{
			EnableGlobalNamespace:    false,
			FailoverVersionIncrement: 10,
			MasterClusterName:        clusterName,
			CurrentClusterName:       clusterName,
			ClusterInformation: map[string]cluster.ClusterInformation{
				clusterName: {Enabled: true, InitialFailoverVersion: 1, RPCAddress: net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port))},
			},
		},
		DCRedirectionPolicy: config.DCRedirectionPolicy{Policy: "noop"},
		Services: map[string]config.Service{
			"frontend": service(cfg.Port, ports[0]),
			"history":  service(ports[1], ports[2]),
			"matching": service(ports[3], ports[4]),
			"worker":   service(ports[5], ports[6]),
		},
		Archival: config.Archival{
			History:    config.HistoryArchival{State: "disabled"},
			Visibility: config.VisibilityArchival{State: "disabled"},
		},
		PublicClient: config.PublicClient{HostPort: net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port))},
		NamespaceDefaults: config.NamespaceDefaults{Archival: config.ArchivalNamespaceDefaults{
			History:    config.HistoryArchivalNamespaceDefaults{State: "disabled"},
			Visibility: config.VisibilityArchivalNamespaceDefaults{State: "disabled"},
		}},
	}, nil
}

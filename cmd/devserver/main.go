// Command devserver runs the embedded Temporal dev server (SQLite file,
// namespace default) with the Web UI, until SIGINT or SIGTERM:
//
//	go run ./cmd/devserver --db batchfetch.sqlite     # 127.0.0.1:7233, Web UI on :8233
//
// Workers and the starter reach it with TEMPORAL_ADDRESS=127.0.0.1:7233.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/batchfetch/batchfetch/devserver"
)

func main() {
	db := flag.String("db", "batchfetch-dev.sqlite", "SQLite file holding the server's state (kept across restarts); empty: in memory")
	ip := flag.String("ip", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 7233, "frontend gRPC port (the next 7 ports are used by the server's other services)")
	uiPort := flag.Int("ui-port", 8233, "Web UI port (0: no Web UI)")
	logLevel := flag.String("log-level", "", "server log level on stderr (debug, info, warn, error); empty: none")
	flag.Parse()
	srv, err := devserver.Start(devserver.Config{DBFile: *db, IP: *ip, Port: *port, UIPort: *uiPort, LogLevel: *logLevel})
	if err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
	fmt.Printf("temporal server at %s", srv.FrontendHostPort())
	if ui := srv.UIAddress(); ui != "" {
		fmt.Printf(", Web UI at %s", ui)
	}
	fmt.Println()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "devserver: stopping:", err)
		os.Exit(1)
	}
}

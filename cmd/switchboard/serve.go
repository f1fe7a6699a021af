package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/config"
	"github.com/switchboardhq/switchboard/gateway"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	listen := fs.String("listen", "", "address to listen on (default 127.0.0.1:8080)")
	data := fs.String("data", "", "data directory for the embedded store (default ./data)")
	storeURL := fs.String("store", "", `store: "sqlite" (default) or a postgres:// URL`)
	grace := fs.Duration("grace", 15*time.Second, "how long shutdown waits for requests in flight")
	debugAddr := fs.String("debug-listen", "", "address for Go's profiler (/debug/pprof/), off when empty; keep it on loopback")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var cfg *config.Config
	var err error
	if *cfgPath != "" {
		cfg, err = config.Load(*cfgPath)
	} else {
		cfg, err = config.Parse(nil, nil)
	}
	if err != nil {
		return err
	}
	// Flags override the file.
	if *listen != "" {
		cfg.Listen = *listen
		cfg.PublicURL = ""
	}
	if *data != "" {
		cfg.Data = *data
	}
	if *storeURL != "" {
		cfg.Store = *storeURL
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := checkSecrets(cfg, os.LookupEnv); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	setGC(os.LookupEnv)

	gw, err := gateway.New(ctx, cfg, gateway.Options{Logger: log, Announce: stderr})
	if err != nil {
		return err
	}
	defer gw.Close()
	if *debugAddr != "" {
		_, stop, err := serveDebug(*debugAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return gw.Serve(ctx, ln, *grace)
}

// gcPercent is the garbage collector's target for the gateway: it collects
// when the heap has grown by four times what was live after the last
// collection, where Go's default is once. The gateway's live heap is small
// (the SQLite page cache is not in it), so collecting at Go's default took
// a tenth of its CPU under load, in short cycles. Measured with bench
// --e2e, alternating: at 2,000/s on SQLite, delivered p99 26-60 ms against
// 33-195 ms with 5% less CPU, for a peak RSS of 147 MB against 133 MB; at
// 1,000/s on PostgreSQL, 10-17% less gateway CPU; plain ingest 13,978/s
// against 12,601/s.
const gcPercent = 400

// setGC sets the garbage collector's target to gcPercent, unless the
// environment (lookup) sets GOGC.
func setGC(lookup func(string) (string, bool)) {
	if _, ok := lookup("GOGC"); !ok {
		debug.SetGCPercent(gcPercent)
	}
}

// checkSecrets refuses, before anything starts, a configuration holding a
// published example secret and a SWITCHBOARD_TOKEN that is too short or
// published (the file's own secrets are checked by config.Validate).
func checkSecrets(cfg *config.Config, lookup func(string) (string, bool)) error {
	if err := cfg.CheckPublished(); err != nil {
		return err
	}
	if v, ok := lookup(gateway.TokenEnv); ok && strings.TrimSpace(v) != "" {
		if err := config.CheckSecret(v); err != nil {
			return fmt.Errorf("%s %v (or unset it: the first start then prints a generated admin token)", gateway.TokenEnv, err)
		}
	}
	return nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serveDebug serves Go's profiler on addr until stop is called, and
// returns the address it listens on. It is unauthenticated, for an
// operator on the machine (and for profiling under `bench`), so addr
// should be a loopback address.
func serveDebug(addr string, log *slog.Logger) (bound string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug listener stopped", "err", err)
		}
	}()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return ln.Addr().String(), func() { srv.Close(); <-done }, nil
}

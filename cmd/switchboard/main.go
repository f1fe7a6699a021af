// Command switchboard is the Switchboard gateway and its command-line client.
//
//	switchboard serve [--config FILE] [--listen ADDR] [--data DIR] [--store URL]
//	switchboard steer SESSION TEXT [--key K]
//	switchboard tail SESSION
//	switchboard session create
//	switchboard config check FILE
//	switchboard bench [--connections 64] [--sessions 64] [--duration 10s]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `Switchboard steers agent sessions from the HTTP API, Slack, GitHub, Jira and email.

Usage:
  switchboard serve [--config FILE] [--listen ADDR] [--data DIR] [--store URL]
  switchboard steer SESSION TEXT [--key KEY]
  switchboard tail SESSION [--after SEQ]
  switchboard session create
  switchboard catch-up CHANNEL
  switchboard config check FILE
  switchboard bench [--connections N] [--sessions M] [--duration D]

The client commands read the gateway's address from --url or SWITCHBOARD_URL
(default http://127.0.0.1:8080) and the token from SWITCHBOARD_TOKEN.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "switchboard:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "steer":
		return steer(ctx, rest, stdout, stderr)
	case "catch-up":
		return catchUp(ctx, rest, stdout, stderr)
	case "tail":
		return tail(ctx, rest, stdout, stderr)
	case "session":
		return session(ctx, rest, stdout, stderr)
	case "config":
		return configCmd(rest, stdout, stderr)
	case "bench":
		return bench(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", cmd)}
}

// parse parses flags that may come before or after the positional
// arguments, returning the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/switchboardhq/switchboard/client"
)

// clientFlags adds --url and returns a function that builds the client.
func clientFlags(fs *flag.FlagSet) func() (*client.Client, error) {
	def := os.Getenv("SWITCHBOARD_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	u := fs.String("url", def, "gateway URL (SWITCHBOARD_URL)")
	return func() (*client.Client, error) {
		tok := os.Getenv("SWITCHBOARD_TOKEN")
		if tok == "" {
			return nil, errors.New("SWITCHBOARD_TOKEN is not set (serve prints an admin token on first start)")
		}
		return client.New(*u, tok, nil), nil
	}
}

func steer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("steer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	newClient := clientFlags(fs)
	key := fs.String("key", "", "idempotency key (safe to retry with the same key)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return usageError{"usage: switchboard steer SESSION TEXT [--key KEY]"}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	res, err := c.Steer(ctx, pos[0], client.Message{Text: strings.Join(pos[1:], " "), IdempotencyKey: *key})
	if err != nil {
		return err
	}
	note := "stored"
	if res.Replayed {
		note = "already stored (same key)"
	}
	fmt.Fprintf(stdout, "%s: seq %d, id %s, session %s\n", note, res.Message.Seq, res.Message.Envelope.ID, res.Session.State)
	return nil
}

// catchUp runs a channel's catch-up after downtime and prints what it did.
func catchUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("catch-up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	newClient := clientFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: switchboard catch-up CHANNEL (slack, github or jira)"}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	rep, err := c.CatchUp(ctx, pos[0])
	if rep.Channel != "" {
		since := "nothing to look at"
		if !rep.Since.IsZero() {
			since = "since " + rep.Since.Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%s: %d places, %s: %d messages found, %d new\n", rep.Channel, rep.Scopes, since, rep.Found, rep.New)
	}
	return err
}

func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	newClient := clientFlags(fs)
	after := fs.Int64("after", 0, "start after this sequence number")
	asJSON := fs.Bool("json", false, "print each record as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: switchboard tail SESSION [--after SEQ]"}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	return c.Stream(ctx, pos[0], *after, func(r client.Record) error {
		if *asJSON {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s\n", b)
			return err
		}
		_, err := fmt.Fprintln(stdout, formatRecord(r))
		return err
	})
}

// formatRecord renders one record as one line.
func formatRecord(r client.Record) string {
	arrow := "<-"
	if r.Direction == "outbound" {
		arrow = "->"
	}
	who := r.Envelope.Actor.Display
	if who == "" {
		who = r.Envelope.Actor.ID
	}
	text := strings.ReplaceAll(r.Envelope.Text, "\n", " ⏎ ")
	return fmt.Sprintf("%d %s %s %s [%s]: %s", r.Seq, r.Envelope.TS.Format("15:04:05"), arrow, who, r.Envelope.Kind, text)
}

func session(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "create" {
		return usageError{"usage: switchboard session create"}
	}
	fs := flag.NewFlagSet("session create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	newClient := clientFlags(fs)
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	s, err := c.CreateSession(ctx, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, s.ID)
	return nil
}

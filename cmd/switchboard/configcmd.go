package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/switchboardhq/switchboard/config"
)

func configCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "check" {
		return usageError{"usage: switchboard config check FILE"}
	}
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"usage: switchboard config check FILE"}
	}
	cfg, err := config.Load(pos[0])
	if err != nil {
		return err
	}
	if err := cfg.CheckPublished(); err != nil {
		return fmt.Errorf("config: %s: %w", pos[0], err)
	}
	fmt.Fprintf(stdout, "%s: ok\n", pos[0])
	return nil
}

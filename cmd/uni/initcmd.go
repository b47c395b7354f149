package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
)

type initFlags struct {
	out   string
	force bool
	ports []string
}

func newInitCmd() *cobra.Command {
	var o initFlags
	cmd := &cobra.Command{
		Use:   "init [flags] PROGRAM",
		Short: "Write the Unifile that 'uni run PROGRAM' uses",
		Long: `Write the Unifile that 'uni run PROGRAM' uses, so you can keep and edit it:
a script runs under the interpreter on your PATH, an ELF binary as itself.
Ports come from -p, or are guessed from the source: check the EXPOSE lines.`,
		Example: `  uni init hi.js
  uni init -p 8000 -o - app.py`,
		Args: oneArg("PROGRAM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "output", "o", "", "where to write the Unifile (default: Unifile beside PROGRAM; - for stdout)")
	f.BoolVar(&o.force, "force", false, "overwrite an existing Unifile")
	f.StringArrayVarP(&o.ports, "port", "p", nil, "a port the program listens on, repeatable (default: guessed from the source)")
	cmd.MarkFlagFilename("output")
	return cmd
}

func runInit(cmd *cobra.Command, o initFlags, program string) error {
	var ps []int
	for _, p := range o.ports {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return usageErrorf(cmd, "-p %s: want a port number 1-65535", p)
		}
		ps = append(ps, n)
	}
	text, err := programUnifile(program, ps)
	if err != nil {
		return err
	}
	dest := o.out
	if dest == "" {
		dest = filepath.Join(filepath.Dir(program), "Unifile")
	}
	if dest == "-" {
		_, err := io.WriteString(cmd.OutOrStdout(), text)
		return err
	}
	if _, err := os.Lstat(dest); err == nil && !o.force {
		return fmt.Errorf("%s exists: use --force to replace it, or -o to write elsewhere", dest)
	}
	if err := os.WriteFile(dest, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s\n", dest)
	return nil
}

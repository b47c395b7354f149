package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit statuses of uni (run exits with the app's own).
const (
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as a shell reports it
)

// exitStatusError carries an exit status out of a command: the app's, for
// run. Its message has been printed (or there is none).
type exitStatusError struct{ status int }

func (e exitStatusError) Error() string { return fmt.Sprintf("exit status %d", e.status) }

// usageError is a command line that does not parse: exit status 2.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(cmd *cobra.Command, format string, a ...any) error {
	return usageError{cmd, fmt.Errorf(format, a...)}
}

// exitStatus prints err, if any, and returns the status uni exits with.
func exitStatus(ctx context.Context, err error, stderr io.Writer) int {
	var es exitStatusError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &es):
		return es.status
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "uni: %s\n", printable(ue.err.Error()))
		if ue.cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", ue.cmd.CommandPath())
		}
		return exitUsage
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		fmt.Fprintln(stderr, "uni: stopped")
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "uni: %s\n", printable(err.Error()))
		return exitError
	}
}

// subcommandArgs refuses a command line whose first word is no command of
// cmd, suggesting the nearest ones.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	msg := fmt.Sprintf("unknown command %q for %q (commands: %s)", args[0], cmd.CommandPath(), strings.Join(names, ", "))
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{cmd, errors.New(msg)}
}

// flagError turns a flag that does not parse into a usage error; for an
// unknown flag it names the nearest flags the command has.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) {
		typed := ne.GetSpecifiedName()
		if sh := ne.GetSpecifiedShortnames(); sh != "" {
			// -build-arg: a long flag with one dash reads as shorthands.
			typed, _, _ = strings.Cut(sh, "=")
		}
		if s := nearFlags(cmd, typed); len(s) > 0 {
			return usageError{cmd, fmt.Errorf("%w; did you mean %s?", err, strings.Join(s, " or "))}
		}
	}
	return usageError{cmd, err}
}

// nearFlags lists cmd's flags spelled like typed: the same but for a few
// letters, or starting with it.
func nearFlags(cmd *cobra.Command, typed string) []string {
	var out []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if d := distance(typed, f.Name); d <= 2 || (len(typed) > 1 && strings.HasPrefix(f.Name, typed)) {
			out = append(out, "--"+f.Name)
		}
	})
	return out
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// printable makes error text safe for a terminal: control characters
// (escape sequences included), invalid UTF-8 and invisible format
// characters are written as Go escapes (\x1b, \x00, \u202e); newlines and
// tabs stay, since messages may span lines.
func printable(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case r == '\n' || r == '\t' || unicode.IsPrint(r):
			b.WriteString(s[:size])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	return b.String()
}

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// buildArgs turns --build-arg values into a map; "K" alone takes K from the
// environment, as docker build does.
func buildArgs(vals []string, getenv func(string) string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		k, val, ok := strings.Cut(v, "=")
		if k == "" {
			return nil, fmt.Errorf("--build-arg %q: want KEY=VALUE", v)
		}
		if !ok {
			val = getenv(k)
		}
		out[k] = val
	}
	return out, nil
}

// oneArg accepts exactly one positional argument, called what.
func oneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch len(args) {
		case 0:
			return usageErrorf(cmd, "%s needs a %s", cmd.Name(), what)
		case 1:
			return nil
		}
		return usageErrorf(cmd, "%s takes one %s, have %d: %q", cmd.Name(), what, len(args), args)
	}
}

// atMostOneArg accepts no positional argument or one, called what.
func atMostOneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > 1 {
			return usageErrorf(cmd, "%s takes one %s, have %d: %q", cmd.Name(), what, len(args), args)
		}
		return nil
	}
}

// noArgs accepts no positional argument.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf(cmd, "%s takes no arguments, have %q", cmd.CommandPath(), args)
	}
	return nil
}

// fixedChoices completes a flag from a fixed list.
func fixedChoices(choices ...string) cobra.CompletionFunc {
	return cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp)
}

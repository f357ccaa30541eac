// Package settings is the one way every foresight command reads its
// configuration: a table of settings, each with a flag, environment
// variables and a default, that drives parsing, --help and the docs. A flag
// given on the command line beats the environment, which beats the default.
// A bad value is an error that names the setting's flag and variables, and
// where the value came from; it is never ignored.
//
// It imports only the standard library.
package settings

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Setting is one configuration knob of a command whose configuration is T.
type Setting[T any] struct {
	// Flag is the flag name without dashes; empty means environment only
	// (secrets never go on a command line).
	Flag string
	// Envs are read in order; the first non-empty one wins.
	Envs []string
	// Default is used when neither the flag nor an Env is set.
	Default string
	Help    string
	// Secret settings are never printed with their value.
	Secret bool
	// Fallback, when set, is asked before Default: it returns a value and
	// the name of where it came from, or "" (e.g. PORT for the address).
	Fallback func(getenv func(string) string) (value, from string)
	// Apply parses v into the configuration.
	Apply func(c *T, v string) error
}

// Names is how an error or a usage line names the setting:
// "--flag / ENV1, ENV2".
func (s Setting[T]) Names() string {
	var parts []string
	if s.Flag != "" {
		parts = append(parts, "--"+s.Flag)
	}
	if len(s.Envs) > 0 {
		parts = append(parts, strings.Join(s.Envs, ", "))
	}
	return strings.Join(parts, " / ")
}

// Load registers the table's flags on fs (which the caller may have given
// other flags and a Usage), parses args and applies every setting to c. It
// returns flag.ErrHelp after fs printed usage for -h or --help.
func Load[T any](c *T, table []Setting[T], fs *flag.FlagSet, args []string, getenv func(string) string) error {
	given := make([]*flagValue, len(table))
	for i, s := range table {
		if s.Flag != "" {
			given[i] = &flagValue{value: s.Default, isBool: s.Default == "true" || s.Default == "false"}
			fs.Var(given[i], s.Flag, s.Help)
		}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	for i, s := range table {
		v, from := s.Default, "the default"
		if s.Flag != "" && explicit[s.Flag] {
			v, from = given[i].value, "--"+s.Flag
		} else if env, name := firstEnv(getenv, s.Envs); env != "" {
			v, from = env, name
		} else if s.Fallback != nil {
			if fv, fname := s.Fallback(getenv); fv != "" {
				v, from = fv, fname
			}
		}
		if err := s.Apply(c, v); err != nil {
			return fmt.Errorf("config %s (set by %s): %w", s.Names(), from, err)
		}
	}
	return nil
}

func firstEnv(getenv func(string) string, names []string) (value, name string) {
	for _, n := range names {
		if v := strings.TrimSpace(getenv(n)); v != "" {
			return v, n
		}
	}
	return "", ""
}

// PrintTable writes one entry per setting: its flag, its variables, its
// help and its default (never a secret's value: secrets have no default).
func PrintTable[T any](w io.Writer, table []Setting[T]) {
	for _, s := range table {
		name := "(env only)"
		if s.Flag != "" {
			name = "--" + s.Flag
		}
		def := s.Default
		if def == "" {
			def = "unset"
		}
		fmt.Fprintf(w, "  %-28s %s\n", name, strings.Join(s.Envs, ", "))
		fmt.Fprintf(w, "      %s (default: %s)\n", s.Help, def)
	}
}

// flagValue holds a setting's flag as text, parsed later by the setting.
// Boolean settings accept a bare --flag, as the flag package's own bools do.
type flagValue struct {
	value  string
	isBool bool
}

func (f *flagValue) String() string     { return f.value }
func (f *flagValue) Set(v string) error { f.value = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

// String sets a text field as given.
func String[T any](field func(*T) *string) func(*T, string) error {
	return func(c *T, v string) error { *field(c) = v; return nil }
}

// Duration parses a positive Go duration; a plain number is seconds, as
// hosting platforms often write them.
func Duration[T any](field func(*T) *time.Duration) func(*T, string) error {
	return func(c *T, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			f, ferr := strconv.ParseFloat(v, 64)
			if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("not a duration: %q", v)
			}
			d = time.Duration(f * float64(time.Second))
		}
		if d <= 0 {
			return fmt.Errorf("must be positive: %q", v)
		}
		*field(c) = d
		return nil
	}
}

// NonNegativeDuration is Duration that also accepts zero.
func NonNegativeDuration[T any](field func(*T) *time.Duration) func(*T, string) error {
	positive := Duration(field)
	return func(c *T, v string) error {
		if d, err := time.ParseDuration(v); err == nil && d == 0 {
			*field(c) = 0
			return nil
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 {
			*field(c) = 0
			return nil
		}
		return positive(c, v)
	}
}

// PositiveInt64 parses a whole number of at least 1.
func PositiveInt64[T any](field func(*T) *int64) func(*T, string) error {
	return func(c *T, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("not a positive whole number: %q", v)
		}
		*field(c) = n
		return nil
	}
}

// IntAtLeast parses a whole number of at least lowest.
func IntAtLeast[T any](lowest int, field func(*T) *int) func(*T, string) error {
	return func(c *T, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("not a whole number: %q", v)
		}
		if n < lowest {
			return fmt.Errorf("must be at least %d: %q", lowest, v)
		}
		*field(c) = n
		return nil
	}
}

// Float parses a finite number of at least lowest.
func Float[T any](lowest float64, field func(*T) *float64) func(*T, string) error {
	return func(c *T, v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("not a number: %q", v)
		}
		if f < lowest {
			return fmt.Errorf("must be at least %g: %q", lowest, v)
		}
		*field(c) = f
		return nil
	}
}

// Bool parses true or false (and the other spellings strconv accepts).
func Bool[T any](field func(*T) *bool) func(*T, string) error {
	return func(c *T, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not true or false: %q", v)
		}
		*field(c) = b
		return nil
	}
}

// OneOf accepts one of allowed, case-insensitively, stored in lower case.
func OneOf[T any](field func(*T) *string, allowed ...string) func(*T, string) error {
	return func(c *T, v string) error {
		v = strings.ToLower(v)
		for _, a := range allowed {
			if v == a {
				*field(c) = v
				return nil
			}
		}
		return fmt.Errorf("want one of %s: %q", strings.Join(allowed, ", "), v)
	}
}

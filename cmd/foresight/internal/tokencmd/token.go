// Package tokencmd is `foresight token`: create, list and revoke access
// tokens in the database the server uses (FORESIGHT_DATABASE_URL). It works
// beside a running server: SQLite in WAL mode takes a second writer, and
// both stores apply migrations under the same lock a server takes.
package tokencmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/internal/settings"
	"github.com/foresight-vision/foresight/ports"
)

// MaxDevices bounds the devices of one token (each request's scope holds them).
const MaxDevices = 64

// Options are the settings every token subcommand reads.
type Options struct {
	DatabaseURL string
}

// Settings is the token command's settings table (docs/configuration.md).
var Settings = []settings.Setting[Options]{
	{Flag: "database-url", Envs: []string{"FORESIGHT_DATABASE_URL"}, Default: app.DefaultDatabaseURL, Help: "the server's database (sqlite:<path> or postgres://…); tokens are kept there",
		Apply: settings.String(func(o *Options) *string { return &o.DatabaseURL })},
}

const usage = `Usage:
  foresight token create --device ID [--device ID…] [--admin] [--name N] [--expires 720h]
  foresight token list
  foresight token revoke ID

create prints the new token's secret once, alone on stdout; only its SHA-256 is kept.
`

// Run is `foresight token`.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errors.New("missing subcommand (create, list or revoke)")
		}
		return flag.ErrHelp
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("foresight token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\n")
		fs.PrintDefaults()
	}
	var devices deviceList
	var admin bool
	var name string
	var expires time.Duration
	switch sub {
	case "create":
		fs.Var(&devices, "device", "a device the token acts for (repeat for several)")
		fs.BoolVar(&admin, "admin", false, "an admin token: every device, and the operator's routes")
		fs.StringVar(&name, "name", "", "a name to recognise the token by in lists")
		fs.DurationVar(&expires, "expires", 0, "refuse the token after this long, e.g. 720h (0: never)")
	case "list", "revoke":
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q", sub)
	}
	var o Options
	if err := settings.Load(&o, Settings, fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %w", sub, err)
	}
	if err := refusePasswordInFlag(fs); err != nil {
		return err
	}
	rest := fs.Args()
	switch {
	case sub == "revoke" && len(rest) != 1:
		return errors.New("revoke: want exactly one token id (see foresight token list)")
	case sub != "revoke" && len(rest) > 0:
		return fmt.Errorf("%s: unexpected argument %q", sub, rest[0])
	case sub == "create":
		if err := checkCreate(devices, admin, expires); err != nil {
			return err
		}
	}

	store, err := app.OpenTokenStore(ctx, o.DatabaseURL)
	if err != nil {
		return fmt.Errorf("%s: %w", sub, err)
	}
	defer func() { _ = store.Close() }()
	switch sub {
	case "create":
		return create(ctx, store, devices, admin, name, expires, stdout, stderr)
	case "list":
		return list(ctx, store, stdout)
	default:
		return revoke(ctx, store, rest[0], stdout)
	}
}

func checkCreate(devices deviceList, admin bool, expires time.Duration) error {
	if !admin && len(devices) == 0 {
		return errors.New("create: name at least one --device, or give --admin")
	}
	if len(devices) > MaxDevices {
		return fmt.Errorf("create: at most %d devices per token", MaxDevices)
	}
	for _, d := range devices {
		if !domain.ValidDevice(d) {
			return fmt.Errorf("create: --device %q must match %s", d, domain.DevicePattern)
		}
	}
	if expires < 0 {
		return errors.New("create: --expires must not be negative")
	}
	return nil
}

func create(ctx context.Context, store ports.TokenStore, devices deviceList, admin bool, name string, expires time.Duration,
	stdout, stderr io.Writer) error {
	secret := access.NewSecret()
	now := time.Now().UTC()
	tok := ports.AccessToken{ID: access.NewTokenID(), Hash: access.HashSecret(secret), Name: name,
		Role: ports.RoleDevice, Devices: devices, Created: now}
	if admin {
		tok.Role = ports.RoleAdmin
	}
	if tok.Devices == nil {
		tok.Devices = []string{}
	}
	if expires > 0 {
		tok.Expires = now.Add(expires)
	}
	if err := store.CreateToken(ctx, tok); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Fprintf(stderr, "created %s (%s); the secret below is shown once, keep it now:\n", tok.ID, describe(tok))
	fmt.Fprintln(stdout, secret)
	return nil
}

func describe(tok ports.AccessToken) string {
	scope := "every device"
	if tok.Role == ports.RoleDevice {
		scope = "devices " + strings.Join(tok.Devices, ",")
	}
	s := string(tok.Role) + ", " + scope
	if !tok.Expires.IsZero() {
		s += ", expires " + tok.Expires.Format(time.RFC3339)
	}
	return s
}

func list(ctx context.Context, store ports.TokenStore, stdout io.Writer) error {
	toks, err := store.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tROLE\tDEVICES\tCREATED\tEXPIRES\tLAST USED\tSTATE")
	now := time.Now()
	for _, t := range toks {
		state := "active"
		switch {
		case !t.Revoked.IsZero():
			state = "revoked " + stamp(t.Revoked)
		case !t.Expires.IsZero() && !now.Before(t.Expires):
			state = "expired"
		}
		devices := strings.Join(t.Devices, ",")
		if t.Role == ports.RoleAdmin {
			devices = "*"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, orDash(t.Name), t.Role, devices,
			stamp(t.Created), stamp(t.Expires), stamp(t.LastUsed), state)
	}
	return w.Flush()
}

func revoke(ctx context.Context, store ports.TokenStore, id string, stdout io.Writer) error {
	if err := store.RevokeToken(ctx, id, time.Now().UTC()); err != nil {
		if errors.Is(err, ports.ErrTokenNotFound) {
			return fmt.Errorf("revoke: no token %q (see foresight token list)", id)
		}
		return fmt.Errorf("revoke: %w", err)
	}
	fmt.Fprintf(stdout, "revoked %s: every server sharing this database refuses it within %s\n", id, access.MaxCacheTTL+time.Second)
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// refusePasswordInFlag keeps a database password off the command line,
// which other users of the machine can read, as `foresight serve` does.
func refusePasswordInFlag(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "database-url" {
			return
		}
		if u, perr := url.Parse(f.Value.String()); perr == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				err = errors.New("--database-url carries a password; pass that URL in FORESIGHT_DATABASE_URL instead (a command line is visible to other users)")
			}
		}
	})
	return err
}

// deviceList is a repeatable --device flag.
type deviceList []string

func (d *deviceList) String() string { return strings.Join(*d, ",") }
func (d *deviceList) Set(v string) error {
	*d = append(*d, v)
	return nil
}

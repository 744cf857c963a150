package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/daemon"
	"github.com/idrecon/idrecon/runtime/gctune"
	"github.com/idrecon/idrecon/runtime/scim"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
)

func serveCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "serve [--spec DIR | --git URL]",
		Short: "Run the daemon (SCIM, SAML, admin API, reconciler)",
		Long: `Run the daemon: it serves SCIM 2.0 and SAML 2.0 sign-in, the admin API and the
git webhook, and converges the runtime to the spec it follows, a local folder
(--spec, watched) or a git repo (--git, polled every --interval). Without
either it waits for 'idrecon apply' (push mode).`,
		Example: `  idrecon serve --spec examples/entra --data-dir data --insecure-http
  idrecon serve --git https://github.com/contoso/idrecon-spec --branch main --path spec \
    --git-bearer-token-file /run/secrets/git-token --tls-certificate idrecon-tls`,
		Args: noArgs,
	}
	fs := c.Flags()
	specDir := fs.String("spec", "", "follow a local spec folder (watched for changes)")
	c.MarkFlagDirname("spec")
	gitOpts, gitCheck := gitFlags(fs)
	lim := specLimitFlags(fs)
	interval := fs.Duration("interval", time.Minute, "reconcile interval (git poll and drift check), with jitter")
	drift := fs.String("drift", "correct", "what to do with drift: correct or report")
	c.RegisterFlagCompletionFunc("drift", cobra.FixedCompletions([]string{"correct", "report"}, cobra.ShellCompDirectiveNoFileComp))
	allowEmpty := fs.Bool("allow-empty", false, "apply a spec with no documents, deleting every resource (refused by default: an emptied folder looks the same)")
	listen := fs.String("listen", ":8080", "address for SCIM, SAML and the git webhook")
	adminListen := fs.String("admin-listen", "127.0.0.1:9090", "address for the admin API (plain HTTP; off loopback only with --admin-insecure-http)")
	consoleURL := fs.String("console-url", "", "where browsers reach the read-only console (on when the SamlServiceProvider names a consoleRole); the SAML sign-in hands them back there (default http://<admin-listen>/console/)")
	adminInsecure := fs.Bool("admin-insecure-http", false, "let the admin API listen off loopback in plain HTTP: its token and backups cross the network in clear")
	maxConns := fs.Int("max-connections", daemon.DefaultMaxConnections, "connections the main listener holds open at once; past it new ones wait until one closes (a bound on the memory clients can make the daemon hold)")
	maxUsers := fs.Int("max-users", daemon.DefaultLimits.Users, "users SCIM clients may provision; past it a create is refused (507) and the daemon goes on serving everything else")
	maxGroups := fs.Int("max-groups", daemon.DefaultLimits.Groups, "groups SCIM clients may provision (as --max-users)")
	maxMemberships := fs.Int("max-memberships", daemon.DefaultLimits.Memberships, "direct group memberships SCIM clients may make (as --max-users)")
	insecure := fs.Bool("insecure-http", false, "serve plain HTTP instead of TLS (local runs, tests, behind a TLS proxy)")
	tlsCert := fs.String("tls-certificate", "", "Certificate document (usage tls) to serve to every client; default the one whose names match the server name a client asks for, else the first")
	dataDir := fs.String("data-dir", "data", "folder for the durable state, audit log and generated admin token; empty keeps state in memory only")
	c.MarkFlagDirname("data-dir")
	tokenFile := fs.String("admin-token-file", "", "file holding the admin token (default env IDRECON_ADMIN_TOKEN, else generated in the data dir)")
	webhookSecretFile := fs.String("webhook-secret-file", "", "HMAC secret for POST /hooks/git (GitHub/Gitea); or env IDRECON_WEBHOOK_SECRET")
	webhookTokenFile := fs.String("webhook-token-file", "", "shared token for POST /hooks/git (GitLab); or env IDRECON_WEBHOOK_TOKEN")
	etcdEndpoints := fs.String("etcd", "", "keep the state in etcd, shared by every daemon on the same cluster and prefix: comma-separated client URLs (https://a:2379,https://b:2379,...); the data dir then holds only the audit log and admin token")
	etcd, etcdNames := etcdFlags(c)
	maxStale := fs.Duration("etcd-max-stale", daemon.DefaultMaxStale, "with --etcd: how long a daemon that cannot confirm its copy of the state with etcd (cut off from it) goes on letting users in, before it refuses sign-ins and Gateway access; 0 for no bound")
	maxTxnOps := fs.Int("etcd-max-txn-ops", etcdstate.DefaultMaxTxnOps, "with --etcd: the etcd cluster's --max-txn-ops; raise both to apply spec changes of more documents at once (one spec revision's changes go in one transaction)")
	etcdNames = append(etcdNames, "etcd-max-stale", "etcd-max-txn-ops")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	c.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"json", "text"}, cobra.ShellCompDirectiveNoFileComp))
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	c.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	gcPercent := fs.Int("gc-percent", gctune.DefaultPercent, "Go GC target (GOGC) unless the GOGC env var is set: higher trades memory for CPU; unless GOMEMLIMIT is set, the soft memory limit follows twice the live heap plus 32 MiB, at most 3/4 of the memory available unless the live heap outgrows that (then the live heap plus 32 MiB); free memory goes back to the system when a burst of writes ends")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		if err := gitCheck(); err != nil {
			return err
		}
		for _, f := range []struct {
			name string
			n    int
		}{{"max-connections", *maxConns}, {"max-users", *maxUsers}, {"max-groups", *maxGroups}, {"max-memberships", *maxMemberships}} {
			if f.n < 1 {
				return usageErrorf("--%s %d: give at least 1", f.name, f.n)
			}
		}
		if err := flagsNeed(fs, *etcdEndpoints != "", "--etcd", etcdNames...); err != nil {
			return err
		}
		if *maxTxnOps < etcdstate.DefaultMaxTxnOps {
			return usageErrorf("--etcd-max-txn-ops %d: want at least etcd's default, %d", *maxTxnOps, etcdstate.DefaultMaxTxnOps)
		}
		if *maxStale < 0 {
			return usageErrorf("--etcd-max-stale %s: want 0 (no bound) or a positive duration, such as 5m", *maxStale)
		}
		if *interval <= 0 {
			// The reconciler takes zero or less for its default.
			return usageErrorf("--interval %s: want a positive interval, such as 1m", *interval)
		}
		// Any other value used to give JSON logs silently: a typo
		// ("txt") would leave the operator with the format not asked for.
		if *logFormat != "json" && *logFormat != "text" {
			return usageErrorf("--log-format: want json or text, not %q", *logFormat)
		}
		gc := gctune.Apply(env.Getenv, *gcPercent)
		// The soft memory limit follows the live heap, and memory freed by a
		// burst goes back to the system, for as long as serve runs.
		tuneCtx, stopTuning := context.WithCancel(ctx)
		defer stopTuning()
		go gctune.Follow(tuneCtx, gc, time.Second)
		var level slog.Level
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		hopts := &slog.HandlerOptions{Level: level}
		var handler slog.Handler = slog.NewJSONHandler(env.Stderr, hopts)
		if *logFormat == "text" {
			handler = slog.NewTextHandler(env.Stderr, hopts)
		}
		mode, err := reconcile.ParseDriftMode(*drift)
		if err != nil {
			return err
		}
		token, _, err := readAdminToken(env, *tokenFile, false)
		if err != nil {
			return err
		}
		cfg := daemon.Config{
			SpecDir:          *specDir,
			Interval:         *interval,
			DriftMode:        mode,
			AllowEmpty:       *allowEmpty,
			MaxSpecBytes:     lim.bytes,
			MaxSpecDocuments: lim.docs,
			MaxSpecNodes:     lim.nodes,
			Listen:           *listen,
			MaxConnections:   *maxConns,
			Limits:           scim.Limits{Users: *maxUsers, Groups: *maxGroups, Memberships: *maxMemberships},
			AdminListen:      *adminListen,
			ConsoleURL:       *consoleURL,
			InsecureHTTP:     *insecure,
			TLSCertificate:   *tlsCert,
			DataDir:          *dataDir,
			AdminToken:       token,
			Getenv:           env.Getenv,
			Logger:           slog.New(handler),
		}
		cfg.Git = gitOpts()
		if *etcdEndpoints != "" {
			cfg.Etcd = etcd(*etcdEndpoints)
			cfg.Etcd.MaxTxnOps = *maxTxnOps
			if cfg.Etcd.MaxStale = *maxStale; *maxStale == 0 {
				cfg.Etcd.MaxStale = -1 // no bound; the daemon's zero is its default
			}
		}
		cfg.AdminInsecureHTTP = *adminInsecure
		if cfg.WebhookSecret, err = secretFrom(env, "webhook-secret-file", *webhookSecretFile, "IDRECON_WEBHOOK_SECRET"); err != nil {
			return err
		}
		tok, err := secretFrom(env, "webhook-token-file", *webhookTokenFile, "IDRECON_WEBHOOK_TOKEN")
		if err != nil {
			return err
		}
		cfg.WebhookToken = string(tok)
		gc.Log(cfg.Logger)
		return daemon.Run(ctx, cfg)
	}
	return c
}

// secretFrom reads a secret from the file given to --flag, else from an env
// var; nil when neither is set. A file that is missing or empty is an error
// naming the flag.
func secretFrom(env Env, flag, file, envName string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		secret := strings.TrimSpace(string(b))
		if secret == "" {
			// Taken as set, it would turn the webhook on with nothing
			// to check a push against, refusing every one in silence.
			return nil, fmt.Errorf("--%s: %s is empty", flag, file)
		}
		return []byte(secret), nil
	}
	if v := env.Getenv(envName); v != "" {
		// Trimmed as a file's is: a variable filled from a file or a CI
		// secret often ends in a newline, and every push's signature
		// would then fail to match, in silence.
		secret := strings.TrimSpace(v)
		if secret == "" {
			return nil, fmt.Errorf("%s holds only white space", envName)
		}
		return []byte(secret), nil
	}
	return nil, nil
}

// gitFlags registers the flags that describe a git source (for serve and
// plan) and returns a function giving the options, or nil without --git,
// and one that refuses the other git flags without --git, which would
// otherwise be dropped: "plan --branch main" planned the working
// directory.
func gitFlags(fs *pflag.FlagSet) (func() *source.GitOptions, func() error) {
	gitURL := fs.String("git", "", "spec repo in git (https://, ssh://, git@host:repo, file://)")
	var opts func() *source.GitOptions
	names := added(fs, func() { opts = gitSourceFlags(fs, gitURL) })
	return opts, func() error { return flagsNeed(fs, *gitURL != "", "--git", names...) }
}

func gitSourceFlags(fs *pflag.FlagSet, gitURL *string) func() *source.GitOptions {
	branch := fs.String("branch", "", "git branch to follow (default: the remote's default branch)")
	tag := fs.String("tag", "", "git tag to pin")
	commit := fs.String("commit", "", "git commit (full SHA) to pin")
	path := fs.String("path", "", "spec root inside the git repo")
	gitUser := fs.String("git-username", "", "HTTPS basic-auth user name")
	gitPassEnv := fs.String("git-password-env", "", "env var holding the HTTPS password or token")
	gitPassFile := fs.String("git-password-file", "", "file holding the HTTPS password or token")
	gitBearerEnv := fs.String("git-bearer-token-env", "", "env var holding an HTTPS bearer token")
	gitBearerFile := fs.String("git-bearer-token-file", "", "file holding an HTTPS bearer token")
	sshKey := fs.String("ssh-key", "", "SSH private key file for ssh git URLs")
	knownHosts := fs.String("known-hosts", "", "known_hosts file (default ~/.ssh/known_hosts); host keys are always checked")
	verify := fs.String("verify-signatures", "", "armored OpenPGP key ring: refuse head commits not signed by one of its keys")
	return func() *source.GitOptions {
		if *gitURL == "" {
			return nil
		}
		return &source.GitOptions{
			URL: *gitURL, Branch: *branch, Tag: *tag, Commit: *commit, Path: *path,
			VerifySignatures: *verify,
			Auth: source.GitAuth{
				Username: *gitUser, PasswordEnv: *gitPassEnv, PasswordFile: *gitPassFile,
				BearerTokenEnv: *gitBearerEnv, BearerTokenFile: *gitBearerFile,
				SSHKeyFile: *sshKey, KnownHostsFile: *knownHosts,
			},
		}
	}
}

// Command idrecon manages Application Security's identity set-up from git:
// it validates and plans spec repos, and runs the daemon that serves SCIM and
// SAML and converges the runtime to the spec.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/idrecon/idrecon/cmd/idrecon/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{
		Args:   os.Args[1:],
		Getenv: os.Getenv,
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
	stop()
	os.Exit(code)
}

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
	// The first signal asks the command to stop and the daemon to drain;
	// a second one, from someone who will not wait, ends the process at
	// once, with the status a shell gives a process the signal ended.
	// What the daemon acknowledged is synced already. Exiting here, not
	// restoring the signal's default, also serves a process started with
	// the signal ignored (a shell's background job).
	again := make(chan os.Signal, 1)
	context.AfterFunc(ctx, func() {
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		go func() { // ends the process, or with it
			s := <-again
			os.Exit(128 + int(s.(syscall.Signal)))
		}()
	})
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

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

// signalBuffer holds both signals main acts on, should they come before
// stopOnSignals reads either: the runtime drops a signal whose channel is
// full.
const signalBuffer = 2

func main() {
	// One channel, registered once, for both signals: a second channel
	// registered only after the first signal left a moment in which a
	// second one reached no channel that was read, and was lost.
	// Registering, not restoring the signal's default, also serves a
	// process started with the signal ignored (a shell's background job).
	sigs := make(chan os.Signal, signalBuffer)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go stopOnSignals(sigs, cancel, os.Exit) // ends the process, or with it
	code := cli.Main(ctx, cli.Env{
		Args:   os.Args[1:],
		Getenv: os.Getenv,
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	})
	cancel()
	os.Exit(code)
}

// stopOnSignals makes the first signal ask the command to stop and the
// daemon to drain; a second one, from someone who will not wait, ends the
// process at once, with the status a shell gives a process the signal
// ended. What the daemon acknowledged is synced already.
func stopOnSignals(sigs <-chan os.Signal, cancel func(), exit func(int)) {
	<-sigs
	cancel()
	s := <-sigs
	exit(128 + int(s.(syscall.Signal)))
}

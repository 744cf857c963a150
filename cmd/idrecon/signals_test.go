package main

import (
	"os"
	"syscall"
	"testing"
)

// TestSecondSignalIsNeverLost: two signals that come before the handler
// runs at all (a busy machine, an impatient operator) still stop the
// command and then end the process: none of them may fall between the
// first one's handling and the second one's.
func TestSecondSignalIsNeverLost(t *testing.T) {
	sigs := make(chan os.Signal, signalBuffer)
	sigs <- os.Interrupt
	sigs <- syscall.SIGTERM
	canceled := false
	exited := make(chan int, 1)
	stopOnSignals(sigs, func() { canceled = true }, func(code int) { exited <- code })
	if !canceled {
		t.Error("the first signal did not stop the command")
	}
	select {
	case code := <-exited:
		if code != 128+int(syscall.SIGTERM) {
			t.Errorf("exit %d, want %d as a shell reports a process the signal ended", code, 128+int(syscall.SIGTERM))
		}
	default:
		t.Error("the second signal did not end the process")
	}
}

package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestMain lets the experiment re-execute this test binary as the command:
// with LOADTEST_AS_MAIN=1 it runs the command line instead of the tests
// (the experiment starts the reference server that way).
func TestMain(m *testing.M) {
	if os.Getenv(selfAsMainEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

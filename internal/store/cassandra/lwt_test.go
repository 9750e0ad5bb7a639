package cassandra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func TestCASUnknown(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"CAS write unknown", &gocql.RequestErrCASWriteUnknown{Received: 1, BlockFor: 2}, true},
		{"write timeout of type CAS", &gocql.RequestErrWriteTimeout{WriteType: "CAS"}, true},
		{"write timeout of the commit", &gocql.RequestErrWriteTimeout{WriteType: "SIMPLE"}, true},
		{"write failure", &gocql.RequestErrWriteFailure{WriteType: "CAS"}, true},
		{"wrapped", fmt.Errorf("x: %w", &gocql.RequestErrCASWriteUnknown{}), true},
		{"connection closed in flight", gocql.ErrConnectionClosed, true},
		{"client timeout", gocql.ErrTimeoutNoResponse, true},
		{"attempt deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"connection reset mid-request", fmt.Errorf("gocql: failed to read uncompressed frame, err: %w",
			&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"unavailable: refused before Paxos", &gocql.RequestErrUnavailable{}, false},
		{"no connections: never sent", gocql.ErrNoConnections, false},
		{"cancelled", context.Canceled, false},
		{"other", errors.New("boom"), false},
	}
	for _, tc := range tests {
		if got := casUnknown(tc.err); got != tc.want {
			t.Errorf("%s: casUnknown(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func TestSerialFor(t *testing.T) {
	for in, want := range map[gocql.Consistency]gocql.Consistency{
		gocql.Quorum: gocql.Serial, gocql.All: gocql.Serial, gocql.One: gocql.Serial, gocql.EachQuorum: gocql.Serial,
		gocql.LocalQuorum: gocql.LocalSerial, gocql.LocalOne: gocql.LocalSerial,
	} {
		if got := serialFor(in); got != want {
			t.Errorf("serialFor(%v) = %v, want %v", in, got, want)
		}
	}
}

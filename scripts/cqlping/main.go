// Command cqlping checks that a Cassandra node answers CQL: it connects to
// host:port (default 127.0.0.1:9042), runs
// "SELECT release_version FROM system.local" and exits 0 on success, 1 on
// failure. scripts/cassandra.sh polls it while a node starts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

func main() {
	host := flag.String("host", "127.0.0.1", "Cassandra host")
	port := flag.Int("port", 9042, "CQL native transport port")
	timeout := flag.Duration("timeout", 3*time.Second, "overall deadline for connect and query")
	quiet := flag.Bool("q", false, "print nothing on success or failure")
	flag.Parse()

	version, err := ping(*host, *port, *timeout)
	if err != nil {
		if !*quiet {
			fmt.Fprintf(os.Stderr, "cqlping: %s:%d: %v\n", *host, *port, err)
		}
		os.Exit(1)
	}
	if !*quiet {
		fmt.Printf("cassandra %s answering on %s:%d\n", version, *host, *port)
	}
}

func ping(host string, port int, timeout time.Duration) (string, error) {
	cluster := gocql.NewCluster(host)
	cluster.Port = port
	cluster.Timeout = timeout
	cluster.ConnectTimeout = timeout
	cluster.NumConns = 1
	cluster.Consistency = gocql.One
	// Talk to exactly this node: no ring discovery, a single connection attempt.
	// MaxRetries must be at least 1: with 0 the v2.1.2 pool makes no attempt,
	// gets no error, appends a nil *Conn and the query panics in
	// hostConnPool.Pick (nil pointer in Conn.AvailableStreams).
	cluster.DisableInitialHostLookup = true
	cluster.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 1, Interval: 100 * time.Millisecond}

	session, err := cluster.CreateSession()
	if err != nil {
		return "", err
	}
	defer session.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var version string
	if err := session.Query("SELECT release_version FROM system.local").ScanContext(ctx, &version); err != nil {
		return "", err
	}
	return version, nil
}

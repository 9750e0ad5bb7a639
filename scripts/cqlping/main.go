// Command cqlping checks that a Cassandra node answers CQL: it connects to
// host:port (default 127.0.0.1:9042), runs
// "SELECT release_version FROM system.local" and exits 0 on success, 1 on
// failure. scripts/cassandra.sh polls it while a node starts.
//
// With -peers N it also requires the node to know N peers (system.peers)
// that all report the node's own schema version: the cluster agrees on
// the schema, as the cluster mode of scripts/cassandra.sh waits for.
package main

import (
	"context"
	"errors"
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
	peers := flag.Int("peers", 0, "also require this many peers agreeing on the node's schema version")
	quiet := flag.Bool("q", false, "print nothing on success or failure")
	flag.Parse()

	version, err := ping(*host, *port, *timeout, *peers)
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

func ping(host string, port int, timeout time.Duration, peers int) (string, error) {
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
	if peers > 0 {
		// Only this host: the session must not wander to the peers it finds.
		cluster.HostFilter = gocql.WhiteListHostFilter(host)
	}

	session, err := cluster.CreateSession()
	if err != nil {
		return "", err
	}
	defer session.Close()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var version string
	var schema gocql.UUID
	if err := session.Query("SELECT release_version, schema_version FROM system.local").ScanContext(ctx, &version, &schema); err != nil {
		return "", err
	}
	if peers == 0 {
		return version, nil
	}
	iter := session.Query("SELECT peer, schema_version FROM system.peers").IterContext(ctx)
	var (
		peer   string
		theirs gocql.UUID
		n      int
		agree  = true
	)
	for iter.Scan(&peer, &theirs) {
		n++
		if theirs != schema {
			agree = false
		}
	}
	if err := iter.Close(); err != nil {
		return "", err
	}
	switch {
	case n < peers:
		return "", fmt.Errorf("knows %d of %d peers", n, peers)
	case !agree:
		return "", errors.New("peers disagree on the schema version")
	}
	return version, nil
}

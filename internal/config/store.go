package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Store selects and configures the storage driver.
type Store struct {
	Driver    string    `koanf:"driver"`    // bolt | cassandra | memory
	SealKeys  []string  `koanf:"seal_keys"` // base64 32-byte AES keys; the first seals, all open
	Bolt      Bolt      `koanf:"bolt"`
	Cassandra Cassandra `koanf:"cassandra"`
}

// Bolt is the embedded store.
type Bolt struct {
	Path string `koanf:"path"`
}

// Cassandra is the shared store.
type Cassandra struct {
	Hosts          []string          `koanf:"hosts"`
	Keyspace       string            `koanf:"keyspace"`
	Consistency    string            `koanf:"consistency"`
	Timeout        time.Duration     `koanf:"timeout"`
	ConnectTimeout time.Duration     `koanf:"connect_timeout"`
	NumConns       int               `koanf:"num_conns"`
	Username       string            `koanf:"username"`
	Password       string            `koanf:"password"`
	Replication    map[string]string `koanf:"replication"`
}

var (
	identRe      = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)
	consistences = []string{"ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"}
)

// validate checks the store section, naming each key.
func (st Store) validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	switch st.Driver {
	case "bolt":
		if st.Bolt.Path == "" {
			add(bad("store.bolt.path", "must not be empty"))
		}
	case "memory":
	case "cassandra":
		cs := st.Cassandra
		if len(cs.Hosts) == 0 {
			add(bad("store.cassandra.hosts", "must list at least one host"))
		}
		if !identRe.MatchString(cs.Keyspace) {
			add(bad("store.cassandra.keyspace", "must be a CQL identifier (letters, digits, _), got %q", cs.Keyspace))
		}
		if !slices.Contains(consistences, strings.ToUpper(cs.Consistency)) {
			add(bad("store.cassandra.consistency", "must be one of %s, got %q", strings.Join(consistences, ", "), cs.Consistency))
		}
		if cs.Timeout <= 0 {
			add(bad("store.cassandra.timeout", "must be positive"))
		}
		if cs.ConnectTimeout <= 0 {
			add(bad("store.cassandra.connect_timeout", "must be positive"))
		}
		if cs.NumConns < 1 || cs.NumConns > 64 {
			add(bad("store.cassandra.num_conns", "must be between 1 and 64, got %d", cs.NumConns))
		}
		if (cs.Username == "") != (cs.Password == "") {
			add(bad("store.cassandra.username", "username and password go together"))
		}
		cls := cs.Replication["class"]
		if cls != "SimpleStrategy" && cls != "NetworkTopologyStrategy" {
			add(bad("store.cassandra.replication", "class must be SimpleStrategy or NetworkTopologyStrategy, got %q", cls))
		}
		if strings.EqualFold(cs.Consistency, "EACH_QUORUM") && cls == "SimpleStrategy" {
			// Cassandra refuses every EACH_QUORUM write (the lightweight
			// transactions included) on a SimpleStrategy keyspace.
			add(bad("store.cassandra.consistency", "EACH_QUORUM needs replication class NetworkTopologyStrategy"))
		}
		if len(st.SealKeys) == 0 {
			add(bad("store.seal_keys", "the cassandra store needs at least one seal key, shared by every replica (generate one with: head -c32 /dev/urandom | base64)"))
		}
	default:
		add(bad("store.driver", "must be bolt, cassandra or memory, got %q", st.Driver))
	}
	if _, err := st.DecodedSealKeys(); err != nil {
		add(err)
	}
	return errors.Join(errs...)
}

// DecodedSealKeys returns store.seal_keys decoded: 32-byte AES-256 keys.
func (s Store) DecodedSealKeys() ([][]byte, error) {
	out := make([][]byte, 0, len(s.SealKeys))
	for i, k := range s.SealKeys {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(strings.TrimSpace(k))
		}
		if err != nil || len(b) != 32 {
			return nil, bad(fmt.Sprintf("store.seal_keys[%d]", i), "must be base64 of 32 bytes")
		}
		out = append(out, b)
	}
	return out, nil
}

package main

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// The tokengw configs the kit generates, written with a YAML encoder so
// that any value (a path with a colon, an id with a quote) comes out as
// YAML, not as whatever string formatting makes of it.

type genConfig struct {
	Server  genServer   `yaml:"server"`
	Issuer  genIssuer   `yaml:"issuer"`
	Reuse   genReuse    `yaml:"reuse"`
	Store   genStore    `yaml:"store"`
	Log     genLog      `yaml:"log"`
	Clients []genClient `yaml:"clients,omitempty"`
}

type genServer struct {
	Addr      string `yaml:"addr"`
	AdminAddr string `yaml:"admin_addr"`
}

type genIssuer struct {
	URL      string `yaml:"url"`
	TokenTTL string `yaml:"token_ttl"`
}

type genReuse struct {
	Enabled            bool    `yaml:"enabled"`
	MinRemaining       string  `yaml:"min_remaining"`
	MaxElapsedFraction float64 `yaml:"max_elapsed_fraction"`
}

type genStore struct {
	Driver    string        `yaml:"driver"`
	SealKeys  []string      `yaml:"seal_keys,omitempty"`
	Bolt      *genBolt      `yaml:"bolt,omitempty"`
	Cassandra *genCassandra `yaml:"cassandra,omitempty"`
}

type genBolt struct {
	Path string `yaml:"path"`
}

type genCassandra struct {
	Hosts    []string `yaml:"hosts"`
	Keyspace string   `yaml:"keyspace"`
}

type genLog struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// genClient is one client of a generated config.
type genClient struct {
	ID         string   `yaml:"id"`
	SecretHash string   `yaml:"secret_hash"`
	Scopes     []string `yaml:"scopes,omitempty"`
}

// marshalYAML renders v, prefixed by a comment line.
func marshalYAML(comment string, v any) (string, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("loadtest: yaml: %w", err)
	}
	if comment == "" {
		return string(b), nil
	}
	return "# " + comment + "\n" + string(b), nil
}

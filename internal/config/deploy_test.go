package config_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/knadh/koanf/parsers/yaml"

	"github.com/tokengw/tokengw/internal/config"
)

// TestKubernetesConfigMap: the configuration file that
// deploy/kubernetes/configmap.yaml mounts loads as it is (no unknown key,
// no bad value), with the secrets the Secret provides as variables. The
// manifests' own test (deploy/kubernetes, its own module) checks probes and
// ports against the same file.
func TestKubernetesConfigMap(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.Parser().Unmarshal(raw)
	if err != nil {
		t.Fatalf("configmap.yaml: %v", err)
	}
	data, _ := doc["data"].(map[string]any)
	file, ok := data["config.yaml"].(string)
	if !ok {
		t.Fatalf("configmap.yaml has no data.config.yaml")
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cfg, err := config.Load(path, []string{
		"TOKENGW_STORE__SEAL_KEYS=" + key,
		"TOKENGW_SERVER__ADMIN_TOKEN=an-admin-token-of-enough-length",
		"TOKENGW_STORE__CASSANDRA__USERNAME=tokengw",
		"TOKENGW_STORE__CASSANDRA__PASSWORD=secret",
	})
	if err != nil {
		t.Fatalf("the ConfigMap's config.yaml does not load: %v", err)
	}
	if cfg.Store.Driver != "cassandra" || cfg.Server.Timeouts.ShutdownDelay <= 0 {
		t.Errorf("store.driver %q, shutdown_delay %v: want cassandra and a positive delay", cfg.Store.Driver, cfg.Server.Timeouts.ShutdownDelay)
	}
}

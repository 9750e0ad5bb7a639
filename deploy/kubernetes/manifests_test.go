package kubernetes

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests are the decoded objects of every *.yaml file here.
type manifests struct {
	deployments []*appsv1.Deployment
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	secrets     []*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	jobs        []*batchv1.Job
}

// decode splits a file into YAML documents and decodes each strictly into
// the type its apiVersion and kind name.
func decode(t *testing.T, name string, data []byte, m *manifests) {
	t.Helper()
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s doc %d: %v", name, i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			m.deployments, obj = append(m.deployments, o), o
		case "v1 Service":
			o := &corev1.Service{}
			m.services, obj = append(m.services, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			m.configMaps, obj = append(m.configMaps, o), o
		case "v1 Secret":
			o := &corev1.Secret{}
			m.secrets, obj = append(m.secrets, o), o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			m.pdbs, obj = append(m.pdbs, o), o
		case "batch/v1 Job":
			o := &batchv1.Job{}
			m.jobs, obj = append(m.jobs, o), o
		default:
			t.Fatalf("%s doc %d: unexpected %s %s", name, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("%s doc %d (%s): strict decode: %v", name, i, tm.Kind, err)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		decode(t, f, data, m)
	}
	for what, n := range map[string]int{"Deployment": len(m.deployments), "Service": len(m.services),
		"ConfigMap": len(m.configMaps), "Secret": len(m.secrets), "PodDisruptionBudget": len(m.pdbs), "Job": len(m.jobs)} {
		if n != 1 {
			t.Fatalf("%d %s manifests, want 1", n, what)
		}
	}
	return m
}

// tokengwConfig is the part of config.yaml the manifests depend on.
type tokengwConfig struct {
	Server struct {
		Addr      string `json:"addr"`
		AdminAddr string `json:"admin_addr"`
		Timeouts  struct {
			ShutdownDelay string `json:"shutdown_delay"`
			Shutdown      string `json:"shutdown"`
		} `json:"timeouts"`
	} `json:"server"`
	Store struct {
		Driver string `json:"driver"`
	} `json:"store"`
}

func duration(t *testing.T, key, v string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("config %s = %q: %v", key, v, err)
	}
	return d
}

// TestStrictDecodeRefusesUnknownFields shows that a misspelt field fails
// the decoding the other test relies on.
func TestStrictDecodeRefusesUnknownFields(t *testing.T) {
	doc := []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  selectr:\n    a: b\n")
	if err := yaml.UnmarshalStrict(doc, &corev1.Service{}); err == nil || !strings.Contains(err.Error(), "selectr") {
		t.Fatalf("strict decode of a misspelt field: err = %v, want one naming it", err)
	}
}

func TestManifests(t *testing.T) {
	m := load(t)
	dep, svc, cm, sec, pdb, job := m.deployments[0], m.services[0], m.configMaps[0], m.secrets[0], m.pdbs[0], m.jobs[0]

	raw, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no config.yaml", cm.Name)
	}
	var cfg tokengwConfig
	if err := yaml.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	_, portStr, err := net.SplitHostPort(cfg.Server.Addr)
	if err != nil {
		t.Fatalf("server.addr %q: %v", cfg.Server.Addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	if host, _, _ := net.SplitHostPort(cfg.Server.Addr); host != "0.0.0.0" && host != "" {
		t.Errorf("server.addr %q: a pod must listen on all interfaces for the Service", cfg.Server.Addr)
	}
	if cfg.Store.Driver != "cassandra" {
		t.Errorf("store.driver = %q: replicas of a Deployment share Cassandra", cfg.Store.Driver)
	}
	delay := duration(t, "server.timeouts.shutdown_delay", cfg.Server.Timeouts.ShutdownDelay)
	shutdown := duration(t, "server.timeouts.shutdown", cfg.Server.Timeouts.Shutdown)

	pod := dep.Spec.Template
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("Deployment replicas = %v, want at least 2", dep.Spec.Replicas)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	containerPort := func(p intstr.IntOrString) int {
		if p.Type == intstr.Int {
			return p.IntValue()
		}
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				return int(cp.ContainerPort)
			}
		}
		t.Errorf("port %q is not a port of container %s", p.StrVal, c.Name)
		return 0
	}
	if len(c.Ports) != 1 || int(c.Ports[0].ContainerPort) != port {
		t.Errorf("container ports %v, want one: %d (server.addr)", c.Ports, port)
	}
	probes := []struct {
		name string
		p    *corev1.Probe
		path string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"startup", c.StartupProbe, "/readyz"},
	}
	for _, pr := range probes {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%s probe: want an httpGet probe", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("%s probe path %q, want %q", pr.name, pr.p.HTTPGet.Path, pr.path)
		}
		if got := containerPort(pr.p.HTTPGet.Port); got != port {
			t.Errorf("%s probe port %d, want %d (server.addr)", pr.name, got, port)
		}
	}
	// The pod must leave the Service while it still serves: readiness
	// fails within the shutdown delay, and the grace period covers the
	// delay and the drain.
	if rp := c.ReadinessProbe; rp != nil {
		notReady := time.Duration(rp.PeriodSeconds*max(rp.FailureThreshold, 1)) * time.Second
		if notReady > delay {
			t.Errorf("readiness notices shutdown after up to %v, beyond server.timeouts.shutdown_delay %v", notReady, delay)
		}
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= delay+shutdown {
		t.Errorf("terminationGracePeriodSeconds %v must exceed shutdown_delay + shutdown (%v)", g, delay+shutdown)
	}

	// Non-root, read-only root filesystem, resources, for the server and the Job.
	for _, p := range []struct {
		what string
		spec corev1.PodSpec
	}{{"Deployment", pod.Spec}, {"Job", job.Spec.Template.Spec}} {
		psc := p.spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("%s: pod must run as a non-root user", p.what)
		}
		for _, ct := range p.spec.Containers {
			sc := ct.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s container %s: readOnlyRootFilesystem must be true", p.what, ct.Name)
			}
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s container %s: allowPrivilegeEscalation must be false", p.what, ct.Name)
			}
			if ct.Resources.Requests.Cpu().IsZero() || ct.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s container %s: want a CPU request and a memory limit", p.what, ct.Name)
			}
			checkConfigMount(t, p.what, p.spec, ct, cm.Name)
			refs := 0
			for _, ef := range ct.EnvFrom {
				if ef.SecretRef != nil {
					refs++
					if ef.SecretRef.Name != sec.Name {
						t.Errorf("%s container %s: envFrom names Secret %q, not %q", p.what, ct.Name, ef.SecretRef.Name, sec.Name)
					}
				}
			}
			if refs != 1 {
				t.Errorf("%s container %s: want the Secret %s as envFrom", p.what, ct.Name, sec.Name)
			}
		}
	}
	if len(job.Spec.Template.Spec.Containers) != 1 || !slices.Equal(job.Spec.Template.Spec.Containers[0].Args[:1], []string{"migrate"}) {
		t.Errorf("Job: want one container running `tokengw migrate`")
	}
	if !slices.Equal(c.Args[:1], []string{"serve"}) {
		t.Errorf("Deployment args %v, want serve --config ...", c.Args)
	}
	for _, key := range []string{"TOKENGW_STORE__SEAL_KEYS", "TOKENGW_SERVER__ADMIN_TOKEN"} {
		if _, ok := sec.StringData[key]; !ok {
			t.Errorf("Secret %s lacks %s", sec.Name, key)
		}
	}

	// The Service and the budget select the Deployment's pods.
	labels := pod.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(svc.Spec.Selector) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, labels)
	}
	for _, sp := range svc.Spec.Ports {
		if got := containerPort(sp.TargetPort); got != port {
			t.Errorf("Service port %s targets %d, want %d", sp.Name, got, port)
		}
	}
	if pdb.Spec.Selector == nil || !matches(pdb.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget does not select the pods %v", labels)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() >= int(*dep.Spec.Replicas) {
		t.Errorf("PodDisruptionBudget maxUnavailable %v must leave a replica of %d serving", pdb.Spec.MaxUnavailable, *dep.Spec.Replicas)
	}
}

// checkConfigMount: the --config file is in a read-only mount of the ConfigMap.
func checkConfigMount(t *testing.T, what string, spec corev1.PodSpec, c corev1.Container, cm string) {
	t.Helper()
	i := slices.Index(c.Args, "--config")
	if i < 0 || i+1 >= len(c.Args) {
		t.Errorf("%s container %s: no --config argument in %v", what, c.Name, c.Args)
		return
	}
	path := c.Args[i+1]
	for _, vm := range c.VolumeMounts {
		if filepath.Join(vm.MountPath, "config.yaml") != path {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == cm && vm.ReadOnly {
				return
			}
		}
	}
	t.Errorf("%s container %s: --config %s is not config.yaml of a read-only mount of ConfigMap %s", what, c.Name, path, cm)
}

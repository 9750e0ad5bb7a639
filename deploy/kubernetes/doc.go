// Package kubernetes holds tokengw's Kubernetes manifests (*.yaml beside
// this file) and, in manifests_test.go, the test that decodes them strictly
// into the Kubernetes API types and checks them against tokengw's
// configuration. It is its own Go module so that tokengw's go.mod carries
// no Kubernetes dependencies; scripts/test.sh runs its test.
package kubernetes

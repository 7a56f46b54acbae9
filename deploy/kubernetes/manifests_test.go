// Package kubernetes checks the manifests in this directory against the
// Kubernetes API types (k8s.io/api): every document must decode strictly,
// with no unknown or misspelled field, and the pieces must fit together
// (discovery through the headless service, the probes, the hand-off hook). It is its own module, so the gateway's go.mod
// does not carry the Kubernetes API.
package kubernetes

import (
	"bytes"
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

func TestManifests(t *testing.T) {
	b, err := os.ReadFile("meshgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var sts appsv1.StatefulSet
	var headless corev1.Service
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		switch meta.Kind {
		case "Service":
			obj = &corev1.Service{}
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "StatefulSet":
			obj = &sts
		case "PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		default:
			t.Fatalf("document %d: unexpected kind %q", i, meta.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, meta.Kind, err)
		}
		kinds[meta.Kind]++
		if s, ok := obj.(*corev1.Service); ok && s.Spec.ClusterIP == "None" {
			headless = *s
		}
	}
	if kinds["Service"] != 2 || kinds["StatefulSet"] != 1 || kinds["PodDisruptionBudget"] != 1 || kinds["ConfigMap"] != 1 {
		t.Fatalf("kinds: %v", kinds)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("readiness must be /readyz: joined, plugins up, not draining")
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		t.Error("a preStop hook must give endpoints time before the hand-off")
	}
	if sts.Spec.ServiceName != "meshgate-peers" {
		t.Error("the StatefulSet's service must be the headless one")
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if !strings.HasPrefix(env["MESHGATE_JOIN"], "meshgate-peers") {
		t.Errorf("nodes must join through the headless service, not %q", env["MESHGATE_JOIN"])
	}
	if !headless.Spec.PublishNotReadyAddresses {
		t.Error("the headless service must publish pods before they are ready, or no node can join the first")
	}
}

package entente_test

// The Helm chart in deploy/helm/entente is rendered here by the Helm SDK
// itself, as "helm template" does (no cluster), and every object is decoded
// strictly into the Kubernetes API types: a misspelt field fails. Each
// replica's environment is then resolved as the kubelet would (field and
// secret references, $(VAR) expansion) and loaded with its per-replica file
// by the node's own configuration loader.

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/entente-org/entente/internal/config"
)

const (
	chartDir         = "deploy/helm/entente"
	chartRelease     = "visio"
	chartNamespace   = "conf"
	chartFullname    = "visio-entente"
	chartDBSecret    = "visio-db"
	chartDatabaseURL = "postgres://entente:s3cret@db.conf.svc:5432/entente?sslmode=require"
	chartNATSURL     = "nats://nats.messaging.svc:4222"
)

// rendered is what the chart makes for one set of values.
type rendered struct {
	objects      []string // "Kind/name", sorted
	services     map[string]corev1.Service
	configMaps   map[string]corev1.ConfigMap
	statefulSets map[string]appsv1.StatefulSet
	budgets      map[string]policyv1.PodDisruptionBudget
	notes        string
}

// renderChart renders the chart with values in client-only mode.
func renderChart(t *testing.T, values map[string]any) (rendered, error) {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = chartRelease
	install.Namespace = chartNamespace
	install.Replace = true
	rel, err := install.Run(ch, values)
	if err != nil {
		return rendered{}, err
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		t.Fatalf("release is a %T, want *release/v1.Release", rel)
	}
	if len(r.Hooks) != 0 {
		t.Errorf("chart has %d hooks, want none", len(r.Hooks))
	}
	out := rendered{
		services:     map[string]corev1.Service{},
		configMaps:   map[string]corev1.ConfigMap{},
		statefulSets: map[string]appsv1.StatefulSet{},
		budgets:      map[string]policyv1.PodDisruptionBudget{},
		notes:        r.Info.Notes,
	}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(r.Manifest, -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("manifest: %v\n%s", err, doc)
		}
		key := head.Kind + "/" + head.Metadata.Name
		if slices.Contains(out.objects, key) {
			t.Errorf("%s is rendered twice", key)
		}
		out.objects = append(out.objects, key)
		strict := func(v any) {
			if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
				t.Fatalf("%s: %v\n%s", key, err, doc)
			}
		}
		switch head.APIVersion + " " + head.Kind {
		case "v1 Service":
			var s corev1.Service
			strict(&s)
			out.services[s.Name] = s
		case "v1 ConfigMap":
			var c corev1.ConfigMap
			strict(&c)
			out.configMaps[c.Name] = c
		case "apps/v1 StatefulSet":
			var s appsv1.StatefulSet
			strict(&s)
			out.statefulSets[s.Name] = s
		case "policy/v1 PodDisruptionBudget":
			var b policyv1.PodDisruptionBudget
			strict(&b)
			out.budgets[b.Name] = b
		default:
			t.Errorf("unexpected object %s %s", head.APIVersion, key)
		}
	}
	slices.Sort(out.objects)
	return out, nil
}

func mustRenderChart(t *testing.T, values map[string]any) rendered {
	t.Helper()
	r, err := renderChart(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// chartValues returns the values every node needs, with overrides merged in
// (one level deep).
func chartValues(overrides map[string]any) map[string]any {
	v := map[string]any{
		"node": map[string]any{"name": "Ministry of the Interior", "publicURL": "https://visio.interior.example"},
		"tls":  map[string]any{"existingSecret": "visio-tls"},
	}
	for k, o := range overrides {
		if om, ok := o.(map[string]any); ok {
			if vm, ok := v[k].(map[string]any); ok {
				merged := maps.Clone(vm)
				maps.Copy(merged, om)
				v[k] = merged
				continue
			}
		}
		v[k] = o
	}
	return v
}

// threeReplicas are the values of a node with three replicas, one public
// address per replica.
func threeReplicas() map[string]any {
	return chartValues(map[string]any{
		"replicaCount": 3,
		"database":     map[string]any{"existingSecret": chartDBSecret},
		"nats":         map[string]any{"url": chartNATSURL},
		"media":        map[string]any{"publicIPs": []any{"203.0.113.10", "203.0.113.11", "203.0.113.12"}},
	})
}

// replica is one pod of the StatefulSet as the kubelet would start it.
type replica struct {
	name   string
	env    map[string]string // resolved
	raw    map[string]corev1.EnvVar
	cfg    config.Config
	config string // its per-replica file
}

var envReference = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// replicas resolves each pod of the StatefulSet: its environment as the
// kubelet would (a field reference to the pod's name, secret references from
// secrets, $(VAR) of earlier variables), on top of the image's ENV, and its
// configuration as the node would load it.
func (r rendered) replicas(t *testing.T, secrets map[string]map[string]string) []replica {
	t.Helper()
	sts, ok := r.statefulSets[chartFullname]
	if !ok {
		t.Fatalf("no StatefulSet %s", chartFullname)
	}
	stages := readDockerfile(t)
	imageEnv := stages[len(stages)-1].env()
	c := ententeContainer(t, sts)
	var out []replica
	for i := range int(*sts.Spec.Replicas) {
		pod := fmt.Sprintf("%s-%d", sts.Name, i)
		env := maps.Clone(imageEnv)
		defined := map[string]string{}
		raw := map[string]corev1.EnvVar{}
		for _, e := range c.Env {
			var v string
			switch {
			case e.ValueFrom == nil:
				v = envReference.ReplaceAllStringFunc(e.Value, func(ref string) string {
					if val, ok := defined[ref[2:len(ref)-1]]; ok {
						return val
					}
					return ref
				})
			case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
				v = pod
			case e.ValueFrom.SecretKeyRef != nil:
				ref := e.ValueFrom.SecretKeyRef
				val, ok := secrets[ref.Name][ref.Key]
				if !ok {
					t.Fatalf("%s: %s refers to Secret %s key %s, which the test does not have", pod, e.Name, ref.Name, ref.Key)
				}
				v = val
			default:
				t.Fatalf("%s: %s has a reference the test does not resolve: %+v", pod, e.Name, e.ValueFrom)
			}
			defined[e.Name] = v
			env[e.Name] = v
			raw[e.Name] = e
		}
		rep := replica{name: pod, env: env, raw: raw}

		// The file ENTENTE_CONFIG names comes from the ConfigMap mounted there.
		path := env["ENTENTE_CONFIG"]
		mount, file := filepath.Split(path)
		cm := r.configMapMountedAt(t, sts, strings.TrimSuffix(mount, "/"))
		data, ok := cm.Data[file]
		if !ok {
			t.Fatalf("%s: ENTENTE_CONFIG=%s, but ConfigMap %s has no %s (keys %v)", pod, path, cm.Name, file, slices.Sorted(maps.Keys(cm.Data)))
		}
		rep.config = data
		local := filepath.Join(t.TempDir(), file)
		if err := os.WriteFile(local, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		delete(env, "ENTENTE_CONFIG") // given as the path below instead
		rep.cfg = loadNodeConfig(t, pod, local, env)
		env["ENTENTE_CONFIG"] = path
		out = append(out, rep)
	}
	return out
}

func ententeContainer(t *testing.T, sts appsv1.StatefulSet) corev1.Container {
	t.Helper()
	cs := sts.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "entente" {
		t.Fatalf("containers %+v, want one named entente", cs)
	}
	return cs[0]
}

// volumeAt returns the pod volume mounted at path in the entente container.
func volumeAt(t *testing.T, sts appsv1.StatefulSet, path string) (corev1.VolumeMount, *corev1.Volume) {
	t.Helper()
	for _, m := range ententeContainer(t, sts).VolumeMounts {
		if m.MountPath == path {
			for i, v := range sts.Spec.Template.Spec.Volumes {
				if v.Name == m.Name {
					return m, &sts.Spec.Template.Spec.Volumes[i]
				}
			}
			return m, nil // a volumeClaimTemplate
		}
	}
	t.Fatalf("nothing is mounted at %s", path)
	return corev1.VolumeMount{}, nil
}

func (r rendered) configMapMountedAt(t *testing.T, sts appsv1.StatefulSet, path string) corev1.ConfigMap {
	t.Helper()
	_, v := volumeAt(t, sts, path)
	if v == nil || v.ConfigMap == nil {
		t.Fatalf("the volume at %s is not a ConfigMap: %+v", path, v)
	}
	cm, ok := r.configMaps[v.ConfigMap.Name]
	if !ok {
		t.Fatalf("ConfigMap %s mounted at %s is not rendered", v.ConfigMap.Name, path)
	}
	return cm
}

func selectorLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": "entente", "app.kubernetes.io/instance": chartRelease}
}

package entente_test

// The Helm chart's objects for one and three replicas, its options and its
// refusals (see deploy_helm_render_test.go for how it is rendered).

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/entente-org/entente/internal/config"
)

func TestHelmChartThreeReplicas(t *testing.T) {
	r := mustRenderChart(t, threeReplicas())

	want := []string{
		"ConfigMap/visio-entente-replicas",
		"PodDisruptionBudget/visio-entente",
		"Service/visio-entente",
		"Service/visio-entente-internal",
		"Service/visio-entente-media-0",
		"Service/visio-entente-media-1",
		"Service/visio-entente-media-2",
		"StatefulSet/visio-entente",
	}
	if !slices.Equal(r.objects, want) {
		t.Fatalf("objects = %q, want %q", r.objects, want)
	}
	sts := r.statefulSets[chartFullname]
	checkStatefulSet(t, r, sts, 3)

	// The database URL comes from the Secret, never from the values.
	c := ententeContainer(t, sts)
	if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "ENTENTE_DATABASE_URL" }); i < 0 {
		t.Error("no ENTENTE_DATABASE_URL")
	} else if e := c.Env[i]; e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != chartDBSecret || e.ValueFrom.SecretKeyRef.Key != "url" {
		t.Errorf("ENTENTE_DATABASE_URL = %+v, want Secret %s key url", e, chartDBSecret)
	}
	if sts.Spec.VolumeClaimTemplates != nil {
		t.Errorf("volumeClaimTemplates %+v: with PostgreSQL a replica keeps nothing on disk", sts.Spec.VolumeClaimTemplates)
	}
	if _, v := volumeAt(t, sts, nodeDataDir); v == nil || v.EmptyDir == nil {
		t.Errorf("data volume %+v, want an emptyDir", v)
	}

	secrets := map[string]map[string]string{chartDBSecret: {"url": chartDatabaseURL}}
	internalHosts := map[string]bool{}
	for i, rep := range r.replicas(t, secrets) {
		t.Run(rep.name, func(t *testing.T) {
			wantEnv := map[string]string{
				"ENTENTE_CLUSTER_NATS_URL":     chartNATSURL,
				"ENTENTE_CLUSTER_REPLICA_ID":   rep.name,
				"ENTENTE_CLUSTER_INTERNAL_URL": fmt.Sprintf("https://%s.visio-entente-internal.conf.svc.cluster.local:8443", rep.name),
				"ENTENTE_KEYS_STORAGE":         "database",
				"ENTENTE_DATABASE_URL":         chartDatabaseURL,
				"ENTENTE_CONFIG":               "/etc/entente/replica/" + rep.name + ".yaml",
			}
			for k, want := range wantEnv {
				if got, ok := rep.env[k]; !ok || got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if _, ok := rep.env["ENTENTE_CLUSTER_MAX_PARTICIPANTS"]; ok {
				t.Error("ENTENTE_CLUSTER_MAX_PARTICIPANTS is set without cluster.maxParticipants")
			}
			internalHosts[rep.env["ENTENTE_CLUSTER_INTERNAL_URL"]] = true

			cfg := rep.cfg
			if cfg.Keys.Storage != "database" || cfg.Database.URL != chartDatabaseURL {
				t.Errorf("keys.storage %q, database.url %q; want database and the Secret's URL", cfg.Keys.Storage, cfg.Database.URL)
			}
			if want := 40000 + i; cfg.Media.UDPPort != want {
				t.Errorf("media.udp_port = %d, want %d", cfg.Media.UDPPort, want)
			}
			if got, want := cfg.Media.PublicIPList(), []string{fmt.Sprintf("203.0.113.1%d", i)}; !slices.Equal(got, want) {
				t.Errorf("media.public_ips = %q, want %q", got, want)
			}
			checkReplicaConfig(t, cfg)
			checkMediaService(t, r, rep.name, i, cfg.Media.UDPPort, corev1.ServiceTypeLoadBalancer)
		})
	}
	if len(internalHosts) != 3 {
		t.Errorf("internal URLs %v, want three distinct", internalHosts)
	}

	for _, want := range []string{
		"Entente node \"Ministry of the Interior\" at https://visio.interior.example",
		"3 replicas share PostgreSQL (Secret visio-db) and NATS (" + chartNATSURL + ").",
		"visio-entente-2: UDP 40002 via Service visio-entente-media-2",
	} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, r.notes)
		}
	}
}

func TestHelmChartSingleReplica(t *testing.T) {
	r := mustRenderChart(t, chartValues(nil))

	want := []string{
		"ConfigMap/visio-entente-replicas",
		"PodDisruptionBudget/visio-entente",
		"Service/visio-entente",
		"Service/visio-entente-internal",
		"Service/visio-entente-media-0",
		"StatefulSet/visio-entente",
	}
	if !slices.Equal(r.objects, want) {
		t.Fatalf("objects = %q, want %q", r.objects, want)
	}
	sts := r.statefulSets[chartFullname]
	checkStatefulSet(t, r, sts, 1)

	// Without PostgreSQL the SQLite store and the keys file live on a
	// volume of the replica's own.
	vct := sts.Spec.VolumeClaimTemplates
	if len(vct) != 1 || vct[0].Name != "data" || vct[0].Spec.Resources.Requests.Storage().String() != "1Gi" ||
		!slices.Equal(vct[0].Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
		t.Errorf("volumeClaimTemplates = %+v, want data, 1Gi, ReadWriteOnce", vct)
	}
	if m, v := volumeAt(t, sts, nodeDataDir); m.Name != "data" || v != nil {
		t.Errorf("%s mounts %q (pod volume %+v), want the claim data", nodeDataDir, m.Name, v)
	}

	reps := r.replicas(t, nil)
	if len(reps) != 1 {
		t.Fatalf("%d replicas, want 1", len(reps))
	}
	rep := reps[0]
	for k := range rep.env {
		if strings.HasPrefix(k, "ENTENTE_CLUSTER_") || k == "ENTENTE_DATABASE_URL" {
			t.Errorf("%s is set on a single replica without a database", k)
		}
	}
	if rep.cfg.Keys.Storage != "file" || rep.cfg.Database.URL != "" {
		t.Errorf("keys.storage %q, database.url %q; want file and SQLite", rep.cfg.Keys.Storage, rep.cfg.Database.URL)
	}
	if rep.cfg.Media.UDPPort != 40000 || len(rep.cfg.Media.PublicIPList()) != 0 {
		t.Errorf("media.udp_port %d, public_ips %q; want 40000 and none", rep.cfg.Media.UDPPort, rep.cfg.Media.PublicIPs)
	}
	if want := "media:\n  udp_port: 40000\n"; rep.config != want {
		t.Errorf("replica file = %q, want %q", rep.config, want)
	}
	checkReplicaConfig(t, rep.cfg)
	checkMediaService(t, r, rep.name, 0, 40000, corev1.ServiceTypeLoadBalancer)
	if !strings.Contains(r.notes, "One replica, with its SQLite store on a persistent volume.") {
		t.Errorf("NOTES:\n%s", r.notes)
	}
}

// checkStatefulSet checks what every rendering shares: the pods, their
// probes, security, annotations, drain time, and the Services and budget
// that select them.
func checkStatefulSet(t *testing.T, r rendered, sts appsv1.StatefulSet, replicas int32) {
	t.Helper()
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != replicas {
		t.Fatalf("replicas = %v, want %d", sts.Spec.Replicas, replicas)
	}
	if sts.Spec.ServiceName != "visio-entente-internal" {
		t.Errorf("serviceName = %q, want the headless visio-entente-internal", sts.Spec.ServiceName)
	}
	if sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("updateStrategy %q, podManagementPolicy %q; want RollingUpdate and Parallel", sts.Spec.UpdateStrategy.Type, sts.Spec.PodManagementPolicy)
	}
	if !maps.Equal(sts.Spec.Selector.MatchLabels, selectorLabels()) || !maps.Equal(sts.Spec.Template.Labels, selectorLabels()) {
		t.Errorf("selector %v, pod labels %v; want %v", sts.Spec.Selector.MatchLabels, sts.Spec.Template.Labels, selectorLabels())
	}
	pod := sts.Spec.Template
	for k, want := range map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/scheme": "https",
		"prometheus.io/port":   "8443",
		"prometheus.io/path":   "/metrics",
	} {
		if got := pod.Annotations[k]; got != want {
			t.Errorf("pod annotation %s = %q, want %q", k, got, want)
		}
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(pod.Annotations["checksum/replica-config"]) {
		t.Errorf("checksum/replica-config = %q, want a sha256", pod.Annotations["checksum/replica-config"])
	}

	c := ententeContainer(t, sts)
	if len(c.Ports) != 1 || c.Ports[0].Name != "https" || c.Ports[0].ContainerPort != 8443 || c.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("container ports = %+v, want https 8443/TCP", c.Ports)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"startup", c.StartupProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe = %+v, want an HTTP GET", p.name, p.probe)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Port != intstr.FromString("https") || g.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s probe = GET %s %s port %v, want GET HTTPS %s port https", p.name, g.Scheme, g.Path, g.Port.String(), p.path)
		}
	}

	// Non-root, nothing writable but its volumes.
	psc, sc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want non-root 65532 with the runtime's seccomp profile", psc)
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil ||
		*sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext = %+v, want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if m, v := volumeAt(t, sts, "/tmp"); v == nil || v.EmptyDir == nil || m.ReadOnly {
		t.Errorf("/tmp = %+v, want a writable emptyDir", v)
	}
	if m, v := volumeAt(t, sts, "/etc/entente/tls"); v == nil || v.Secret == nil || v.Secret.SecretName != "visio-tls" || !m.ReadOnly {
		t.Errorf("/etc/entente/tls = %+v, want the Secret visio-tls read-only", v)
	}

	// The HTTPS Service and the headless one select every replica on the
	// container's https port.
	svc := r.services[chartFullname]
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || !maps.Equal(svc.Spec.Selector, selectorLabels()) || len(svc.Spec.Ports) != 1 ||
		svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("https") || svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("Service %s = %+v, want ClusterIP 443 -> https over every replica", chartFullname, svc.Spec)
	}
	headless := r.services["visio-entente-internal"]
	if headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses || !maps.Equal(headless.Spec.Selector, selectorLabels()) ||
		len(headless.Spec.Ports) != 1 || headless.Spec.Ports[0].Port != 8443 || headless.Spec.Ports[0].TargetPort != intstr.FromString("https") {
		t.Errorf("headless Service = %+v, want clusterIP None, not-ready addresses published, 8443 -> https", headless.Spec)
	}

	pdb, ok := r.budgets[chartFullname]
	if !ok || pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) || pdb.Spec.MinAvailable != nil ||
		!maps.Equal(pdb.Spec.Selector.MatchLabels, selectorLabels()) {
		t.Errorf("PodDisruptionBudget = %+v, want maxUnavailable 1 over every replica", pdb.Spec)
	}
}

// checkReplicaConfig checks the settings every replica has, loaded.
func checkReplicaConfig(t *testing.T, cfg config.Config) {
	t.Helper()
	if cfg.Node.Name != "Ministry of the Interior" || cfg.Node.PublicURL != "https://visio.interior.example" {
		t.Errorf("node.name %q, node.public_url %q", cfg.Node.Name, cfg.Node.PublicURL)
	}
	if cfg.Node.DataDir != nodeDataDir || cfg.HTTP.Listen != ":8443" {
		t.Errorf("node.data_dir %q, http.listen %q; want %s and :8443", cfg.Node.DataDir, cfg.HTTP.Listen, nodeDataDir)
	}
	if cfg.HTTP.TLSCert != "/etc/entente/tls/tls.crt" || cfg.HTTP.TLSKey != "/etc/entente/tls/tls.key" {
		t.Errorf("http.tls_cert %q, http.tls_key %q; want the mounted Secret's tls.crt and tls.key", cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
	}
	if cfg.HTTP.ShutdownTimeout != 15*time.Second || cfg.Log.Format != "json" {
		t.Errorf("http.shutdown_timeout %s, log.format %q; want 15s and json", cfg.HTTP.ShutdownTimeout, cfg.Log.Format)
	}
}

// checkMediaService checks the UDP Service of replica i: the port the replica
// announces, to that pod alone.
func checkMediaService(t *testing.T, r rendered, pod string, i, port int, typ corev1.ServiceType) {
	t.Helper()
	name := fmt.Sprintf("visio-entente-media-%d", i)
	svc, ok := r.services[name]
	if !ok {
		t.Fatalf("no Service %s", name)
	}
	selector := selectorLabels()
	selector["statefulset.kubernetes.io/pod-name"] = pod
	if svc.Spec.Type != typ || !maps.Equal(svc.Spec.Selector, selector) || svc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service %s: type %q, selector %v, externalTrafficPolicy %q; want %s, %v, Local",
			name, svc.Spec.Type, svc.Spec.Selector, svc.Spec.ExternalTrafficPolicy, typ, selector)
	}
	wantNodePort := int32(0)
	if typ == corev1.ServiceTypeNodePort {
		wantNodePort = int32(port)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Protocol != corev1.ProtocolUDP || svc.Spec.Ports[0].Port != int32(port) ||
		svc.Spec.Ports[0].TargetPort != intstr.FromInt32(int32(port)) || svc.Spec.Ports[0].NodePort != wantNodePort {
		t.Errorf("Service %s ports = %+v, want UDP %d -> %d (node port %d)", name, svc.Spec.Ports, port, port, wantNodePort)
	}
}

func TestHelmChartOptions(t *testing.T) {
	values := threeReplicas()
	values["service"] = map[string]any{"type": "LoadBalancer"}
	values["cluster"] = map[string]any{"maxParticipants": 150}
	values["media"] = map[string]any{
		"udpPortBase": 31000,
		"publicIPs":   []any{"198.51.100.4"},
		"service":     map[string]any{"type": "NodePort"},
	}
	values["federation"] = map[string]any{"caSecret": "partner-cas"}
	values["prometheus"] = map[string]any{"scrape": false}
	r := mustRenderChart(t, values)

	if got := r.services[chartFullname].Spec.Type; got != corev1.ServiceTypeLoadBalancer {
		t.Errorf("HTTPS Service type = %q, want LoadBalancer", got)
	}
	sts := r.statefulSets[chartFullname]
	if _, ok := sts.Spec.Template.Annotations["prometheus.io/scrape"]; ok {
		t.Error("scrape annotations with prometheus.scrape false")
	}
	if m, v := volumeAt(t, sts, "/etc/entente/federation-ca"); v == nil || v.Secret == nil || v.Secret.SecretName != "partner-cas" || !m.ReadOnly {
		t.Errorf("/etc/entente/federation-ca = %+v, want the Secret partner-cas read-only", v)
	}
	for i, rep := range r.replicas(t, map[string]map[string]string{chartDBSecret: {"url": chartDatabaseURL}}) {
		if got := rep.env["ENTENTE_CLUSTER_MAX_PARTICIPANTS"]; got != "150" {
			t.Errorf("%s ENTENTE_CLUSTER_MAX_PARTICIPANTS = %q, want 150", rep.name, got)
		}
		if rep.cfg.Federation.CAFile != "/etc/entente/federation-ca/ca.crt" {
			t.Errorf("%s federation.ca_file = %q", rep.name, rep.cfg.Federation.CAFile)
		}
		// One address for every replica, each on its own port.
		if got := rep.cfg.Media.PublicIPList(); rep.cfg.Media.UDPPort != 31000+i || !slices.Equal(got, []string{"198.51.100.4"}) {
			t.Errorf("%s media.udp_port %d, public_ips %q; want %d and the one shared address", rep.name, rep.cfg.Media.UDPPort, got, 31000+i)
		}
		checkMediaService(t, r, rep.name, i, 31000+i, corev1.ServiceTypeNodePort)
	}
}

// The chart refuses values with which a node could not run, naming the
// value: its schema (values.schema.json) refuses misspelt and mistyped
// values, its templates what only makes sense together.
func TestHelmChartRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"three replicas without NATS", chartValues(map[string]any{
			"replicaCount": 3, "database": map[string]any{"existingSecret": chartDBSecret},
		}), "replicaCount 3 needs nats.url: the replicas of one node exchange signals and hand conferences over through NATS with JetStream"},
		{"three replicas without PostgreSQL", chartValues(map[string]any{
			"replicaCount": 3, "nats": map[string]any{"url": chartNATSURL},
		}), "replicaCount 3 needs database.existingSecret"},
		{"no node name", chartValues(map[string]any{"node": map[string]any{"name": ""}}), "node.name is required"},
		{"plain HTTP", chartValues(map[string]any{"node": map[string]any{"publicURL": "http://visio.interior.example"}}),
			`node.publicURL must be the node's https:// URL, got "http://visio.interior.example"`},
		{"no certificate", chartValues(map[string]any{"tls": map[string]any{"existingSecret": ""}}), "tls.existingSecret is required"},
		{"zero replicas", chartValues(map[string]any{"replicaCount": 0}), "at '/replicaCount': minimum: got 0, want 1"},
		{"misspelt value", chartValues(map[string]any{"replicas": 3}), "additional properties 'replicas' not allowed"},
		{"misspelt nested value", chartValues(map[string]any{"nats": map[string]any{"URL": chartNATSURL}}), "at '/nats': additional properties 'URL' not allowed"},
		{"two addresses for three replicas", func() map[string]any {
			v := threeReplicas()
			v["media"] = map[string]any{"publicIPs": []any{"203.0.113.10", "203.0.113.11"}}
			return v
		}(), "media.publicIPs has 2 addresses for 3 replicas"},
		{"node port out of range", chartValues(map[string]any{"media": map[string]any{"service": map[string]any{"type": "NodePort"}}}),
			"the replicas' ports 40000 to 40000 must lie in the node port range 30000-32767"},
		{"unknown media service type", chartValues(map[string]any{"media": map[string]any{"service": map[string]any{"type": "ClusterIP"}}}),
			`media.service.type must be LoadBalancer or NodePort, got "ClusterIP"`},
		{"grace period shorter than the drain", chartValues(map[string]any{"terminationGracePeriodSeconds": 15}),
			"terminationGracePeriodSeconds 15 must be longer than http.shutdownTimeoutSeconds 15"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renderChart(t, tc.values)
			if err == nil {
				t.Fatalf("rendered %q, want the error %q", r.objects, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// "helm lint --strict": the chart's metadata, values and rendered objects
// pass Helm's own checks, as they would before a chart is published.
func TestHelmChartLints(t *testing.T) {
	for name, values := range map[string]map[string]any{
		"one replica":    chartValues(nil),
		"three replicas": threeReplicas(),
	} {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = chartNamespace
			res := lint.Run([]string{chartDir}, values)
			for _, m := range res.Messages {
				t.Log(m)
			}
			if action.HasWarningsOrErrors(res) {
				t.Errorf("helm lint --strict: %v", res.Errors)
			}
		})
	}
}

package entente_test

// What the compose file and the Helm chart have in common: both configure
// nodes through ENTENTE_ variables, which must be settings of the node and
// load into a valid configuration.

import (
	"slices"
	"strings"
	"testing"

	"github.com/entente-org/entente/internal/config"
)

// clusterSettings are the settings of a node with several replicas
// (cluster.* in the configuration) that the deployment files set. The one
// place that tolerates them while the configuration reference does not list
// them yet: as soon as it lists any cluster setting, every name is checked
// against the reference alone, and the loader checks their values.
var clusterSettings = []string{
	"ENTENTE_CLUSTER_NATS_URL",
	"ENTENTE_CLUSTER_REPLICA_ID",
	"ENTENTE_CLUSTER_INTERNAL_URL",
	"ENTENTE_CLUSTER_MAX_PARTICIPANTS",
}

// notSettings are ENTENTE_ variables the node reads that are not settings.
var notSettings = []string{
	"ENTENTE_CONFIG", // the configuration file's path
}

// checkSettingNames fails for every ENTENTE_ variable of env that is not a
// setting of the node: the loader ignores unknown variables, so a misspelt
// one would only show as a setting silently left at its default.
func checkSettingNames(t *testing.T, where string, env map[string]string) {
	t.Helper()
	reference := config.Reference()
	referenceHasCluster := strings.Contains(reference, "`ENTENTE_CLUSTER_")
	for k := range env {
		switch {
		case !strings.HasPrefix(k, config.EnvPrefix), slices.Contains(notSettings, k):
		case strings.Contains(reference, "`"+k+"`"):
		case !referenceHasCluster && slices.Contains(clusterSettings, k):
			t.Logf("%s: %s is not in the configuration reference yet; accepted as one of the cluster settings", where, k)
		default:
			t.Errorf("%s: %s is not a setting of the node", where, k)
		}
	}
}

// loadNodeConfig runs env, and the configuration file at path unless it is
// empty, through the node's own loader, as the node would at start.
func loadNodeConfig(t *testing.T, where, path string, env map[string]string) config.Config {
	t.Helper()
	checkSettingNames(t, where, env)
	var environ []string
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Load(path, environ)
	if err != nil {
		t.Fatalf("%s: node configuration: %v", where, err)
	}
	return cfg
}

{{/*
The name of every object of the release: the release name, followed by the
chart name unless the release name already holds it.
*/}}
{{- define "entente.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "entente.internalService" -}}
{{- printf "%s-internal" (include "entente.fullname" .) -}}
{{- end -}}

{{- define "entente.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "entente.labels" -}}
{{ include "entente.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
entente.validate stops the rendering with a message naming the value that is
wrong, so that a node that could not run is never installed. Every template
includes it first: whichever renders first refuses the values, with the same
message.
*/}}
{{- define "entente.validate" -}}
{{- if not .Values.node.name -}}
{{- fail "node.name is required: the institution's display name" -}}
{{- end -}}
{{- if not (hasPrefix "https://" .Values.node.publicURL) -}}
{{- fail (printf "node.publicURL must be the node's https:// URL, got %q" .Values.node.publicURL) -}}
{{- end -}}
{{- if not .Values.tls.existingSecret -}}
{{- fail "tls.existingSecret is required: a kubernetes.io/tls Secret with the certificate of node.publicURL's host, which peers verify" -}}
{{- end -}}
{{- $replicas := int .Values.replicaCount -}}
{{- if lt $replicas 1 -}}
{{- fail (printf "replicaCount must be at least 1, got %d" $replicas) -}}
{{- end -}}
{{- if gt $replicas 1 -}}
{{- if not .Values.nats.url -}}
{{- fail (printf "replicaCount %d needs nats.url: the replicas of one node exchange signals and hand conferences over through NATS with JetStream" $replicas) -}}
{{- end -}}
{{- if not .Values.database.existingSecret -}}
{{- fail (printf "replicaCount %d needs database.existingSecret: the replicas of one node share one PostgreSQL database (and keep the node's keys in it)" $replicas) -}}
{{- end -}}
{{- end -}}
{{- $ips := len .Values.media.publicIPs -}}
{{- if and (gt $ips 1) (ne $ips $replicas) -}}
{{- fail (printf "media.publicIPs has %d addresses for %d replicas: give none, one shared by all, or one per replica" $ips $replicas) -}}
{{- end -}}
{{- $last := add (int .Values.media.udpPortBase) $replicas -1 -}}
{{- if or (lt (int .Values.media.udpPortBase) 1024) (gt $last 65535) -}}
{{- fail (printf "media.udpPortBase %d: the replicas' ports %d to %d must lie between 1024 and 65535" (int .Values.media.udpPortBase) (int .Values.media.udpPortBase) $last) -}}
{{- end -}}
{{- if and (eq .Values.media.service.type "NodePort") (or (lt (int .Values.media.udpPortBase) 30000) (gt $last 32767)) -}}
{{- fail (printf "media.service.type NodePort: the replicas' ports %d to %d must lie in the node port range 30000-32767 (set media.udpPortBase)" (int .Values.media.udpPortBase) $last) -}}
{{- end -}}
{{- if not (has .Values.media.service.type (list "LoadBalancer" "NodePort")) -}}
{{- fail (printf "media.service.type must be LoadBalancer or NodePort, got %q" .Values.media.service.type) -}}
{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.http.shutdownTimeoutSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds %d must be longer than http.shutdownTimeoutSeconds %d, or a replica is killed before it has drained" (int .Values.terminationGracePeriodSeconds) (int .Values.http.shutdownTimeoutSeconds)) -}}
{{- end -}}
{{- end -}}

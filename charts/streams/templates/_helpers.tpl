{{/* Names, labels and the pieces every role's pod shares. */}}

{{- define "streams.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; component names add a suffix of at most 19 characters, so it stops at 40. */}}
{{- define "streams.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streams.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component: (dict "ctx" $ "component" "bookie"). */}}
{{- define "streams.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streams.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streams.labels" -}}
{{ include "streams.selectorLabels" . }}
helm.sh/chart: {{ include "streams.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: streams
{{- end }}

{{- define "streams.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "streams.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streams.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "streams.zookeeper.fullname" -}}
{{- printf "%s-zookeeper" (include "streams.fullname" .) }}
{{- end }}

{{- define "streams.zookeeper.headless" -}}
{{- printf "%s-zookeeper-headless" (include "streams.fullname" .) }}
{{- end }}

{{/* The roles' ZooKeeper connection string, host:port[,host:port]/root: every server of the chart's ensemble, or
     the external one. */}}
{{- define "streams.zookeeper.connect" -}}
{{- $hosts := list }}
{{- if .Values.zookeeper.enabled }}
{{- $headless := include "streams.zookeeper.headless" . }}
{{- $zk := include "streams.zookeeper.fullname" . }}
{{- range $i := until (int .Values.zookeeper.replicas) }}
{{- $hosts = append $hosts (printf "%s-%d.%s.%s.svc.%s:2181" $zk $i $headless $.Release.Namespace $.Values.clusterDomain) }}
{{- end }}
{{- else }}
{{- $hosts = append $hosts (required "zookeeper.external.connect is required when zookeeper.enabled is false: give host:port[,host:port] of your ZooKeeper ensemble" .Values.zookeeper.external.connect) }}
{{- end }}
{{- $root := .Values.zookeeper.root | default "" }}
{{- if and $root (not (hasPrefix "/" $root)) }}
{{- fail (printf "zookeeper.root must start with / (is %q)" $root) }}
{{- end }}
{{- printf "%s%s" (join "," $hosts) $root }}
{{- end }}

{{/* SegmentStore:Tier2, the URI the segment stores open (tier2/README.md). */}}
{{- define "streams.tier2.uri" -}}
{{- $t := .Values.tier2 }}
{{- if eq $t.type "none" }}
{{- "none" }}
{{- else if eq $t.type "s3" }}
{{- $bucket := required "tier2.s3.bucket is required when tier2.type is s3" $t.s3.bucket }}
{{- $query := list }}
{{- if $t.s3.endpoint }}{{ $query = append $query (printf "endpoint=%s" $t.s3.endpoint) }}{{ end }}
{{- if $t.s3.region }}{{ $query = append $query (printf "region=%s" $t.s3.region) }}{{ end }}
{{- if kindIs "bool" $t.s3.pathStyle }}{{ $query = append $query (printf "pathStyle=%t" $t.s3.pathStyle) }}{{ end }}
{{- $prefix := $t.s3.prefix | default "" | trimAll "/" }}
{{- printf "s3://%s%s" $bucket (ternary (printf "/%s" $prefix) "" (ne $prefix "")) }}
{{- if $query }}?{{ join "&" $query }}{{ end }}
{{- else if eq $t.type "filesystem" }}
{{- printf "file://%s" $t.filesystem.mountPath }}
{{- else }}
{{- fail (printf "tier2.type must be none, s3 or filesystem (is %q)" $t.type) }}
{{- end }}
{{- end }}

{{/* The Secret holding the S3 access keys, or "" when the SDK's default chain provides them. */}}
{{- define "streams.tier2.s3Secret" -}}
{{- if .Values.tier2.s3.existingSecret }}
{{- .Values.tier2.s3.existingSecret }}
{{- else if or .Values.tier2.s3.accessKeyId .Values.tier2.s3.secretAccessKey }}
{{- printf "%s-tier2-s3" (include "streams.fullname" .) }}
{{- end }}
{{- end }}

{{/* Pod anti-affinity for a component: (dict "ctx" $ "component" "bookie" "key" VALUES-KEY "mode" "soft"), or the user's affinity. */}}
{{- define "streams.affinity" -}}
{{- if .affinity }}
{{- toYaml .affinity }}
{{- else if eq .mode "hard" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "streams.selectorLabels" . | nindent 10 }}
{{- else if eq .mode "soft" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "streams.selectorLabels" . | nindent 12 }}
{{- else if ne .mode "none" }}
{{- fail (printf "%s.antiAffinity must be soft, hard or none (is %q)" (default .component .key) .mode) }}
{{- end }}
{{- end }}

{{/* Scheduling, service account and security of a Streams role's pod spec: (dict "ctx" $ "component" C "key" VALUES-KEY "role" VALUES). */}}
{{- define "streams.podSpec" -}}
serviceAccountName: {{ include "streams.serviceAccountName" .ctx }}
automountServiceAccountToken: false
enableServiceLinks: false
terminationGracePeriodSeconds: {{ .role.terminationGracePeriodSeconds | int }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := include "streams.affinity" (dict "ctx" .ctx "component" .component "key" .key "mode" .role.antiAffinity "affinity" .role.affinity) | trim }}
{{- with $affinity }}
affinity:
  {{- . | nindent 2 }}
{{- end }}
{{- with .role.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .role.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Environment every Streams role takes (STREAMS__SECTION__KEY): bind address, advertised address, ports, ZooKeeper.
     (dict "ctx" $ "role" VALUES "advertised" HOST) */}}
{{- define "streams.roleEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: STREAMS__SERVER__HOST
  value: 0.0.0.0
- name: STREAMS__SERVER__ADVERTISEDHOST
  value: {{ .advertised | quote }}
- name: STREAMS__SERVER__GRPCPORT
  value: {{ .role.ports.grpc | int | quote }}
{{- if .role.ports.data }}
- name: STREAMS__SERVER__DATAPORT
  value: {{ .role.ports.data | int | quote }}
{{- end }}
- name: STREAMS__SERVER__METRICSPORT
  value: {{ .role.ports.metrics | int | quote }}
- name: STREAMS__ZOOKEEPER__CONNECT
  value: {{ include "streams.zookeeper.connect" .ctx | quote }}
- name: STREAMS__ZOOKEEPER__SESSIONTIMEOUT
  value: {{ .ctx.Values.zookeeper.sessionTimeout | quote }}
{{- end }}

{{/* The role's container ports. */}}
{{- define "streams.containerPorts" -}}
- name: grpc
  containerPort: {{ .ports.grpc | int }}
{{- if .ports.data }}
- name: data
  containerPort: {{ .ports.data | int }}
{{- end }}
- name: metrics
  containerPort: {{ .ports.metrics | int }}
{{- end }}

{{/* Probes of a Streams role: startup and liveness on /healthz, readiness from the gRPC health service ("" is the
     whole server: ready when every readiness check of the role passes). (dict "ctx" $ "role" VALUES) */}}
{{- define "streams.probes" -}}
{{- $p := .ctx.Values.probes -}}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: {{ $p.startup.periodSeconds | int }}
  failureThreshold: {{ $p.startup.failureThreshold | int }}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: {{ $p.liveness.periodSeconds | int }}
  timeoutSeconds: {{ $p.liveness.timeoutSeconds | int }}
  failureThreshold: {{ $p.liveness.failureThreshold | int }}
readinessProbe:
  grpc:
    port: {{ .role.ports.grpc | int }}
  periodSeconds: {{ $p.readiness.periodSeconds | int }}
  timeoutSeconds: {{ $p.readiness.timeoutSeconds | int }}
  failureThreshold: {{ $p.readiness.failureThreshold | int }}
{{- end }}

{{/* The container's arguments: the role, its log level and the settings file of the chart's ConfigMap. */}}
{{- define "streams.args" -}}
- {{ .command }}
- --log-level
- {{ .ctx.Values.logLevel }}
- --config
- /etc/streams/{{ .command }}.json
{{- end }}

{{/* A PodDisruptionBudget's limits: exactly one of minAvailable and maxUnavailable. */}}
{{- define "streams.pdbSpec" -}}
{{- $pdb := .pdb }}
{{- if and (hasKey $pdb "minAvailable") (hasKey $pdb "maxUnavailable") }}
{{- fail (printf "%s.podDisruptionBudget takes minAvailable or maxUnavailable, not both (set the other to null)" .component) }}
{{- end }}
{{- if hasKey $pdb "minAvailable" }}
minAvailable: {{ $pdb.minAvailable }}
{{- else if hasKey $pdb "maxUnavailable" }}
maxUnavailable: {{ $pdb.maxUnavailable }}
{{- else }}
maxUnavailable: 1
{{- end }}
{{- end }}

{{/* Checks across values that no single template owns; fails with a message naming what to change. */}}
{{- define "streams.validate" -}}
{{- $l := .Values.ledger }}
{{- if not (and (ge (int $l.ensembleSize) (int $l.writeQuorum)) (ge (int $l.writeQuorum) (int $l.ackQuorum)) (ge (int $l.ackQuorum) 1)) }}
{{- fail (printf "ledger: ensembleSize (%d) >= writeQuorum (%d) >= ackQuorum (%d) >= 1 must hold" (int $l.ensembleSize) (int $l.writeQuorum) (int $l.ackQuorum)) }}
{{- end }}
{{- if lt (int .Values.bookie.replicas) (int $l.ensembleSize) }}
{{- fail (printf "bookie.replicas (%d) must be at least ledger.ensembleSize (%d): every ledger is striped over that many bookies" (int .Values.bookie.replicas) (int $l.ensembleSize)) }}
{{- end }}
{{- if and .Values.zookeeper.enabled (lt (int .Values.zookeeper.replicas) 1) }}
{{- fail "zookeeper.replicas must be at least 1 (an odd number: 3 or 5 for a quorum that survives failures)" }}
{{- end }}
{{- if eq .Values.tier2.type "filesystem" }}
{{- $fs := .Values.tier2.filesystem }}
{{- if not (or $fs.existingClaim (and $fs.nfs.server $fs.nfs.path)) }}
{{- fail "tier2.type filesystem needs tier2.filesystem.existingClaim (a ReadWriteMany claim) or tier2.filesystem.nfs.server and .path" }}
{{- end }}
{{- if not (hasPrefix "/" $fs.mountPath) }}
{{- fail (printf "tier2.filesystem.mountPath must be an absolute path (is %q)" $fs.mountPath) }}
{{- end }}
{{- end }}
{{- if eq .Values.tier2.type "s3" }}
{{- if and (not .Values.tier2.s3.existingSecret) (ne (empty .Values.tier2.s3.accessKeyId) (empty .Values.tier2.s3.secretAccessKey)) }}
{{- fail "tier2.s3.accessKeyId and tier2.s3.secretAccessKey go together (or name a Secret in tier2.s3.existingSecret)" }}
{{- end }}
{{- end }}
{{- $_ := include "streams.tier2.uri" . }}
{{- $_ := include "streams.zookeeper.connect" . }}
{{- end }}

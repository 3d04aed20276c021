{{/*
Chart name, truncated to the 63 characters a label value may have.
*/}}
{{- define "slaflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: RELEASE-CHART, or RELEASE when it already contains the chart name.
*/}}
{{- define "slaflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "slaflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource, without app.kubernetes.io/component.
*/}}
{{- define "slaflow.commonLabels" -}}
helm.sh/chart: {{ include "slaflow.chart" . }}
app.kubernetes.io/name: {{ include "slaflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: slaflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of the service's resources.
*/}}
{{- define "slaflow.labels" -}}
{{ include "slaflow.commonLabels" . }}
app.kubernetes.io/component: processor
{{- end }}

{{/*
Labels that select the service's pods (stable across upgrades).
*/}}
{{- define "slaflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slaflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: processor
{{- end }}

{{/*
Service account of the pods.
*/}}
{{- define "slaflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "slaflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: registry/repository, then @digest or :tag.
*/}}
{{- define "slaflow.image" -}}
{{- $repo := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repo = printf "%s/%s" .Values.image.registry .Values.image.repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
Where the configuration file is mounted, and its path.
*/}}
{{- define "slaflow.configDir" -}}/etc/slaflow{{- end }}
{{- define "slaflow.configFile" -}}{{ include "slaflow.configDir" . }}/slaflow.toml{{- end }}
{{- define "slaflow.kafkaCaDir" -}}/etc/slaflow/kafka-ca{{- end }}

{{/*
Checks the values that must agree with each other; fails the render with a message naming
the values otherwise.
*/}}
{{- define "slaflow.validate" -}}
{{- $partitions := int .Values.kafka.partitions }}
{{- if lt $partitions 1 }}
{{- fail (printf "kafka.partitions must be at least 1 (the partition count of every topic), found %v" .Values.kafka.partitions) }}
{{- end }}
{{- if not .Values.kafka.topics }}
{{- fail "kafka.topics is empty: slaflow run needs at least one topic to consume" }}
{{- end }}
{{- if .Values.keda.enabled }}
{{- if gt (int .Values.keda.maxReplicaCount) $partitions }}
{{- fail (printf "keda.maxReplicaCount (%d) is greater than kafka.partitions (%d): slaflow runs one worker per partition number, so replicas beyond the partition count would be idle and never ready" (int .Values.keda.maxReplicaCount) $partitions) }}
{{- end }}
{{- if lt (int .Values.keda.minReplicaCount) 1 }}
{{- fail (printf "keda.minReplicaCount (%d) must be at least 1: the HTTP endpoints and the metrics need a running pod" (int .Values.keda.minReplicaCount)) }}
{{- end }}
{{- if gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount) }}
{{- fail (printf "keda.minReplicaCount (%d) is greater than keda.maxReplicaCount (%d)" (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- end }}
{{- else if gt (int .Values.replicaCount) $partitions }}
{{- fail (printf "replicaCount (%d) is greater than kafka.partitions (%d): slaflow runs one worker per partition number, so replicas beyond the partition count would be idle and never ready" (int .Values.replicaCount) $partitions) }}
{{- end }}
{{- if le (int (include "slaflow.terminationGracePeriodSeconds" .)) (int .Values.server.drainTimeoutSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%s) must be longer than server.drainTimeoutSeconds (%d), or the pod is killed while it drains" (include "slaflow.terminationGracePeriodSeconds" .) (int .Values.server.drainTimeoutSeconds)) }}
{{- end }}
{{- if and (eq .Values.server.auth "tokens") (not .Values.apiTokens.existingSecret) }}
{{- fail "apiTokens.existingSecret is empty: with server.auth tokens (the default) the ingest, report and close endpoints take bearer tokens from a Secret; name it, or set server.auth: none to serve them to anyone who reaches the port" }}
{{- end }}
{{- range $section := list "server" "store" "postgres" "sqlite" "kafka" }}
{{- if hasKey ($.Values.config | default dict) $section }}
{{- fail (printf "config.%s: this section is rendered from the chart's own values (containerPort, server, postgres, kafka), so it may not be set in config" $section) }}
{{- end }}
{{- end }}
{{- if not (has .Values.workload.kind (list "Deployment" "StatefulSet")) }}
{{- fail (printf "workload.kind must be Deployment or StatefulSet, found %q" (toString .Values.workload.kind)) }}
{{- end }}
{{- if hasKey (.Values.kafka.properties | default dict) "group.instance.id" }}
{{- fail "kafka.properties sets group.instance.id: every pod would have the same id, and the broker fences all members but the last to join (FENCED_INSTANCE_ID). kafka.staticMembership gives each pod its own name as its id" }}
{{- end }}
{{- $static := .Values.kafka.staticMembership }}
{{- if not (or (kindIs "bool" $static) (eq (toString $static) "auto")) }}
{{- fail (printf "kafka.staticMembership must be true, false or auto, found %q" (toString $static)) }}
{{- end }}
{{- if include "slaflow.staticMembership" . }}
{{- range .Values.extraEnv }}
{{- if eq (toString .name) "SLAFLOW_KAFKA_GROUP_INSTANCE_ID" }}
{{- fail (printf "extraEnv sets SLAFLOW_KAFKA_GROUP_INSTANCE_ID, which static membership (kafka.staticMembership %v with a %s) already sets to the pod's name; set kafka.staticMembership to false to set it yourself" $static $.Values.workload.kind) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.kafka.sasl.mechanism (not .Values.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.mechanism is set but kafka.sasl.existingSecret is empty: name the Secret with the SASL username and password" }}
{{- end }}
{{- end }}

{{/*
"true" when the pods are static group members (each pod's name its group.instance.id), else
empty: kafka.staticMembership true or false as it says; auto (the default) on for a
StatefulSet, whose replacement pods keep their names, and off for a Deployment, whose
replacement pods get new names (with static membership every step of its rolling update
would wait for the replaced pod's session.timeout.ms).
*/}}
{{- define "slaflow.staticMembership" -}}
{{- $static := .Values.kafka.staticMembership }}
{{- if kindIs "bool" $static }}
{{- if $static }}true{{ end }}
{{- else if and (eq (toString $static) "auto") (eq .Values.workload.kind "StatefulSet") }}true
{{- end }}
{{- end }}

{{/*
Grace period: the value, or the drain timeout plus 15 seconds.
*/}}
{{- define "slaflow.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (int .Values.server.drainTimeoutSeconds) 15 }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
librdkafka security.protocol from the SASL and TLS values.
*/}}
{{- define "slaflow.kafka.securityProtocol" -}}
{{- if and .Values.kafka.sasl.mechanism .Values.kafka.tls.enabled }}SASL_SSL
{{- else if .Values.kafka.sasl.mechanism }}SASL_PLAINTEXT
{{- else if .Values.kafka.tls.enabled }}SSL
{{- else }}PLAINTEXT
{{- end }}
{{- end }}

{{/*
The whole configuration file (TOML): the engines' sections from .Values.config, and the
sections the deployment depends on (server, store, postgres, kafka) from the chart's values.
*/}}
{{- define "slaflow.configToml" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $_ := set $cfg "server" (dict
      "listen" (printf "0.0.0.0:%d" (int .Values.containerPort))
      "auth" .Values.server.auth
      "max_body_bytes" (int64 .Values.server.maxBodyBytes)
      "max_trace_body_bytes" (int64 .Values.server.maxTraceBodyBytes)
      "open_trace_paths" .Values.server.openTracePaths
      "drain_timeout" (printf "%ds" (int .Values.server.drainTimeoutSeconds))
      "batch_max_bodies" (int64 .Values.server.batchMaxBodies)) }}
{{- $_ = set $cfg "store" (dict "kind" "postgres") }}
{{- $_ = set $cfg "postgres" (dict "url" .Values.postgres.url) }}
{{- $props := dict "bootstrap.servers" .Values.kafka.bootstrapServers "security.protocol" (include "slaflow.kafka.securityProtocol" .) }}
{{- with .Values.kafka.sasl.mechanism }}
{{- $_ = set $props "sasl.mechanism" . }}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
{{- $_ = set $props "ssl.ca.location" (printf "%s/%s" (include "slaflow.kafkaCaDir" .) .Values.kafka.tls.caSecretKey) }}
{{- end }}
{{- $props = merge (deepCopy (.Values.kafka.properties | default dict)) $props }}
{{- $topics := list }}
{{- range .Values.kafka.topics }}
{{- $topics = append $topics (dict "name" .name "format" .format) }}
{{- end }}
{{- $kafka := merge (dict "group_id" .Values.kafka.groupId "topics" $topics "properties" $props) (deepCopy (.Values.kafka.tuning | default dict)) }}
{{- $_ = set $cfg "kafka" $kafka }}
{{- printf "# slaflow configuration rendered by the Helm chart %s (release %s).\n# Check a file with: slaflow check-config FILE\n" (include "slaflow.chart" .) .Release.Name }}
{{- include "slaflow.toml.table" (dict "path" (list) "table" $cfg) }}
{{- with .Values.extraConfig }}
{{ printf "\n# extraConfig\n%s" . }}
{{- end }}
{{- end }}

{{/*
A TOML writer for values maps. Helm reads numbers in values as floats, so whole numbers are
written as integers (slaflow's integer keys reject 1000.0; its float keys accept 1000). In a
table, plain keys come first, then sub-tables, then arrays of tables (a list of maps). Keys
with null values are left out.
*/}}
{{- define "slaflow.toml.table" -}}
{{- $path := .path }}
{{- $table := .table }}
{{- range $key := keys $table | sortAlpha }}
{{- $value := get $table $key }}
{{- if not (or (kindIs "invalid" $value) (kindIs "map" $value) (include "slaflow.toml.isTableArray" $value)) }}
{{ include "slaflow.toml.key" $key }} = {{ include "slaflow.toml.value" $value }}
{{- end }}
{{- end }}
{{- range $key := keys $table | sortAlpha }}
{{- $value := get $table $key }}
{{- $sub := append $path (include "slaflow.toml.key" $key) }}
{{- if kindIs "map" $value }}

[{{ join "." $sub }}]
{{- include "slaflow.toml.table" (dict "path" $sub "table" $value) }}
{{- else if include "slaflow.toml.isTableArray" $value }}
{{- range $element := $value }}

[[{{ join "." $sub }}]]
{{- include "slaflow.toml.table" (dict "path" $sub "table" $element) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* "true" for a non-empty list whose elements are all maps (a TOML array of tables). */}}
{{- define "slaflow.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) }}
{{- $all := true }}
{{- range . }}
{{- if not (kindIs "map" .) }}
{{- $all = false }}
{{- end }}
{{- end }}
{{- if $all }}true{{ end }}
{{- end }}
{{- end }}

{{/* A key: bare when TOML allows it, else a quoted string. */}}
{{- define "slaflow.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{/* A value. JSON string escapes are valid TOML basic-string escapes. */}}
{{- define "slaflow.toml.value" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "bool" . }}{{ . }}
{{- else if kindIs "float64" . }}
{{- if and (lt . 1e15) (gt . -1e15) (eq . (float64 (int64 .))) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "int32" .) (kindIs "uint64" .) }}{{ . }}
{{- else if kindIs "slice" . }}[{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ include "slaflow.toml.value" $e }}{{ end }}]
{{- else if kindIs "map" . }}{ {{- $first := true }}{{ range $k := keys . | sortAlpha }}{{ $v := get $ $k }}{{ if not (kindIs "invalid" $v) }}{{ if not $first }},{{ end }} {{ include "slaflow.toml.key" $k }} = {{ include "slaflow.toml.value" $v }}{{ $first = false }}{{ end }}{{ end }} }
{{- else }}{{ fail (printf "config: %v (%s) cannot be written as TOML" . (kindOf .)) }}
{{- end }}
{{- end }}

{{/*
Label matchers that select this release's series in the alert expressions.
*/}}
{{- define "slaflow.promSelector" -}}
{{- .Values.prometheusRule.selector | default (printf "namespace=%q, job=%q" .Release.Namespace (include "slaflow.fullname" .)) }}
{{- end }}

{{/*
The pod template of the workload (Deployment or StatefulSet, workload.kind): metadata and
spec, at indentation 0. Both kinds render exactly this.
*/}}
{{- define "slaflow.podTemplate" -}}
metadata:
  annotations:
    # A change of the configuration changes this hash and so rolls the pods.
    checksum/config: {{ include "slaflow.configToml" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  labels:
    {{- include "slaflow.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "slaflow.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # Longer than [server] drain_timeout: SIGTERM lets every partition worker write its batch.
  terminationGracePeriodSeconds: {{ include "slaflow.terminationGracePeriodSeconds" . }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: slaflow
      image: {{ include "slaflow.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["run", "--config", {{ include "slaflow.configFile" . | quote }}]
      ports:
        - name: http
          containerPort: {{ .Values.containerPort }}
          protocol: TCP
      env:
        {{- include "slaflow.env" . | nindent 8 }}
        {{- if eq .Values.server.auth "tokens" }}
        {{- with .Values.apiTokens.existingSecret }}
        - name: SLAFLOW_API_TOKENS
          valueFrom:
            secretKeyRef:
              name: {{ . }}
              key: {{ $.Values.apiTokens.existingSecretKey }}
        {{- end }}
        {{- end }}
        {{- if include "slaflow.staticMembership" . }}
        # Static membership (KIP-345): the pod's name is its group.instance.id, so a
        # restarted container (or a StatefulSet's replacement pod) takes its partitions back
        # without a rebalance.
        - name: SLAFLOW_KAFKA_GROUP_INSTANCE_ID
          valueFrom:
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if .Values.startupProbe.enabled }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: {{ .Values.startupProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.startupProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.startupProbe.failureThreshold }}
      {{- end }}
      {{- if .Values.livenessProbe.enabled }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        initialDelaySeconds: {{ .Values.livenessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.livenessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.livenessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.livenessProbe.failureThreshold }}
      {{- end }}
      {{- if .Values.readinessProbe.enabled }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        initialDelaySeconds: {{ .Values.readinessProbe.initialDelaySeconds }}
        periodSeconds: {{ .Values.readinessProbe.periodSeconds }}
        timeoutSeconds: {{ .Values.readinessProbe.timeoutSeconds }}
        failureThreshold: {{ .Values.readinessProbe.failureThreshold }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: {{ include "slaflow.configDir" . }}
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
        - name: kafka-ca
          mountPath: {{ include "slaflow.kafkaCaDir" . }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "slaflow.fullname" . }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret }}
    - name: kafka-ca
      secret:
        secretName: {{ .Values.kafka.tls.caSecret }}
        items:
          - key: {{ .Values.kafka.tls.caSecretKey }}
            path: {{ .Values.kafka.tls.caSecretKey }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    - {{ toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" (include "slaflow.selectorLabels" $ | fromYaml)))) | nindent 6 | trim }}
    {{- end }}
  {{- end }}
{{- end }}

{{/*
Environment of the slaflow container (service and migration Job): secrets by reference.
*/}}
{{- define "slaflow.env" -}}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- with .Values.postgres.existingSecret }}
- name: SLAFLOW_POSTGRES_URL
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.postgres.existingSecretKey }}
{{- end }}
{{- with .Values.kafka.sasl.existingSecret }}
- name: SLAFLOW_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kafka.sasl.usernameKey }}
- name: SLAFLOW_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

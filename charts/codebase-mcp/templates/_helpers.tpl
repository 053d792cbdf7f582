{{/*
Names, labels, images and the few decisions shared by several templates.
*/}}

{{- define "codebase-mcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: "<release>-codebase-mcp", or the release name when it contains it. */}}
{{- define "codebase-mcp.fullname" -}}
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

{{- define "codebase-mcp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call with (dict "ctx" $ "component" "server"). */}}
{{- define "codebase-mcp.labels" -}}
helm.sh/chart: {{ include "codebase-mcp.chart" .ctx }}
{{ include "codebase-mcp.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: codebase-mcp
{{- end }}

{{- define "codebase-mcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codebase-mcp.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* An image reference. Call with (dict "ctx" $ "repository" "codebase-mcp-server"). */}}
{{- define "codebase-mcp.image" -}}
{{- $registry := .ctx.Values.image.registry | trimSuffix "/" }}
{{- $tag := .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- /* A digest is joined with '@', a tag (possibly tag@digest) with ':'. */}}
{{- $sep := ternary "@" ":" (hasPrefix "sha256:" $tag) }}
{{- if $registry }}
{{- printf "%s/%s%s%s" $registry .repository $sep $tag }}
{{- else }}
{{- printf "%s%s%s" .repository $sep $tag }}
{{- end }}
{{- end }}

{{- define "codebase-mcp.serviceAccountName" -}}
{{- printf "%s-%s" (include "codebase-mcp.fullname" .ctx) .component }}
{{- end }}

{{/* The Secret and key holding DATABASE_URL: the bundled PostgreSQL's, one made from database.url,
or the existing one. */}}
{{- define "codebase-mcp.databaseSecretName" -}}
{{- if .Values.postgresql.enabled }}
{{- printf "%s-postgresql" (include "codebase-mcp.fullname" .) }}
{{- else if .Values.database.url }}
{{- printf "%s-database" (include "codebase-mcp.fullname" .) }}
{{- else }}
{{- required "database.existingSecret, database.url or postgresql.enabled is required" .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{- define "codebase-mcp.databaseSecretKey" -}}
{{- if or .Values.postgresql.enabled .Values.database.url }}url{{ else }}{{ .Values.database.existingSecretKey }}{{ end }}
{{- end }}

{{- define "codebase-mcp.authSecretName" -}}
{{- .Values.server.auth.existingSecret | default (printf "%s-auth" (include "codebase-mcp.fullname" .)) }}
{{- end }}

{{- define "codebase-mcp.authSecretKey" -}}
{{- if .Values.server.auth.existingSecret }}{{ .Values.server.auth.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* "true" when the server and operator pods migrate the schema themselves (see values.yaml). */}}
{{- define "codebase-mcp.migrateInPods" -}}
{{- if or .Values.postgresql.enabled (eq .Values.migrations.mode "initContainer") }}true{{ end }}
{{- end }}

{{/* DATABASE_URL from its Secret. */}}
{{- define "codebase-mcp.databaseUrlEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "codebase-mcp.databaseSecretName" . }}
      key: {{ include "codebase-mcp.databaseSecretKey" . }}
{{- end }}

{{/* Init containers of the server and operator pods: with the bundled PostgreSQL, wait until it
accepts connections; when pods migrate, run the migration with the pod's own image.
Call with (dict "ctx" $ "repository" "codebase-mcp-server"). */}}
{{- define "codebase-mcp.initContainers" -}}
{{- $ := .ctx }}
{{- if include "codebase-mcp.migrateInPods" $ }}
initContainers:
  {{- if $.Values.postgresql.enabled }}
  - name: wait-for-database
    image: {{ printf "%s:%s" $.Values.postgresql.image.repository $.Values.postgresql.image.tag }}
    imagePullPolicy: {{ $.Values.postgresql.image.pullPolicy }}
    command: ["sh", "-c", "until pg_isready -h \"$HOST\" -p 5432 -t 2; do sleep 2; done"]
    env:
      - name: HOST
        value: {{ include "codebase-mcp.fullname" $ }}-postgresql
      # The pod's uid (10001) has no passwd entry in the database image: without a user name
      # libpq cannot make one up, and pg_isready answers "no attempt" forever.
      - name: PGUSER
        value: {{ $.Values.postgresql.auth.username | quote }}
    securityContext:
      {{- toYaml $.Values.containerSecurityContext | nindent 6 }}
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {memory: 64Mi}
  {{- end }}
  - name: migrate
    image: {{ include "codebase-mcp.image" (dict "ctx" $ "repository" .repository) }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args: ["db", "upgrade"]
    env:
      {{- include "codebase-mcp.databaseUrlEnv" $ | nindent 6 }}
      - name: CODEBASE_MCP_LOG_LEVEL
        value: {{ $.Values.logLevel | quote }}
    securityContext:
      {{- toYaml $.Values.containerSecurityContext | nindent 6 }}
    resources:
      {{- toYaml $.Values.migrations.resources | nindent 6 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
{{- end }}
{{- end }}

{{/* Scheduling fields of a pod spec. Call with a values section (nodeSelector, tolerations, affinity). */}}
{{- define "codebase-mcp.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "codebase-mcp.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Host names the HTTP server answers to besides loopback: its Service's names, then server.allowedHosts. */}}
{{- define "codebase-mcp.allowedHosts" -}}
{{- $svc := printf "%s-server" (include "codebase-mcp.fullname" .) -}}
{{- $ns := .Release.Namespace -}}
{{- concat (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) .Values.server.allowedHosts | join "," -}}
{{- end }}

{{- /* "true" when the IndexingRequest CRD does not exist yet or belongs to this release (lookup
is empty under `helm template`, so rendering without a cluster always includes it). */ -}}
{{- define "codebase-mcp.crdIsOurs" -}}
{{- $existing := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" "indexingrequests.codebase-mcp.dev" }}
{{- if not $existing }}true
{{- else }}
{{- $annotations := dig "metadata" "annotations" (dict) $existing }}
{{- and (eq (get $annotations "meta.helm.sh/release-name") .Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") .Release.Namespace) }}
{{- end }}
{{- end }}

{{/* The IndexingRequest apiVersion (group/storage version), read from the CRD the chart ships, so
that no template hard-codes the version (the operator's is mcp_server/runners/kube_api.py VERSION;
tests/test_crd_version.py keeps the two equal). */}}
{{- define "codebase-mcp.apiVersion" -}}
{{- $crd := .Files.Get "files/indexingrequests.yaml" | fromYaml -}}
{{- range $crd.spec.versions -}}
{{- if .storage -}}{{ $crd.spec.group }}/{{ .name }}{{- end -}}
{{- end -}}
{{- end }}

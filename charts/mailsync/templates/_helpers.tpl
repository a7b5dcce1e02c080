{{/* The chart name, cut to what a label value holds. */}}
{{- define "mailsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The base name of every object: the release name, plus the chart name unless it is in it. */}}
{{- define "mailsync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "mailsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mailsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the controller pods. */}}
{{- define "mailsync.controllerSelector" -}}
app.kubernetes.io/name: {{ include "mailsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The controller's ServiceAccount. */}}
{{- define "mailsync.controllerServiceAccount" -}}
{{- default (printf "%s-controller" (include "mailsync.fullname" .)) .Values.controller.serviceAccount.name }}
{{- end }}

{{/* The ServiceAccount sync Job pods run as (one of this name in every namespace with Jobs). */}}
{{- define "mailsync.workerServiceAccount" -}}
{{- default (printf "%s-worker" (include "mailsync.fullname" .)) .Values.worker.serviceAccount.name }}
{{- end }}

{{/* The name of the leader-election Lease. */}}
{{- define "mailsync.leaseName" -}}
{{- default (printf "%s-controller" (include "mailsync.fullname" .)) .Values.controller.leaderElection.leaseName }}
{{- end }}

{{/* The container image, by digest when one is given, else by tag (default: appVersion). */}}
{{- define "mailsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* True ("true") when the controller watches only the namespaces in watchNamespaces. */}}
{{- define "mailsync.namespaced" -}}
{{- if .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
The namespaces that get the worker ServiceAccount and its RoleBinding, as a JSON list: the
watched namespaces when the controller is namespace-scoped, else worker.namespaces (default: the
release namespace).
*/}}
{{- define "mailsync.workerNamespaces" -}}
{{- $namespaces := list }}
{{- if .Values.watchNamespaces }}
{{- $namespaces = .Values.watchNamespaces }}
{{- else if .Values.worker.namespaces }}
{{- $namespaces = .Values.worker.namespaces }}
{{- else }}
{{- $namespaces = list .Release.Namespace }}
{{- end }}
{{- $namespaces | uniq | toJson }}
{{- end }}

{{/* The restricted Pod Security container settings every container gets. */}}
{{- define "mailsync.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
jobDefaults as JSON, without empty maps and lists (an empty affinity or nodeSelector means
"not set"; numbers, 0 included, are kept).
*/}}
{{- define "mailsync.jobDefaults" -}}
{{- $defaults := dict }}
{{- range $key, $value := .Values.jobDefaults }}
{{- if not (and (or (kindIs "map" $value) (kindIs "slice" $value)) (empty $value)) }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $defaults $key $value }}
{{- end }}
{{- end }}
{{- end }}
{{- $defaults | toJson }}
{{- end }}

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

{{/*
The ServiceAccount sync Job pods run as, and the name of its Role and RoleBinding, the same in
every namespace with Jobs. The controller creates them where they are missing (server-side
apply, field manager mailsync-controller); its default is mailsync-worker.
*/}}
{{- define "mailsync.workerServiceAccount" -}}
{{- .Values.worker.serviceAccount.name | default "mailsync-worker" }}
{{- end }}

{{/*
Labels of the worker ServiceAccount, Role and RoleBinding: without app.kubernetes.io/managed-by,
which the controller sets to mailsync-operator when it applies the same objects.
*/}}
{{- define "mailsync.workerLabels" -}}
{{- omit (include "mailsync.labels" . | fromYaml) "app.kubernetes.io/managed-by" | toYaml }}
app.kubernetes.io/component: worker
{{- end }}

{{/* What a sync pod may do in its namespace (the same rules the controller gives it). */}}
{{- define "mailsync.workerRules" -}}
- apiGroups: ["mailsync.io"]
  resources: ["mailchannels"]
  verbs: ["get"]
- apiGroups: ["mailsync.io"]
  resources: ["mailchannels/status"]
  verbs: ["get", "patch"]
{{- end }}

{{/* What the controller may do in a namespace it watches. */}}
{{- define "mailsync.controllerRules" -}}
- apiGroups: ["mailsync.io"]
  resources: ["mailchannels"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["mailsync.io"]
  resources: ["mailchannels/status"]
  verbs: ["get", "patch"]
- apiGroups: ["mailsync.io"]
  resources: ["mailstores"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Which keys a Secret has (the values are never logged or copied); no get, no writes.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The worker's identity in each namespace, by name only. The controller holds every
# permission the worker Role grants, so creating that Role is no escalation.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  resourceNames: [{{ include "mailsync.workerServiceAccount" . | quote }}]
  verbs: ["create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  resourceNames: [{{ include "mailsync.workerServiceAccount" . | quote }}]
  verbs: ["create", "patch"]
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

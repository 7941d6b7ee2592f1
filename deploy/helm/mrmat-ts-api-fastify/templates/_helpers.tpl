{{- define "mrmat.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mrmat.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mrmat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mrmat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mrmat.labels" -}}
{{ include "mrmat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "mrmat.secretName" -}}
{{- default (include "mrmat.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* Whether the database is PostgreSQL: a URI given, or an existing secret (which must hold one). */}}
{{- define "mrmat.postgres" -}}
{{- if or .Values.existingSecret .Values.database.uri -}}true{{- end -}}
{{- end -}}

{{/* Fail closed: several replicas on one SQLite file in an emptyDir or a volume each would diverge. */}}
{{- define "mrmat.check" -}}
{{- $several := or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) -}}
{{- if and $several (not (include "mrmat.postgres" .)) -}}
{{- fail "several replicas (replicaCount > 1 or autoscaling) need PostgreSQL: set database.uri or existingSecret, or replicaCount=1" -}}
{{- end -}}
{{- if and .Values.database.uri (not (regexMatch "^postgres(ql)?://" .Values.database.uri)) -}}
{{- fail "database.uri must be a postgres:// URI (SQLite is the default when it is empty)" -}}
{{- end -}}
{{- if and .Values.existingSecret (or .Values.database.uri .Values.oidcClientSecrets) -}}
{{- fail "existingSecret holds the database URI and client secrets: leave database.uri and oidcClientSecrets empty" -}}
{{- end -}}
{{- end -}}

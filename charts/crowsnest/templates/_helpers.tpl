{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "crowsnest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: the release name, with the chart name unless it already contains it. */}}
{{- define "crowsnest.fullname" -}}
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

{{/* Labels every resource carries. */}}
{{- define "crowsnest.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "crowsnest.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crowsnest
{{- end }}

{{/* Labels that select the agent's pods (immutable on a DaemonSet: keep them few). */}}
{{- define "crowsnest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crowsnest.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "crowsnest.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crowsnest.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "crowsnest.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where a Secret referenced by remote write is mounted. */}}
{{- define "crowsnest.secretDir" -}}
{{- printf "/etc/crowsnest/secrets/%s" . }}
{{- end }}

{{/* Names of the Secrets the remote-write entries reference, one per line, unique. */}}
{{- define "crowsnest.remoteWriteSecrets" -}}
{{- $names := list }}
{{- range .Values.remoteWrite }}
{{- with .basicAuth }}{{ with .passwordSecret }}{{ $names = append $names .name }}{{ end }}{{ end }}
{{- with .bearerTokenSecret }}{{ $names = append $names .name }}{{ end }}
{{- with .tls }}{{ with .caSecret }}{{ $names = append $names .name }}{{ end }}{{ end }}
{{- end }}
{{- $names | uniq | sortAlpha | join "\n" }}
{{- end }}

{{/* Where the etcd client certificates from an existing Secret are mounted. */}}
{{- define "crowsnest.etcdSecretDir" -}}
/etc/crowsnest/etcd
{{- end }}

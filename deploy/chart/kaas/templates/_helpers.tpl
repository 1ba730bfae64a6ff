{{/*
Helpers of the kaas chart. The generated templates (templates/generated/, written by
`make manifests`) call kaas.labels, kaas.generatedAnnotations and kaas.caBundle.
*/}}

{{- define "kaas.labels" -}}
app.kubernetes.io/part-of: kaas
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels of the PrometheusRule: the chart's and the ones a Prometheus selects rules by. */}}
{{- define "kaas.ruleLabels" -}}
{{ include "kaas.labels" . }}
{{- with .Values.metrics.prometheusRule.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of the dashboards' ConfigMaps: the chart's and the ones Grafana's sidecar looks for. */}}
{{- define "kaas.dashboardLabels" -}}
{{ include "kaas.labels" . }}
{{- with .Values.metrics.dashboards.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The image of binary `name`: (list $ "kaas-webhooks"). */}}
{{- define "kaas.image" -}}
{{- $root := index . 0 -}}
{{- printf "%s/%s:%s" $root.Values.image.registry (index . 1) ($root.Values.image.tag | default $root.Chart.AppVersion) -}}
{{- end -}}

{{/* "true" when cert-manager issues the webhook's certificate. */}}
{{- define "kaas.certManager" -}}
{{- $mode := .Values.webhooks.tls.mode -}}
{{- if or (eq $mode "cert-manager") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
true
{{- end -}}
{{- end -}}

{{/*
The self-managed CA and serving certificate (base64): the ones of the Secret kaas-webhooks-tls
when it exists, else new ones. Made once per render and kept in .Values, so that every template
that needs the CA sees the same one.
*/}}
{{- define "kaas.tls" -}}
{{- if not (hasKey .Values "generatedTLS") -}}
{{- $tls := dict -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace "kaas-webhooks-tls" -}}
{{- if and $secret $secret.data (index $secret.data "ca.crt") -}}
{{- $_ := set $tls "ca" (index $secret.data "ca.crt") -}}
{{- $_ := set $tls "crt" (index $secret.data "tls.crt") -}}
{{- $_ := set $tls "key" (index $secret.data "tls.key") -}}
{{- else -}}
{{- $ca := genCA "kaas-webhooks-ca" 3650 -}}
{{- $names := list "kaas-webhooks.kaas-system.svc" "kaas-webhooks.kaas-system.svc.cluster.local" -}}
{{- $cert := genSignedCert "kaas-webhooks.kaas-system.svc" nil $names (int .Values.webhooks.tls.validityDays) $ca -}}
{{- $_ := set $tls "ca" ($ca.Cert | b64enc) -}}
{{- $_ := set $tls "crt" ($cert.Cert | b64enc) -}}
{{- $_ := set $tls "key" ($cert.Key | b64enc) -}}
{{- end -}}
{{- $_ := set .Values "generatedTLS" $tls -}}
{{- end -}}
{{- toYaml .Values.generatedTLS -}}
{{- end -}}

{{/* The caBundle line of a webhook client configuration (none under cert-manager, whose
cainjector writes it). */}}
{{- define "kaas.caBundle" -}}
{{- if not (include "kaas.certManager" .) -}}
caBundle: {{ (include "kaas.tls" . | fromYaml).ca }}
{{- end -}}
{{- end -}}

{{/* Annotations of the generated CRDs: the CA to inject, and whether uninstall keeps them. */}}
{{- define "kaas.crdAnnotations" -}}
{{- include "kaas.registrationAnnotations" . }}
{{- if .Values.crds.keep }}
helm.sh/resource-policy: keep
{{- end }}
{{- end -}}

{{/* Annotations of the generated webhook registrations: the CA to inject. They are never kept:
a registration without its server would refuse every kaas object. */}}
{{- define "kaas.registrationAnnotations" -}}
{{- if include "kaas.certManager" . }}
cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/kaas-webhooks
{{- end }}
{{- end -}}

{{- define "kaas.noAnnotations" -}}
{{- end -}}

{{/*
Whether objects that go through kaas-webhooks (KaasOperators, ProviderClasses) can be created
in this render: once the webhook is registered (any upgrade after the first install), or when
the object exists already (so an upgrade never drops one). On a first install the API server
would refuse them: no replica answers yet.
*/}}
{{- define "kaas.admissible" -}}
{{- $root := index . 0 -}}
{{- if lookup "admissionregistration.k8s.io/v1" "ValidatingWebhookConfiguration" "" "kaas-webhooks" -}}
true
{{- else if $root.Capabilities.APIVersions.Has (printf "%s/%s" (index . 1) (index . 2)) -}}
{{- if lookup (index . 1) (index . 2) "" (index . 3) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

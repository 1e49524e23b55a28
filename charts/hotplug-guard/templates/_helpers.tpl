{{/*
Names, labels and the parts shared by several templates.
*/}}

{{- define "hotplug-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
<fullname>: the release name, prefixed with the chart name unless it already
contains it. Cluster-scoped objects carry it, so two releases never collide.
Kept to 52 characters so that <fullname>-<suffix> stays a valid name.
*/}}
{{- define "hotplug-guard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hotplug-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hotplug-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The certificate Deployment's pods: a name of their own, so that neither the webhook
Deployment, its Service nor its PodDisruptionBudget select them. */}}
{{- define "hotplug-guard.certsSelectorLabels" -}}
app.kubernetes.io/name: {{ include "hotplug-guard.name" . }}-certs
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hotplug-guard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hotplug-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hotplug-guard
{{- end }}

{{- define "hotplug-guard.serviceAccountName" -}}
{{- default (include "hotplug-guard.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{/* `certs ensure`'s own service account: the only one that may touch the CA key and the
webhook configurations. */}}
{{- define "hotplug-guard.certsServiceAccountName" -}}
{{- printf "%s-certs" (include "hotplug-guard.fullname" .) }}
{{- end }}

{{- define "hotplug-guard.signingSecretName" -}}
{{- default (printf "%s-signing" (include "hotplug-guard.fullname" .)) .Values.signing.existingSecret }}
{{- end }}

{{- define "hotplug-guard.caConfigMapName" -}}
{{- printf "%s-ca" (include "hotplug-guard.fullname" .) }}
{{- end }}

{{/*
"true" when installing on OpenShift: the `openshift` value, or with `auto` whether the
cluster serves security.openshift.io/v1 (its SecurityContextConstraints). helm
install/upgrade see the cluster's APIs; helm template does not, so it renders for
plain Kubernetes unless the value says otherwise.
*/}}
{{- define "hotplug-guard.openshift" -}}
{{- if eq (toString .Values.openshift) "auto" }}
{{- if .Capabilities.APIVersions.Has "security.openshift.io/v1" }}true{{ end }}
{{- else if .Values.openshift }}true{{ end }}
{{- end }}

{{/*
The namespace KubeVirt runs in: the value, else OpenShift Virtualization's on
OpenShift, else upstream's. A value of the install, never a fixed list, so that an
exempt service account cannot be claimed by creating a namespace of that name.
*/}}
{{- define "hotplug-guard.kubevirtNamespace" -}}
{{- if .Values.kubevirt.namespace }}
{{- .Values.kubevirt.namespace }}
{{- else if include "hotplug-guard.openshift" . }}
{{- "openshift-cnv" }}
{{- else }}
{{- "kubevirt" }}
{{- end }}
{{- end }}

{{/* The companion controller's service account: the only writer of hotplug-guard.io/status. */}}
{{- define "hotplug-guard.controllerServiceAccountName" -}}
{{- printf "%s-controller" (include "hotplug-guard.fullname" .) }}
{{- end }}

{{/* The companion controller's username, in the release namespace (the policy's controllerUsername). */}}
{{- define "hotplug-guard.controllerUsername" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "hotplug-guard.controllerServiceAccountName" .) }}
{{- end }}

{{/* The controller's pods: a name of their own, like the certificate pods. */}}
{{- define "hotplug-guard.controllerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "hotplug-guard.name" . }}-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The policy config the server reads: the `policy` value plus what belongs to the install. */}}
{{- define "hotplug-guard.policy" -}}
{{- $policy := deepCopy .Values.policy }}
{{- $exemptions := deepCopy ($policy.exemptions | default dict) }}
{{- $_ := set $exemptions "kubevirtNamespace" (include "hotplug-guard.kubevirtNamespace" .) }}
{{- $_ := set $policy "exemptions" $exemptions }}
{{- $_ := set $policy "controllerUsername" (include "hotplug-guard.controllerUsername" .) }}
{{- toYaml $policy }}
{{- end }}

{{- define "hotplug-guard.secretName" -}}
{{- default (printf "%s-tls" (include "hotplug-guard.fullname" .)) .Values.certs.secretName }}
{{- end }}

{{/* The serving Certificate cert-manager issues; its CA is injected into the webhooks. */}}
{{- define "hotplug-guard.servingCertificateName" -}}
{{- printf "%s-serving" (include "hotplug-guard.fullname" .) }}
{{- end }}

{{- define "hotplug-guard.selfManagedCerts" -}}
{{- if eq .Values.certs.mode "self-managed" }}true{{ end }}
{{- end }}

{{/* certs.mode=openshift-service-ca: OpenShift's service CA issues and injects. */}}
{{- define "hotplug-guard.serviceCA" -}}
{{- if eq .Values.certs.mode "openshift-service-ca" }}true{{ end }}
{{- end }}

{{/* The key of the CA bundle in the ConfigMap <fullname>-ca: the service CA's own name for it. */}}
{{- define "hotplug-guard.caConfigMapKey" -}}
{{- if include "hotplug-guard.serviceCA" . }}service-ca.crt{{ else }}ca.crt{{ end }}
{{- end }}


{{- define "hotplug-guard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Every pod: the restricted Pod Security Standard. On plain Kubernetes the image's
numeric user 65532 (and fsGroup 65532, so that it reads its 0440 Secret files); on
OpenShift none of the three, since the restricted-v2 SCC assigns each from the
namespace's range and refuses any other.
*/}}
{{- define "hotplug-guard.podSecurityContext" -}}
runAsNonRoot: true
{{- if not (include "hotplug-guard.openshift" .) }}
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Every container: the restricted Pod Security Standard (users come from the pod's). */}}
{{- define "hotplug-guard.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Where the server reads its files. */}}
{{- define "hotplug-guard.certDir" -}}/tls{{- end }}
{{- define "hotplug-guard.configDir" -}}/config{{- end }}
{{- define "hotplug-guard.signingDir" -}}/signing{{- end }}

{{/*
A `hotplug-guard certs ensure` container of the certificate Deployment; call with
(dict "root" $ "name" ... "once" true|false). The init container runs it once, so a
failed first run (the webhook configurations not created yet) is retried at once;
the container then repeats it to renew the certificates and keep the caBundle current.
*/}}
{{- define "hotplug-guard.ensureContainer" -}}
{{- $root := .root }}
{{- $certs := $root.Values.certs.selfManaged }}
{{- $fullname := include "hotplug-guard.fullname" $root -}}
- name: {{ .name }}
  image: {{ include "hotplug-guard.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["hotplug-guard"]
  args:
    - certs
    - ensure
    - --namespace={{ $root.Release.Namespace }}
    - --service={{ $fullname }}
    - --secret-name={{ include "hotplug-guard.secretName" $root }}
    - --mutating-webhook-config={{ $fullname }}
    - --validating-webhook-config={{ $fullname }}
    - --ca-configmap={{ include "hotplug-guard.caConfigMapName" $root }}
    - --key-type={{ $certs.keyType }}
    - --days={{ $certs.days }}
    - --ca-days={{ $certs.caDays }}
    - --overlap-hours={{ $certs.overlapHours }}
    {{- if .once }}
    - --once
    {{- else }}
    {{- if ge (float64 $certs.interval) (mulf $certs.overlapHours 3600) }}
    {{- fail (printf "certs.selfManaged.interval (%v s) must be shorter than the overlap (%v h), so that every replica picks up a new certificate in time" $certs.interval $certs.overlapHours) }}
    {{- end }}
    - --interval={{ $certs.interval }}
    - --probe-bind=0.0.0.0:8081
    {{- end }}
  {{- if not .once }}
  ports:
    - name: http-probes
      containerPort: 8081
      protocol: TCP
  # ready once a run succeeded; alive while runs keep ending (a hung API call restarts it)
  readinessProbe:
    httpGet:
      path: /readyz
      port: http-probes
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  livenessProbe:
    httpGet:
      path: /healthz
      port: http-probes
    periodSeconds: 30
    timeoutSeconds: 3
    failureThreshold: 3
  {{- end }}
  securityContext:
    {{- include "hotplug-guard.containerSecurityContext" $root | nindent 4 }}
  resources:
    {{- toYaml $certs.resources | nindent 4 }}
{{- end }}

{{/* Namespaces never sent to the webhook, as a JSON list: the release's, kube-system, then the extras. */}}
{{- define "hotplug-guard.excludedNamespaces" -}}
{{- uniq (concat (list .Release.Namespace "kube-system") .Values.webhooks.excludeNamespaces) | toJson }}
{{- end }}

{{/*
One webhook of a configuration. Both configurations share everything but the
name, path, failurePolicy and reinvocationPolicy; call with
(dict "root" $ "name" ... "path" ... "failurePolicy" ... "reinvocationPolicy" ...).
*/}}
{{- define "hotplug-guard.webhook" -}}
{{- $root := .root }}
{{- $webhooks := $root.Values.webhooks -}}
- name: {{ .name }}
  admissionReviewVersions: ["v1"]
  sideEffects: None
  matchPolicy: Equivalent
  timeoutSeconds: {{ $webhooks.timeoutSeconds }}
  failurePolicy: {{ .failurePolicy }}
  {{- with .reinvocationPolicy }}
  reinvocationPolicy: {{ . }}
  {{- end }}
  clientConfig:
    service:
      name: {{ include "hotplug-guard.fullname" $root }}
      namespace: {{ $root.Release.Namespace }}
      path: {{ .path }}
      port: {{ $root.Values.service.port }}
  rules:
    - apiGroups: ["kubevirt.io"]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["virtualmachines"]
      scope: Namespaced
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: NotIn
        values:
          {{- range include "hotplug-guard.excludedNamespaces" $root | fromJsonArray }}
          - {{ . | quote }}
          {{- end }}
      {{- with $webhooks.namespaceSelectorExpressions }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  {{- with $webhooks.objectSelector }}
  objectSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $conditions := include "hotplug-guard.matchConditions" $root | fromYamlArray }}
  {{- with $conditions }}
  matchConditions:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
A CEL expression that is true when the request sets, changes or removes a
`hotplug-guard.io/` annotation (oldObject is null on CREATE).
*/}}
{{- define "hotplug-guard.changesGuardedAnnotations" -}}
(has(object.metadata.annotations) && object.metadata.annotations.exists(k, k.startsWith('hotplug-guard.io/') && (oldObject == null || !has(oldObject.metadata.annotations) || !(k in oldObject.metadata.annotations) || oldObject.metadata.annotations[k] != object.metadata.annotations[k]))) || (oldObject != null && has(oldObject.metadata.annotations) && oldObject.metadata.annotations.exists(k, k.startsWith('hotplug-guard.io/') && (!has(object.metadata.annotations) || !(k in object.metadata.annotations))))
{{- end }}

{{/*
matchConditions: skip the users and groups the policy exempts (and KubeVirt's
controller in its namespace), except when they change a `hotplug-guard.io/`
annotation: the annotation guard holds for everyone. Then the user's own
conditions. kube-apiserver calls the webhook only when every condition is true.
*/}}
{{- define "hotplug-guard.matchConditions" -}}
{{- $webhooks := .Values.webhooks }}
{{- $exemptions := .Values.policy.exemptions | default dict }}
{{- $kubevirtController := printf "system:serviceaccount:%s:kubevirt-controller" (include "hotplug-guard.kubevirtNamespace" .) }}
{{- $users := concat (list $kubevirtController) ($exemptions.usernames | default list) | uniq }}
{{- $groups := $exemptions.groups | default list }}
{{- $guarded := include "hotplug-guard.changesGuardedAnnotations" . }}
{{- $conditions := list }}
{{- if $webhooks.skipExemptUsers }}
{{- $conditions = append $conditions (dict "name" "not-exempt-user" "expression" (printf "!(request.userInfo.username in %s) || %s" (toJson $users) $guarded)) }}
{{- if $groups }}
{{- $conditions = append $conditions (dict "name" "not-exempt-group" "expression" (printf "!(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in %s)) || %s" (toJson $groups) $guarded)) }}
{{- end }}
{{- end }}
{{- if $webhooks.skipUnrelatedUpdates }}
{{- $conditions = append $conditions (dict "name" "hotplug-relevant-change" "expression" (include "hotplug-guard.relevantChange" .)) }}
{{- end }}
{{- toYaml (concat $conditions $webhooks.matchConditions) }}
{{- end }}

{{/*
CEL: true for a CREATE, and for an UPDATE that changes the template's interfaces
or networks or any hotplug-guard.io/ annotation. Every other VM update (labels,
run strategy, memory, ...) leaves what the webhook judges as it was, so it never
waits on the webhook. Written with has() rather than optional fields (`.?`), so
that any CEL implementation evaluates it.
*/}}
{{- define "hotplug-guard.relevantChange" -}}
{{- $clauses := list "request.operation != 'UPDATE'" }}
{{- range list "spec.template.spec.domain.devices.interfaces" "spec.template.spec.networks" }}
{{- $clauses = append $clauses (printf "%s != %s" (include "hotplug-guard.celField" (dict "var" "object" "path" . "default" "[]")) (include "hotplug-guard.celField" (dict "var" "oldObject" "path" . "default" "[]"))) }}
{{- end }}
{{- $clauses = append $clauses (printf "(%s)" (include "hotplug-guard.changesGuardedAnnotations" .)) }}
{{- join " || " $clauses }}
{{- end }}

{{/* CEL: var.path when every step of it is present, else default */}}
{{- define "hotplug-guard.celField" -}}
{{- $current := .var }}
{{- $checks := list }}
{{- range splitList "." .path }}
{{- $current = printf "%s.%s" $current . }}
{{- $checks = append $checks (printf "has(%s)" $current) }}
{{- end }}
{{- printf "(%s ? %s : %s)" (join " && " $checks) $current .default }}
{{- end }}

{{/* metadata of both webhook configurations */}}
{{- define "hotplug-guard.webhookConfigurationMetadata" -}}
name: {{ include "hotplug-guard.fullname" . }}
labels:
  {{- include "hotplug-guard.labels" . | nindent 2 }}
{{- if eq .Values.certs.mode "cert-manager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "hotplug-guard.servingCertificateName" .) }}
{{- else if include "hotplug-guard.serviceCA" . }}
annotations:
  service.beta.openshift.io/inject-cabundle: "true"
{{- end }}
{{- end }}

{{/* Names, labels and the checks every template relies on. */}}

{{- define "perfbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "perfbot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "perfbot.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "perfbot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "perfbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "perfbot.labels" -}}
helm.sh/chart: {{ include "perfbot.chart" . }}
{{ include "perfbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: perfbot
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "perfbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "perfbot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "perfbot.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The volume type of DATA_DIR on worker and all-in-one pods:
persistence.type, or when empty a claim on SQLite (the database lives
there) and an emptyDir on PostgreSQL (only checkouts and run workspaces:
the state is in the database). */}}
{{- define "perfbot.persistenceType" -}}
{{- if .Values.persistence.type -}}
{{- .Values.persistence.type -}}
{{- else if eq .Values.database.type "postgres" -}}
emptyDir
{{- else -}}
pvc
{{- end -}}
{{- end -}}

{{/* The roles of the Deployments, as a YAML list. */}}
{{- define "perfbot.roles" -}}
{{- if eq .Values.mode "split" -}}
- web
- worker
{{- else -}}
- all
{{- end -}}
{{- end -}}

{{/* The name of the Secret the pods read, empty when there is none. */}}
{{- define "perfbot.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{- .Values.secret.existingSecret -}}
{{- else if .Values.secret.create -}}
{{- printf "%s-secrets" (include "perfbot.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Refuses combinations that cannot work, each with a message naming the
values to change.  Included by every template that renders objects. */}}
{{- define "perfbot.validate" -}}
{{- $v := .Values -}}
{{- if not (has $v.mode (list "all" "split")) -}}
{{- fail (printf "mode: %q is neither all nor split" $v.mode) -}}
{{- end -}}
{{- if and (eq $v.mode "split") (ne $v.database.type "postgres") -}}
{{- fail "mode: split (separate web and worker pods) needs a shared store: set database.type=postgres and the Secret's databaseUrl key (SQLite is one file on one pod's volume)" -}}
{{- end -}}
{{- if and (eq $v.database.type "sqlite") (gt (int $v.all.replicas) 1) -}}
{{- fail "all.replicas: SQLite is one file on one pod's volume; more than one replica needs database.type=postgres" -}}
{{- end -}}
{{- if eq $v.database.type "postgres" -}}
{{- if not (include "perfbot.secretName" .) -}}
{{- fail "database.type=postgres: DATABASE_URL comes from a Secret: set secret.existingSecret (key secret.keys.databaseUrl) or secret.create=true with secret.values.databaseUrl" -}}
{{- end -}}
{{- $_ := required "secret.keys.databaseUrl: the Secret's key holding DATABASE_URL cannot be empty with database.type=postgres" $v.secret.keys.databaseUrl -}}
{{- if and (not $v.secret.existingSecret) $v.secret.create -}}
{{- $url := required "secret.values.databaseUrl: database.type=postgres with a chart-made Secret needs the PostgreSQL URL (postgres://user:password@host:5432/db)" $v.secret.values.databaseUrl -}}
{{- if not (regexMatch "^postgres(ql)?://" $url) -}}
{{- fail "secret.values.databaseUrl: a PostgreSQL URL starts with postgres:// or postgresql://" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and (not $v.secret.existingSecret) $v.secret.create -}}
{{- $_ := required "secret.values.webhookSecret: a chart-made Secret needs the webhook secret (perfbot never accepts unsigned webhooks)" $v.secret.values.webhookSecret -}}
{{- $_ := required "secret.values.privateKey: a chart-made Secret needs the App's private key (PEM)" $v.secret.values.privateKey -}}
{{- end -}}
{{- if include "perfbot.secretName" . -}}
{{- $_ := required "secret.keys.webhookSecret: the Secret's key holding WEBHOOK_SECRET cannot be empty" $v.secret.keys.webhookSecret -}}
{{- $_ := required "secret.keys.privateKey: the Secret's key holding the App private key cannot be empty" $v.secret.keys.privateKey -}}
{{- end -}}
{{- if eq (include "perfbot.persistenceType" .) "pvc" -}}
{{- if and (eq $v.mode "split") (gt (int $v.worker.replicas) 1) (not (has "ReadWriteMany" $v.persistence.accessModes)) -}}
{{- fail "persistence.type=pvc: one ReadWriteOnce claim cannot serve several worker replicas; use persistence.type=ephemeral (a volume per pod) or emptyDir" -}}
{{- end -}}
{{- if and (eq $v.mode "all") (gt (int $v.all.replicas) 1) (not (has "ReadWriteMany" $v.persistence.accessModes)) -}}
{{- fail "persistence.type=pvc: one ReadWriteOnce claim cannot serve several replicas; use persistence.type=ephemeral (a volume per pod) or emptyDir" -}}
{{- end -}}
{{- end -}}
{{- if $v.ingress.enabled -}}
{{- if not $v.ingress.hosts -}}
{{- fail "ingress.hosts: the Ingress needs at least one host name (the host of config.PUBLIC_URL)" -}}
{{- end -}}
{{- end -}}
{{- if $v.httpRoute.enabled -}}
{{- if not $v.httpRoute.parentRefs -}}
{{- fail "httpRoute.parentRefs: the HTTPRoute needs the Gateway to attach to ([{name: ..., namespace: ...}])" -}}
{{- end -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (eq $v.database.type "postgres") -}}
{{- if not (or $v.networkPolicy.database.cidrs $v.networkPolicy.database.to) -}}
{{- fail "networkPolicy.database: with database.type=postgres the policy must name the database: set networkPolicy.database.cidrs or networkPolicy.database.to" -}}
{{- end -}}
{{- end -}}
{{- with $v.config.SHUTDOWN_GRACE_SECONDS -}}
{{- $grace := int . -}}
{{- range $role := include "perfbot.roles" $ | fromYamlArray -}}
{{- $period := int (get $v $role).terminationGracePeriodSeconds -}}
{{- if ge $grace $period -}}
{{- fail (printf "config.SHUTDOWN_GRACE_SECONDS (%d) must stay below %s.terminationGracePeriodSeconds (%d): the kubelet kills a draining pod at that point" $grace $role $period) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (hasPrefix "/" (toString $v.config.WEBHOOK_PATH)) -}}
{{- fail "config.WEBHOOK_PATH: a path starts with /" -}}
{{- end -}}
{{- end -}}

{{/* The paths the Ingress and the HTTPRoute expose, as a YAML list of
{path, type} (type Exact or Prefix). */}}
{{- define "perfbot.exposedPaths" -}}
- path: {{ .Values.config.WEBHOOK_PATH | quote }}
  type: Exact
{{- range .Values.expose.dashboardPaths }}
- path: {{ . | quote }}
  type: Prefix
{{- end }}
{{- if .Values.expose.setup }}
- path: "/"
  type: Exact
- path: "/setup"
  type: Prefix
{{- end }}
{{- if .Values.expose.mcp }}
- path: "/mcp"
  type: Exact
{{- end }}
{{- end -}}

{{/* The environment of a perfbot container: settings from the ConfigMap,
secrets by key.  Argument: dict "root" $ "role" (web|worker|all|migrate). */}}
{{- define "perfbot.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $secret := include "perfbot.secretName" $root -}}
{{- $keys := $v.secret.keys -}}
{{- $workerSide := has .role (list "worker" "all") -}}
{{- if $secret }}
{{- if and (ne .role "migrate") (eq $v.secret.privateKeyAs "env") }}
- name: PRIVATE_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.privateKey }}
{{- end }}
{{- if ne .role "migrate" }}
- name: WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.webhookSecret }}
{{- range $name, $key := dict "WEBHOOK_SECRET_OLD" $keys.webhookSecretOld "GITHUB_CLIENT_SECRET" $keys.clientSecret }}
{{- if $key }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- if $workerSide }}
{{- range $name, $key := dict "ANTHROPIC_API_KEY" $keys.anthropicApiKey "PERFBOT_MANAGED_ENVIRONMENT_KEY" $keys.managedEnvironmentKey }}
{{- if $key }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- if eq $v.database.type "postgres" }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.databaseUrl }}
{{- end }}
{{- end }}
{{- if and $secret (ne .role "migrate") (eq $v.secret.privateKeyAs "file") }}
- name: PRIVATE_KEY_PATH
  value: /var/run/secrets/perfbot/private-key.pem
{{- end }}
{{- end -}}

{{/* Volumes and mounts shared by every perfbot container.  Argument: dict
"root" $ "role". */}}
{{- define "perfbot.secretVolume" -}}
{{- $root := .root -}}
{{- $secret := include "perfbot.secretName" $root -}}
{{- if and $secret (eq $root.Values.secret.privateKeyAs "file") }}
- name: private-key
  secret:
    secretName: {{ $secret }}
    # group-readable: the kubelet gives fsGroup read access anyway
    defaultMode: 0440
    items:
      - key: {{ $root.Values.secret.keys.privateKey }}
        path: private-key.pem
{{- end }}
{{- end -}}

{{- define "perfbot.secretMount" -}}
{{- $root := .root -}}
{{- if and (include "perfbot.secretName" $root) (eq $root.Values.secret.privateKeyAs "file") }}
- name: private-key
  mountPath: /var/run/secrets/perfbot
  readOnly: true
{{- end }}
{{- end -}}

{{/* The container securityContext: restricted for web (and migrate), the
sandbox's needs for worker and all. */}}
{{- define "perfbot.containerSecurityContext" -}}
{{- $v := .root.Values -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- if has .role (list "worker" "all") }}
{{- with $v.sandbox.procMount }}
procMount: {{ . }}
{{- end }}
seccompProfile:
{{ toYaml $v.sandbox.seccompProfile | indent 2 }}
{{- with $v.sandbox.appArmorProfile }}
appArmorProfile:
{{ toYaml . | indent 2 }}
{{- end }}
{{- else }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end -}}

{{- define "perfbot.podSecurityContext" -}}
{{- $v := .root.Values -}}
runAsNonRoot: true
{{- with $v.podSecurityContext }}
{{ toYaml . }}
{{- end }}
{{- if has .role (list "worker" "all") }}
seccompProfile:
{{ toYaml $v.sandbox.seccompProfile | indent 2 }}
{{- else }}
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end -}}

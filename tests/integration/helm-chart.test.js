// The Helm chart (charts/perfbot), checked offline.  No helm binary here:
// charts/perfbot/tests/render (Go's text/template with sprig and Helm's own
// functions, built in GOPATH mode from Debian's packages) renders it like
// `helm template` for the default values and every file under ci/.  Each
// rendered object is then checked against the Kubernetes API schemas of the
// npm kubernetes-models packages (core, apps, batch, networking, policy;
// HTTPRoute from @kubernetes-models/gateway-api; ServiceMonitor from
// @kubernetes-models/prometheus-operator), strictly: a field the schema does
// not know is an error, as with server-side field validation.  The values
// are checked against values.schema.json with ajv (Helm's draft-07), and the
// properties the chart promises are asserted: restricted web pods, only the
// chosen paths exposed, pods rolled on a change of settings, the Secret's key
// names honoured, clear failures for missing values.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Ajv from 'ajv';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHART = path.join(ROOT, 'charts/perfbot');
const CI_FILES = fs.readdirSync(path.join(CHART, 'ci')).filter((f) => f.endsWith('.yaml')).sort();

let tmp, renderBin;

before(() => {
	tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'perfbot-helm-'));
	renderBin = path.join(tmp, 'render');
	const env = { ...process.env, GOPATH: '/usr/share/gocode', GO111MODULE: 'off', GOFLAGS: '' };
	if (!env.HOME && !env.GOCACHE) env.GOCACHE = path.join(os.tmpdir(), 'perfbot-go-build');
	execFileSync('go', ['build', '-o', renderBin, '.'], { cwd: path.join(CHART, 'tests/render'), env, stdio: 'pipe' });
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Renders the chart; returns { values, manifests: [{source, object}], notes }
// or, when rendering fails, { error } with Helm's message.
function render({ files = [], set = [], valuesYaml } = {}) {
	const args = ['--chart', CHART, '--json', '--name', 'pb', '--namespace', 'perf'];
	for (const f of files) args.push('-f', path.isAbsolute(f) ? f : path.join(CHART, f));
	if (valuesYaml !== undefined) {
		const f = path.join(tmp, `values-${Math.random().toString(36).slice(2)}.yaml`);
		fs.writeFileSync(f, valuesYaml);
		args.push('-f', f);
	}
	for (const s of set) args.push('--set', s);
	const r = spawnSync(renderBin, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
	if (r.status !== 0) return { error: r.stderr.trim() };
	return JSON.parse(r.stdout);
}

function mustRender(opts) {
	const out = render(opts);
	assert.equal(out.error, undefined, out.error);
	return out;
}

const objects = (out, kind) => out.manifests.map((m) => m.object).filter((o) => !kind || o.kind === kind);
const byName = (out, kind, suffix) => objects(out, kind).find((o) => o.metadata.name.endsWith(suffix));

// ---- Kubernetes schemas ------------------------------------------------------

// The generated validator of each kind, loaded from the packages' _schemas
// (the models' own classes copy their input, which would hide which fields
// the schema looked at).
const SCHEMAS = {
	'v1/ConfigMap': ['kubernetes-models', 'IoK8sApiCoreV1ConfigMap'],
	'v1/Secret': ['kubernetes-models', 'IoK8sApiCoreV1Secret'],
	'v1/Service': ['kubernetes-models', 'IoK8sApiCoreV1Service'],
	'v1/ServiceAccount': ['kubernetes-models', 'IoK8sApiCoreV1ServiceAccount'],
	'v1/PersistentVolumeClaim': ['kubernetes-models', 'IoK8sApiCoreV1PersistentVolumeClaim'],
	'apps/v1/Deployment': ['kubernetes-models', 'IoK8sApiAppsV1Deployment'],
	'batch/v1/Job': ['kubernetes-models', 'IoK8sApiBatchV1Job'],
	'networking.k8s.io/v1/Ingress': ['kubernetes-models', 'IoK8sApiNetworkingV1Ingress'],
	'networking.k8s.io/v1/NetworkPolicy': ['kubernetes-models', 'IoK8sApiNetworkingV1NetworkPolicy'],
	'policy/v1/PodDisruptionBudget': ['kubernetes-models', 'IoK8sApiPolicyV1PodDisruptionBudget'],
	'gateway.networking.k8s.io/v1/HTTPRoute': ['@kubernetes-models/gateway-api', 'IoK8sSigsGatewayApiApisV1HTTPRoute'],
	'monitoring.coreos.com/v1/ServiceMonitor': ['@kubernetes-models/prometheus-operator',
		'ComGithubPrometheusOperatorPrometheusOperatorPkgApisMonitoringV1ServiceMonitor'],
};
const validators = new Map();

async function validatorFor(apiVersion, kind) {
	const key = `${apiVersion}/${kind}`;
	if (!SCHEMAS[key]) return null;
	if (!validators.has(key)) {
		const [pkg, name] = SCHEMAS[key];
		const mod = await import(pathToFileURL(path.join(ROOT, 'tests/node_modules', pkg, '_schemas', `${name}.js`)).href);
		validators.set(key, mod.validate);
	}
	return validators.get(key);
}

// Wraps an object so that every property the validator reads is recorded;
// an object whose keys it enumerated (a map: labels, data) is fully known.
function tracked(root) {
	const records = new Map();
	const wrap = (value) => {
		if (value === null || typeof value !== 'object') return value;
		let rec = records.get(value);
		if (!rec) {
			rec = { read: new Set(), all: false };
			rec.proxy = new Proxy(value, {
				get(t, k, r) {
					if (typeof k === 'string') rec.read.add(k);
					return wrap(Reflect.get(t, k, r));
				},
				has(t, k) {
					rec.read.add(k);
					return Reflect.has(t, k);
				},
				ownKeys(t) {
					rec.all = true;
					return Reflect.ownKeys(t);
				},
			});
			records.set(value, rec);
		}
		return rec.proxy;
	};
	return { proxy: wrap(root), records };
}

function unknownFields(value, records, at = '') {
	if (value === null || typeof value !== 'object') return [];
	const rec = records.get(value);
	if (!rec) return []; // the schema does not describe inside it
	const out = [];
	if (Array.isArray(value)) {
		value.forEach((v, i) => out.push(...unknownFields(v, records, `${at}/${i}`)));
		return out;
	}
	for (const k of Object.keys(value)) {
		if (!rec.all && !rec.read.has(k)) out.push(`${at}/${k}`);
		else out.push(...unknownFields(value[k], records, `${at}/${k}`));
	}
	return out;
}

// Errors of one object against its kind's schema, unknown fields included.
async function schemaErrors(obj) {
	const validate = await validatorFor(obj.apiVersion, obj.kind);
	if (!validate) return [`no schema for ${obj.apiVersion} ${obj.kind}`];
	const { proxy, records } = tracked(obj);
	const errors = [];
	if (!validate(proxy)) for (const e of validate.errors) errors.push(`${e.instancePath || '/'} ${e.keyword} ${JSON.stringify(e.params)}`);
	for (const f of unknownFields(obj, records)) errors.push(`${f}: unknown field`);
	for (const f of ['apiVersion', 'kind']) if (!obj[f]) errors.push(`${f} missing`);
	if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(obj.metadata?.name ?? '') || obj.metadata.name.length > 63)
		errors.push(`metadata.name ${JSON.stringify(obj.metadata?.name)}: not a DNS label of at most 63 characters`);
	return errors;
}

async function assertValidObjects(out) {
	const problems = [];
	for (const m of out.manifests) {
		const errs = await schemaErrors(m.object);
		if (errs.length) problems.push(`${m.source} ${m.object.kind} ${m.object.metadata?.name}:\n  ${errs.join('\n  ')}`);
	}
	assert.deepEqual(problems, [], problems.join('\n'));
}

// ---- values.schema.json --------------------------------------------------------

const ajv = new Ajv({ allErrors: true, strict: false });
const validateValues = ajv.compile(JSON.parse(fs.readFileSync(path.join(CHART, 'values.schema.json'), 'utf8')));
const valuesErrors = (values) => (validateValues(values) ? [] : validateValues.errors.map((e) => `${e.instancePath} ${e.message}`));

// ---- pod helpers -------------------------------------------------------------

const podSpec = (o) => o.spec.template.spec;
const containersOf = (o) => [...(podSpec(o).initContainers ?? []), ...podSpec(o).containers];
const envOf = (c) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));

// The restricted Pod Security Standard, as the admission plugin reads it
// (v1.29+), plus a read-only root filesystem.
function restrictedViolations(o) {
	const spec = podSpec(o);
	const v = [];
	for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[f]) v.push(f);
	const podSeccomp = spec.securityContext?.seccompProfile?.type;
	if (spec.securityContext?.runAsNonRoot !== true) v.push('pod runAsNonRoot');
	if (spec.securityContext?.runAsUser === 0) v.push('pod runAsUser 0');
	const allowed = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
	for (const vol of spec.volumes ?? []) for (const k of Object.keys(vol)) if (k !== 'name' && !allowed.includes(k)) v.push(`volume ${vol.name}: ${k}`);
	for (const c of containersOf(o)) {
		const sc = c.securityContext ?? {};
		if (sc.privileged) v.push(`${c.name} privileged`);
		if (sc.allowPrivilegeEscalation !== false) v.push(`${c.name} allowPrivilegeEscalation`);
		if (sc.readOnlyRootFilesystem !== true) v.push(`${c.name} readOnlyRootFilesystem`);
		if (sc.runAsUser === 0) v.push(`${c.name} runAsUser 0`);
		if (!(sc.capabilities?.drop ?? []).includes('ALL')) v.push(`${c.name} capabilities.drop ALL`);
		for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') v.push(`${c.name} adds ${cap}`);
		const seccomp = sc.seccompProfile?.type ?? podSeccomp;
		if (!['RuntimeDefault', 'Localhost'].includes(seccomp)) v.push(`${c.name} seccomp ${seccomp}`);
		if (sc.procMount && sc.procMount !== 'Default') v.push(`${c.name} procMount ${sc.procMount}`);
		if (sc.appArmorProfile && sc.appArmorProfile.type === 'Unconfined') v.push(`${c.name} appArmor Unconfined`);
		for (const p of c.ports ?? []) if (p.hostPort) v.push(`${c.name} hostPort`);
	}
	if (spec.hostUsers === false) v.push('hostUsers false');
	return v;
}

// ---- the tests ---------------------------------------------------------------

describe('renderer', () => {
	test('implements the Helm functions and semantics the chart relies on', () => {
		const chart = path.join(tmp, 'mini');
		fs.mkdirSync(path.join(chart, 'templates'), { recursive: true });
		fs.writeFileSync(path.join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: mini\nversion: 1.2.3\nappVersion: "4.5"\n');
		fs.writeFileSync(path.join(chart, 'values.yaml'), 'n: 3\nm: {a: 1, b: {c: 2}}\ngone: 1\nt: "{{ .Release.Name }}-x"\nlist: [x, y]\n');
		fs.writeFileSync(path.join(chart, 'templates/_h.tpl'), '{{- define "mini.n" -}}n={{ .Values.n }}{{- end -}}\n');
		fs.writeFileSync(path.join(chart, 'templates/cm.yaml'), [
			'apiVersion: v1',
			'kind: ConfigMap',
			'metadata:',
			'  name: {{ .Release.Name }}-{{ .Chart.Name }}',
			'  namespace: {{ .Release.Namespace }}',
			'data:',
			'  include: {{ include "mini.n" . | quote }}',
			'  tpl: {{ tpl .Values.t . | quote }}',
			'  toYaml: {{ toYaml .Values.m | quote }}',
			'  fromYaml: {{ (fromYaml "k: [1, 2]").k | len | quote }}',
			'  fromYamlArray: {{ fromYamlArray "[a, b, c]" | len | quote }}',
			'  toJson: {{ toJson .Values.list | quote }}',
			'  fromJson: {{ (fromJson "{\\"q\\": 7}").q | quote }}',
			'  lookup: {{ lookup "v1" "Secret" "ns" "x" | len | quote }}',
			'  missing: "{{ .Values.nope }}"',
			'  kind: {{ kindOf .Values.n | quote }}',
			'  gone: {{ hasKey .Values "gone" | quote }}',
			'  set: {{ .Values.s | quote }}',
			'  setList: {{ toJson .Values.l | quote }}',
			'  setInt: {{ kindOf .Values.i | quote }}',
			'  merged: {{ .Values.m.b.c }}-{{ .Values.m.a }}-{{ .Values.m.b.d }}',
			'  chart: {{ .Chart.Version }}-{{ .Chart.AppVersion }}-{{ .Template.Name }}-{{ .Template.BasePath }}',
			'  kube: {{ .Capabilities.KubeVersion.Minor }}-{{ .Capabilities.APIVersions.Has "apps/v1" }}',
			'',
		].join('\n'));
		fs.writeFileSync(path.join(chart, 'templates/fails.yaml'), '{{ if .Values.boom }}{{ required "boom: a value is required here" .Values.nothing }}{{ end }}\n');
		const over = path.join(tmp, 'mini-over.yaml');
		fs.writeFileSync(over, 'gone: null\nm: {b: {d: 9}}\n');
		const r = spawnSync(renderBin, ['--chart', chart, '--json', '--name', 'rel', '--namespace', 'nsx', '-f', over, '--set', 's=str', '--set', 'l={p,q}', '--set', 'i=5'], { encoding: 'utf8' });
		assert.equal(r.status, 0, r.stderr);
		const cm = JSON.parse(r.stdout).manifests[0].object;
		assert.deepEqual(cm.metadata, { name: 'rel-mini', namespace: 'nsx' });
		assert.deepEqual(cm.data, {
			include: 'n=3', tpl: 'rel-x', toYaml: 'a: 1\nb:\n  c: 2\n  d: 9', fromYaml: '2', fromYamlArray: '3', toJson: '["x","y"]',
			fromJson: '7', lookup: '0', missing: '', kind: 'float64', gone: 'false', set: 'str', setList: '["p","q"]', setInt: 'int64', merged: '2-1-9',
			chart: '1.2.3-4.5-mini/templates/cm.yaml-mini/templates', kube: '30-true',
		});
		const f = spawnSync(renderBin, ['--chart', chart, '--set', 'boom=true'], { encoding: 'utf8' });
		assert.equal(f.status, 1);
		assert.match(f.stderr, /^Error: execution error at \(mini\/templates\/fails\.yaml:1:\d+\): boom: a value is required here$/m);
		// sprig's env and expandenv are not there, as in Helm
		fs.writeFileSync(path.join(chart, 'templates/fails.yaml'), '{{ env "HOME" }}\n');
		const e = spawnSync(renderBin, ['--chart', chart], { encoding: 'utf8' });
		assert.equal(e.status, 1);
		assert.match(e.stderr, /function "env" not defined/);
		// a chart's kubeVersion is checked against .Capabilities
		const k = spawnSync(renderBin, ['--chart', CHART, '--kube-version', 'v1.29.9'], { encoding: 'utf8' });
		assert.equal(k.status, 1);
		assert.match(k.stderr, /chart requires kubeVersion: >=1\.30\.0-0 which is incompatible with Kubernetes v1\.29\.9/);
		assert.equal(spawnSync(renderBin, ['--chart', CHART, '--kube-version', 'v1.33.1'], { encoding: 'utf8' }).status, 0);
	});

	test('the strict schema check finds an unknown field, a wrong type and a missing field', async () => {
		const bad = {
			apiVersion: 'apps/v1',
			kind: 'Deployment',
			metadata: { name: 'x', labels: { a: 'b' } },
			spec: {
				replicas: 'two',
				selector: { matchLabels: { a: 'b' } },
				template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', imagePullPolicy: 'Sometimes', securityContext: { readOnlyRootFilesytem: true } }] } },
			},
		};
		const errs = await schemaErrors(bad);
		assert.ok(errs.some((e) => e.startsWith('/spec/replicas type')), errs.join('\n'));
		assert.ok(errs.some((e) => e === '/spec/template/spec/containers/0/securityContext/readOnlyRootFilesytem: unknown field'), errs.join('\n'));
		assert.ok(errs.some((e) => e.includes('imagePullPolicy enum')), errs.join('\n'));
		const noSpec = await schemaErrors({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'i' }, spec: { rules: [{ http: {} }] } });
		assert.ok(noSpec.some((e) => e.includes('missingProperty":"paths')), noSpec.join('\n'));
		const route = await schemaErrors({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r' }, spec: { rules: [{ matches: [{ path: { type: 'Glob', value: '/x' } }] }] } });
		assert.ok(route.some((e) => e.includes('enum')), route.join('\n'));
		const sm = await schemaErrors({ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 's' }, spec: { selector: {}, endpoints: [{ port: 'http', pth: '/metrics' }] } });
		assert.ok(sm.includes('/spec/endpoints/0/pth: unknown field'), sm.join('\n'));
	});
});

describe('renders and validates', () => {
	const cases = [['default values', []], ...CI_FILES.map((f) => [`ci/${f}`, [`ci/${f}`]])];
	for (const [label, files] of cases) {
		test(`${label}: every object valid against the Kubernetes schemas, values against values.schema.json`, async () => {
			const out = mustRender({ files });
			assert.deepEqual(valuesErrors(out.values), []);
			assert.ok(out.manifests.length >= 6, `only ${out.manifests.length} objects`);
			await assertValidObjects(out);
			assert.match(out.notes, /perfbot .* is installed as pb-perfbot in perf/);
			// every object is labelled as the release's, every name is unique per kind
			const seen = new Set();
			for (const o of objects(out)) {
				assert.equal(o.metadata.labels?.['app.kubernetes.io/instance'], 'pb', `${o.kind} ${o.metadata.name}`);
				assert.ok(!seen.has(`${o.kind}/${o.metadata.name}`), `${o.kind} ${o.metadata.name} twice`);
				seen.add(`${o.kind}/${o.metadata.name}`);
			}
			// every Deployment's selector picks its own pods, each Service's selector some pods
			const deployments = objects(out, 'Deployment');
			for (const d of deployments)
				for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) assert.equal(d.spec.template.metadata.labels[k], v);
			for (const s of objects(out, 'Service'))
				assert.ok(deployments.some((d) => Object.entries(s.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v)), s.metadata.name);
		});
	}

	test('the default values: one all-in-one pod on SQLite with its data on a claim, in setup mode', () => {
		const out = mustRender();
		assert.deepEqual(objects(out).map((o) => o.kind).sort(),
			['ConfigMap', 'Deployment', 'PersistentVolumeClaim', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
		const d = objects(out, 'Deployment')[0];
		assert.deepEqual(d.spec.template.spec.containers[0].args, ['serve', '--role', 'all']);
		assert.equal(d.spec.strategy.type, 'Recreate');
		assert.equal(envOf(d.spec.template.spec.containers[0]).DATABASE_URL, undefined);
		assert.match(out.notes, /setup mode/);
	});

	test('mode all on PostgreSQL: several replicas, DATA_DIR on an emptyDir, a rolling update, the migration hook', async () => {
		const out = mustRender({ set: ['database.type=postgres', 'secret.existingSecret=creds', 'all.replicas=3'] });
		await assertValidObjects(out);
		const d = objects(out, 'Deployment')[0];
		assert.equal(d.spec.replicas, 3);
		assert.equal(d.spec.strategy.type, 'RollingUpdate');
		assert.deepEqual(podSpec(d).volumes.find((v) => v.name === 'data').emptyDir, {});
		assert.equal(objects(out, 'PersistentVolumeClaim').length, 0);
		assert.equal(objects(out, 'Job').length, 1);
	});

	test('split mode: web and worker Deployments with their roles, a migration hook on PostgreSQL', () => {
		const out = mustRender({ files: ['ci/split-postgres-ingress-values.yaml'] });
		const web = byName(out, 'Deployment', '-web');
		const worker = byName(out, 'Deployment', '-worker');
		assert.deepEqual(web.spec.template.spec.containers[0].args, ['serve', '--role', 'web']);
		assert.deepEqual(worker.spec.template.spec.containers[0].args, ['serve', '--role', 'worker']);
		assert.equal(web.spec.replicas, 3);
		assert.equal(worker.spec.replicas, 4);
		assert.deepEqual(web.spec.strategy.rollingUpdate, { maxUnavailable: 0, maxSurge: 1 });
		assert.ok(podSpec(worker).volumes.find((v) => v.name === 'data').ephemeral);
		const job = objects(out, 'Job')[0];
		assert.deepEqual(job.spec.template.spec.containers[0].args, ['migrate']);
		assert.equal(job.metadata.annotations['helm.sh/hook'], 'post-install,pre-upgrade');
		assert.equal(envOf(job.spec.template.spec.containers[0]).DATABASE_URL.valueFrom.secretKeyRef.key, 'database-url');
		assert.equal(envOf(job.spec.template.spec.containers[0]).WEBHOOK_SECRET, undefined);
		for (const d of [web, worker]) {
			const c = d.spec.template.spec.containers[0];
			assert.equal(c.livenessProbe.httpGet.path, '/healthz');
			assert.equal(c.readinessProbe.httpGet.path, '/readyz');
			assert.equal(c.startupProbe.httpGet.path, '/healthz');
			assert.equal(c.readinessProbe.httpGet.port, 'http');
			assert.equal(c.ports[0].containerPort, 3000);
			assert.equal(envOf(c).DATABASE_URL.valueFrom.secretKeyRef.key, 'database-url');
		}
		const cm = objects(out, 'ConfigMap')[0];
		assert.equal(cm.data.WORKERS, '8');
		assert.equal(cm.data.HOST, '0.0.0.0');
		assert.equal(cm.data.PORT, '3000');
		for (const s of ['PRIVATE_KEY', 'WEBHOOK_SECRET', 'DATABASE_URL', 'ANTHROPIC_API_KEY', 'GITHUB_CLIENT_SECRET'])
			assert.equal(cm.data[s], undefined, `${s} in the ConfigMap`);
		// the PDBs, one per Deployment, select its pods
		for (const d of [web, worker]) {
			const pdb = byName(out, 'PodDisruptionBudget', d.metadata.name.slice(-4) === '-web' ? '-web' : '-worker');
			assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
		}
	});
});

describe('security', () => {
	test('web pods and the migration Job meet the restricted Pod Security Standard', () => {
		for (const f of CI_FILES) {
			const out = mustRender({ files: [`ci/${f}`] });
			const web = byName(out, 'Deployment', '-web');
			if (web) assert.deepEqual(restrictedViolations(web), [], `${f}: web`);
			for (const job of objects(out, 'Job')) assert.deepEqual(restrictedViolations(job), [], `${f}: ${job.metadata.name}`);
			if (web) {
				const sc = web.spec.template.spec.containers[0].securityContext;
				assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
				assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
				assert.equal(podSpec(web).securityContext.seccompProfile.type, 'RuntimeDefault');
				assert.equal(podSpec(web).hostUsers, undefined);
			}
		}
	});

	test('sandboxed pods differ from restricted only by what bubblewrap needs', () => {
		for (const f of ['split-postgres-ingress-values.yaml', 'all-in-one-sqlite-values.yaml', 'gateway-monitoring-netpol-values.yaml']) {
			const out = mustRender({ files: [`ci/${f}`] });
			const pod = byName(out, 'Deployment', '-worker') ?? byName(out, 'Deployment', '-all');
			// a Localhost seccomp profile is within restricted; Unconfined is not
			const seccomp = podSpec(pod).containers[0].securityContext.seccompProfile.type;
			const expected = ['hostUsers false', 'perfbot appArmor Unconfined', 'perfbot procMount Unmasked'];
			if (seccomp === 'Unconfined') expected.push('perfbot seccomp Unconfined');
			assert.deepEqual(restrictedViolations(pod).sort(), expected.sort(), f);
			const sc = podSpec(pod).containers[0].securityContext;
			assert.equal(sc.privileged, false);
			assert.equal(sc.runAsNonRoot, true);
			assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
		}
		// the exceptions follow the values, and leave with them
		const out = mustRender({ set: ['sandbox.hostUsers=true', 'sandbox.procMount=Default', 'sandbox.seccompProfile.type=RuntimeDefault', 'sandbox.appArmorProfile=null'] });
		assert.deepEqual(restrictedViolations(objects(out, 'Deployment')[0]), []);
	});

	test('values.schema.json refuses unknown keys, secrets among the settings and unknown choices', () => {
		const base = mustRender().values;
		const bad = [
			[{ ...base, colour: 'blue' }, /must NOT have additional properties/],
			[{ ...base, config: { ...base.config, WEBHOOK_SECRET: 'x' } }, /config must NOT have additional properties/],
			[{ ...base, config: { ...base.config, PRIVATE_KEY: 'x' } }, /config must NOT have additional properties/],
			[{ ...base, mode: 'both' }, /\/mode must be equal to one of the allowed values/],
			[{ ...base, persistence: { ...base.persistence, type: 'hostPath' } }, /\/persistence\/type/],
			[{ ...base, config: { ...base.config, LOG_LEVEL: 'verbose' } }, /\/config\/LOG_LEVEL/],
			[{ ...base, config: { ...base.config, WORKERS: 'many' } }, /\/config\/WORKERS/],
			[{ ...base, secret: { ...base.secret, keys: { ...base.secret.keys, webhookSecret: 'a b' } } }, /\/secret\/keys\/webhookSecret/],
			[{ ...base, podSecurityContext: { runAsUser: 0 } }, /\/podSecurityContext\/runAsUser/],
			[{ ...base, web: { ...base.web, replica: 2 } }, /\/web must NOT have additional properties/],
		];
		for (const [values, re] of bad) {
			const errs = valuesErrors(values);
			assert.ok(errs.some((e) => re.test(e)), `${re}: ${errs.join('; ') || 'accepted'}`);
		}
	});
});

describe('exposure', () => {
	const paths = (ing) => ing.spec.rules.flatMap((r) => r.http.paths.map((p) => `${p.pathType} ${p.path}`)).sort();

	test('the Ingress exposes the webhook path and the dashboard only', () => {
		const out = mustRender({ files: ['ci/split-postgres-ingress-values.yaml'] });
		const ing = objects(out, 'Ingress')[0];
		assert.deepEqual(paths(ing), ['Exact /api/github/webhooks', 'Prefix /api/v1', 'Prefix /auth', 'Prefix /ui']);
		for (const p of ing.spec.rules[0].http.paths) assert.deepEqual(p.backend.service, { name: 'pb-perfbot', port: { name: 'http' } });
		assert.equal(ing.spec.rules[0].host, 'perfbot.example.com');
		assert.equal(ing.spec.tls[0].secretName, 'perfbot-tls');
		// the Service behind it reaches web pods only
		assert.equal(objects(out, 'Service').find((s) => s.metadata.name === 'pb-perfbot').spec.selector['app.kubernetes.io/component'], 'web');
	});

	test('the HTTPRoute exposes the same paths; setup and /mcp only when chosen; a custom webhook path is followed', () => {
		const out = mustRender({ files: ['ci/gateway-monitoring-netpol-values.yaml'] });
		const route = objects(out, 'HTTPRoute')[0];
		const matches = route.spec.rules.flatMap((r) => r.matches.map((m) => `${m.path.type} ${m.path.value}`)).sort();
		assert.deepEqual(matches, ['Exact /', 'Exact /hooks/github', 'PathPrefix /api/v1', 'PathPrefix /auth', 'PathPrefix /setup', 'PathPrefix /ui']);
		assert.deepEqual(route.spec.parentRefs, [{ name: 'public', namespace: 'gateways', sectionName: 'https' }]);
		const plain = mustRender({ files: ['ci/gateway-monitoring-netpol-values.yaml'], set: ['expose.setup=false'] });
		const m2 = objects(plain, 'HTTPRoute')[0].spec.rules.flatMap((r) => r.matches.map((m) => m.path.value));
		assert.deepEqual(m2.sort(), ['/api/v1', '/auth', '/hooks/github', '/ui']);
		const mcp = mustRender({ files: ['ci/split-postgres-ingress-values.yaml'], set: ['expose.mcp=true'] });
		assert.ok(paths(objects(mcp, 'Ingress')[0]).includes('Exact /mcp'));
		for (const o of [out, plain])
			for (const v of objects(o, 'HTTPRoute')[0].spec.rules.flatMap((r) => r.matches.map((m) => m.path.value)))
				assert.ok(!['/metrics', '/mcp', '/healthz', '/readyz'].includes(v), v);
	});

	test('metrics: a ServiceMonitor over a headless Service of every pod, never through the Ingress', () => {
		const out = mustRender({ files: ['ci/gateway-monitoring-netpol-values.yaml'] });
		const sm = objects(out, 'ServiceMonitor')[0];
		const svc = objects(out, 'Service').find((s) => s.metadata.name === 'pb-perfbot-metrics');
		assert.equal(svc.spec.clusterIP, 'None');
		for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels[k], v);
		assert.deepEqual(sm.spec.endpoints.map((e) => [e.port, e.path]), [['http', '/metrics']]);
		assert.equal(sm.metadata.labels.release, 'prometheus');
		for (const d of objects(out, 'Deployment'))
			for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(d.spec.template.metadata.labels[k], v);
	});
});

describe('network policy', () => {
	test('egress: DNS, the release\'s pods, GitHub, Anthropic for workers, the database; nothing open-ended', () => {
		const out = mustRender({ files: ['ci/gateway-monitoring-netpol-values.yaml'] });
		const pols = objects(out, 'NetworkPolicy');
		assert.deepEqual(pols.map((p) => p.metadata.name).sort(), ['pb-perfbot-migrate', 'pb-perfbot-web', 'pb-perfbot-worker']);
		const cidrs = (p) => p.spec.egress.flatMap((r) => (r.to ?? []).filter((t) => t.ipBlock).map((t) => t.ipBlock.cidr));
		for (const p of pols) {
			assert.deepEqual(p.spec.policyTypes, ['Ingress', 'Egress']);
			for (const r of p.spec.egress) {
				assert.ok(r.to?.length > 0, `${p.metadata.name}: an egress rule to anywhere`);
				assert.ok(r.ports?.length > 0, `${p.metadata.name}: an egress rule on every port`);
			}
			assert.ok(p.spec.egress[0].ports.some((x) => x.port === 53 && x.protocol === 'UDP'));
			assert.ok(cidrs(p).includes('10.20.0.0/16'), `${p.metadata.name}: no database`);
		}
		const web = pols.find((p) => p.metadata.name.endsWith('-web'));
		const worker = pols.find((p) => p.metadata.name.endsWith('-worker'));
		const migrate = pols.find((p) => p.metadata.name.endsWith('-migrate'));
		assert.ok(cidrs(web).includes('140.82.112.0/20'));
		assert.ok(!cidrs(web).includes('160.79.104.0/23'), 'web reaches Anthropic');
		assert.ok(cidrs(worker).includes('160.79.104.0/23'));
		assert.deepEqual(cidrs(migrate), ['10.20.0.0/16']);
		assert.deepEqual(migrate.spec.ingress, []);
		for (const p of [web, worker]) {
			assert.deepEqual(p.spec.ingress.map((r) => r.ports), [[{ port: 'http', protocol: 'TCP' }]]);
			assert.equal(p.spec.ingress[0].from.length, 3);
		}
		const db = worker.spec.egress.find((r) => r.to.some((t) => t.ipBlock?.cidr === '10.20.0.0/16'));
		assert.deepEqual(db.ports, [{ port: 5432, protocol: 'TCP' }]);
	});
});

describe('rolling on change', () => {
	const annotations = (out) => Object.fromEntries(objects(out, 'Deployment').map((d) => [d.metadata.name, d.spec.template.metadata.annotations]));

	test('checksum/config changes with a setting and only then; checksum/secret with a secret', () => {
		const files = ['ci/split-postgres-ingress-values.yaml'];
		const a = annotations(mustRender({ files }));
		const same = annotations(mustRender({ files }));
		const setting = annotations(mustRender({ files, set: ['config.LOG_LEVEL=debug'] }));
		const scale = annotations(mustRender({ files, set: ['web.replicas=5'] }));
		const secret = annotations(mustRender({ files, set: ['secret.values.webhookSecret=rotated'] }));
		assert.deepEqual(Object.keys(a).sort(), ['pb-perfbot-web', 'pb-perfbot-worker']);
		for (const name of Object.keys(a)) {
			assert.match(a[name]['checksum/config'], /^[0-9a-f]{64}$/);
			assert.deepEqual(same[name], a[name]);
			assert.notEqual(setting[name]['checksum/config'], a[name]['checksum/config'], `${name}: a new setting does not roll`);
			assert.equal(setting[name]['checksum/secret'], a[name]['checksum/secret']);
			assert.deepEqual(scale[name], a[name], `${name}: scaling rolls the pods`);
			assert.notEqual(secret[name]['checksum/secret'], a[name]['checksum/secret'], `${name}: a new secret does not roll`);
			assert.equal(secret[name]['checksum/config'], a[name]['checksum/config']);
		}
		// with an existing Secret the chart cannot read, a change of which keys it reads rolls the pods
		const ex = ['ci/gateway-monitoring-netpol-values.yaml'];
		const b = annotations(mustRender({ files: ex }));
		const b2 = annotations(mustRender({ files: ex, set: ['secret.keys.webhookSecret=hook-secret-2'] }));
		for (const name of Object.keys(b)) assert.notEqual(b2[name]['checksum/secret-ref'], b[name]['checksum/secret-ref']);
	});
});

describe('secrets', () => {
	test('an existing Secret is read by the key names given, each setting where it is needed', () => {
		const out = mustRender({ files: ['ci/gateway-monitoring-netpol-values.yaml'] });
		assert.equal(objects(out, 'Secret').length, 0);
		const refs = (d) => Object.fromEntries(Object.entries(envOf(d.spec.template.spec.containers[0]))
			.filter(([, e]) => e.valueFrom?.secretKeyRef).map(([n, e]) => [n, `${e.valueFrom.secretKeyRef.name}:${e.valueFrom.secretKeyRef.key}`]));
		const web = byName(out, 'Deployment', '-web');
		const worker = byName(out, 'Deployment', '-worker');
		assert.deepEqual(refs(web), {
			WEBHOOK_SECRET: 'perfbot-credentials:hook-secret',
			GITHUB_CLIENT_SECRET: 'perfbot-credentials:oauth-secret',
			DATABASE_URL: 'perfbot-credentials:pg-url',
		});
		assert.deepEqual(refs(worker), { ...refs(web), ANTHROPIC_API_KEY: 'perfbot-credentials:claude-key' });
		for (const d of [web, worker]) {
			const key = podSpec(d).volumes.find((v) => v.name === 'private-key').secret;
			assert.deepEqual(key, { secretName: 'perfbot-credentials', defaultMode: 0o440, items: [{ key: 'app-key', path: 'private-key.pem' }] });
			const c = d.spec.template.spec.containers[0];
			assert.equal(envOf(c).PRIVATE_KEY_PATH.value, '/var/run/secrets/perfbot/private-key.pem');
			assert.ok(c.volumeMounts.some((m) => m.name === 'private-key' && m.mountPath === '/var/run/secrets/perfbot' && m.readOnly));
		}
	});

	test('a chart-made Secret holds the values given under the key names given', () => {
		const out = mustRender({ files: ['ci/split-postgres-ingress-values.yaml'], set: ['secret.keys.databaseUrl=pg'] });
		const s = objects(out, 'Secret')[0];
		const data = Object.fromEntries(Object.entries(s.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
		assert.equal(data.pg, 'postgres://perfbot:trial@postgres.db.svc:5432/perfbot');
		assert.equal(data['webhook-secret'], 'trial-webhook-secret');
		assert.equal(data['webhook-secret-old'], undefined);
		const web = byName(out, 'Deployment', '-web');
		const env = envOf(web.spec.template.spec.containers[0]);
		assert.deepEqual(env.DATABASE_URL.valueFrom.secretKeyRef, { name: 'pb-perfbot-secrets', key: 'pg' });
		assert.deepEqual(env.PRIVATE_KEY.valueFrom.secretKeyRef, { name: 'pb-perfbot-secrets', key: 'private-key.pem' });
		assert.equal(env.PRIVATE_KEY_PATH, undefined);
	});
});

describe('refusals', () => {
	const cases = [
		['split mode on SQLite', { set: ['mode=split'] }, /mode: split .* needs a shared store: set database.type=postgres/],
		['several replicas on SQLite', { set: ['all.replicas=2'] }, /all.replicas: SQLite is one file/],
		['PostgreSQL without a Secret', { set: ['database.type=postgres'] }, /database.type=postgres: DATABASE_URL comes from a Secret: set secret.existingSecret/],
		['a chart-made Secret without the webhook secret', { set: ['secret.create=true', 'secret.values.privateKey=pem'] }, /secret.values.webhookSecret: a chart-made Secret needs the webhook secret/],
		['a chart-made Secret without the private key', { set: ['secret.create=true', 'secret.values.webhookSecret=w'] }, /secret.values.privateKey: a chart-made Secret needs the App's private key/],
		['PostgreSQL with a chart-made Secret without the URL', { files: ['ci/split-postgres-ingress-values.yaml'], set: ['secret.values.databaseUrl=null'] }, /secret.values.databaseUrl: database.type=postgres with a chart-made Secret needs the PostgreSQL URL/],
		['a database URL that is not PostgreSQL\'s', { files: ['ci/split-postgres-ingress-values.yaml'], set: ['secret.values.databaseUrl=sqlite:/x.db'] }, /secret.values.databaseUrl: a PostgreSQL URL starts with postgres:\/\//],
		['an empty key name for a required secret', { files: ['ci/gateway-monitoring-netpol-values.yaml'], set: ['secret.keys.webhookSecret='] }, /secret.keys.webhookSecret: the Secret's key holding WEBHOOK_SECRET cannot be empty/],
		['an Ingress without hosts', { set: ['ingress.enabled=true'] }, /ingress.hosts: the Ingress needs at least one host name/],
		['an HTTPRoute without a Gateway', { set: ['httpRoute.enabled=true'] }, /httpRoute.parentRefs: the HTTPRoute needs the Gateway/],
		['a NetworkPolicy that does not name the database', { files: ['ci/gateway-monitoring-netpol-values.yaml'], set: ['networkPolicy.database.cidrs=null'] }, /networkPolicy.database: with database.type=postgres the policy must name the database/],
		['a drain longer than the pod\'s grace period', { files: ['ci/split-postgres-ingress-values.yaml'], set: ['config.SHUTDOWN_GRACE_SECONDS=50'] }, /config.SHUTDOWN_GRACE_SECONDS \(50\) must stay below web.terminationGracePeriodSeconds \(45\)/],
		['one claim for several workers', { files: ['ci/split-postgres-ingress-values.yaml'], set: ['persistence.type=pvc'] }, /persistence.type=pvc: one ReadWriteOnce claim cannot serve several worker replicas/],
	];
	for (const [label, opts, re] of cases) {
		test(`${label}: the render fails, naming the value to set`, () => {
			const out = render(opts);
			assert.ok(out.error, 'rendered');
			assert.match(out.error, /^Error: execution error at \(perfbot\/templates\/[a-z-]+\.yaml:\d+:\d+\): /);
			assert.match(out.error, re);
		});
	}
});

describe('documentation', () => {
	test('the chart README lists every value of values.yaml', () => {
		const readme = fs.readFileSync(path.join(CHART, 'README.md'), 'utf8');
		const opaque = new Set(['resources', 'seccompProfile', 'appArmorProfile']);
		const { global, ...values } = mustRender().values; // global: Helm's, not the chart's
		const leaves = [];
		const walk = (v, at) => {
			const last = at.split('.').pop();
			if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length && !opaque.has(last))
				for (const [k, x] of Object.entries(v)) walk(x, at ? `${at}.${k}` : k);
			else leaves.push(at);
		};
		assert.deepEqual(global, {});
		walk(values, '');
		assert.ok(leaves.length > 100, `${leaves.length} values`);
		const missing = leaves.filter((p) => !readme.includes(`\`${p}\``));
		assert.deepEqual(missing, [], `not in charts/perfbot/README.md: ${missing.join(', ')}`);
	});

	test('the README\'s install command renders: split mode on PostgreSQL with an Ingress, workers on emptyDir', async () => {
		const readme = fs.readFileSync(path.join(CHART, 'README.md'), 'utf8');
		const install = readme.match(/^helm install perfbot charts\/perfbot(?:[^\n]*\\\n)*[^\n]*/m);
		assert.ok(install, 'no helm install command in the README');
		const set = [...install[0].matchAll(/--set '?([^' \\\n]+)'?/g)].map((m) => m[1]);
		assert.ok(set.length >= 6, set.join(' '));
		const out = mustRender({ set });
		assert.deepEqual(valuesErrors(out.values), []);
		await assertValidObjects(out);
		assert.deepEqual(objects(out, 'Deployment').map((d) => d.metadata.name).sort(), ['pb-perfbot-web', 'pb-perfbot-worker']);
		assert.deepEqual(objects(out, 'Ingress')[0].spec.rules.map((r) => r.host), ['perfbot.example.com']);
		assert.ok(podSpec(byName(out, 'Deployment', '-worker')).volumes.find((v) => v.name === 'data').emptyDir);
		assert.equal(objects(out, 'PersistentVolumeClaim').length, 0);
	});

	test('every setting of base/config.c is a value or set by the chart, and no secret is a plain setting', () => {
		const src = fs.readFileSync(path.join(ROOT, 'base/config.c'), 'utf8');
		const names = [...src.matchAll(/^\t\{ "([A-Z_]+)", K_/gm)].map((m) => m[1]);
		assert.ok(names.length > 30, `${names.length} settings in base/config.c`);
		const config = Object.keys(mustRender().values.config);
		const byChart = ['HOST', 'PORT', 'DATA_DIR', 'DATABASE_URL', 'PERFBOT_ROLE']; // PERFBOT_ROLE: the chart passes --role
		const secrets = ['PRIVATE_KEY', 'PRIVATE_KEY_PATH', 'WEBHOOK_SECRET', 'WEBHOOK_SECRET_OLD', 'GITHUB_CLIENT_SECRET',
			'ANTHROPIC_API_KEY', 'PERFBOT_MANAGED_ENVIRONMENT_KEY'];
		const local = ['INSECURE_NO_SIGNATURE']; // local experiments only: never in a cluster
		for (const n of names) assert.ok(config.includes(n) || byChart.includes(n) || secrets.includes(n) || local.includes(n), `${n}: not covered by the chart`);
		for (const n of config) assert.ok(names.includes(n), `config.${n}: not a setting of base/config.c`);
		for (const n of secrets) assert.ok(!config.includes(n), `${n} among the plain settings`);
	});
});

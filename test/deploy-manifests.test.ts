// The Dockerfile and the Kubernetes manifests (deploy/kubernetes/) cannot be
// built or applied here (no Docker engine, no cluster), so this test parses
// them and checks them against the product, so that they cannot go stale
// silently:
// - every command they run exists: `npm run X` is a package.json script, and
//   the file that script (or a plain `node …` command) runs is there; the
//   image's default command is what `npm start` runs; every module loaded
//   with `--import` is a production dependency (the image has no devDependencies);
// - every SOFTSERVE_* variable they set (Dockerfile ENV, ConfigMap, container
//   env) is one server/config.ts reads, and the values they give parse
//   (loadSettings on each container's whole environment);
// - every probe path is a route of the process the container runs, on the
//   port that process listens on (its settings), and the Service reaches it;
// - every file the Dockerfile copies exists and is not excluded by
//   .dockerignore; every Secret key and ConfigMap a container names exists.
// Plus the fleet's rules: serve replicas on PostgreSQL with training off, a
// grace period that covers the drain, a trainer memory limit above the job
// budget.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Dockerfile } from 'dockerfile-ast';
import { parseAllDocuments } from 'yaml';

import { DEFAULT_CONFIG, loadSettings, type Settings } from '../server/config.ts';
import { healthRoutes } from '../server/routes/system.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const K8S_DIR = join(ROOT, 'deploy', 'kubernetes');

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};

/** The variables the server reads: every 'SOFTSERVE_…' literal in server/config.ts, the one place settings are read. */
const CONFIG_VARS = new Set([...readFileSync(join(ROOT, 'server', 'config.ts'), 'utf8').matchAll(/'(SOFTSERVE_[A-Z0-9_]+)'/g)].map((m) => m[1]!));

// ---- commands ----------------------------------------------------------------

/** Splits a package.json script into words (the scripts here use no quoting). */
function words(script: string): string[] {
  return script.trim().split(/\s+/);
}

/**
 * Resolves a container command to the TypeScript/JavaScript file Node runs,
 * checking on the way that every script exists, every `--import` module is a
 * production dependency and the file is there. Returns the file (relative to
 * the repository).
 */
function entryOf(argv: string[]): string {
  assert.ok(argv.length > 0, 'an empty command');
  if (argv[0] === 'npm') {
    assert.ok(argv[1] === 'run' || argv[1] === 'start', `npm ${argv[1]}: only "npm run <script>" and "npm start" are used`);
    const name = argv[1] === 'start' ? 'start' : argv[2]!;
    const script = pkg.scripts[name];
    assert.ok(script !== undefined, `"npm run ${name}": package.json has no script "${name}" (scripts: ${Object.keys(pkg.scripts).join(', ')})`);
    assert.equal(argv.length, argv[1] === 'start' ? 2 : 3, `extra arguments after npm run ${name}`);
    return entryOf(words(script));
  }
  assert.equal(argv[0], 'node', `a command that is neither npm nor node: ${argv.join(' ')}`);
  let i = 1;
  while (i < argv.length && argv[i]!.startsWith('-')) {
    if (argv[i] === '--import') {
      const mod = argv[i + 1]!;
      assert.ok(pkg.dependencies[mod] !== undefined, `node --import ${mod}: ${mod} must be a production dependency (the image installs with --omit=dev)`);
      i += 2;
    } else {
      i += 1;
    }
  }
  const file = argv[i];
  assert.ok(file !== undefined, `no file to run in: ${argv.join(' ')}`);
  assert.ok(existsSync(join(ROOT, file)), `${argv.join(' ')}: ${file} does not exist`);
  return file;
}

// ---- the processes, by the file they run ------------------------------------------

interface Role {
  name: string;
  /** The port it listens on with these settings; null: no listener. */
  port(s: Settings): number | null;
  /** The HTTP paths it answers (for probes). */
  paths: string[];
}

/** The paths a trainer process answers: its small listener (server/trainer.ts) compares the request path with each. */
function trainerPaths(): string[] {
  return [...readFileSync(join(ROOT, 'server', 'trainer.ts'), 'utf8').matchAll(/path === '(\/[A-Za-z0-9/_-]*)'/g)].map((m) => m[1]!);
}

function roles(): Map<string, Role> {
  const map = new Map<string, Role>();
  const servePaths = Object.keys(healthRoutes(() => null).openapi!.paths!);
  map.set(entryOf(['npm', 'start']), { name: 'serve', port: (s) => s.server.port, paths: servePaths });
  map.set(entryOf(['npm', 'run', 'trainer']), { name: 'trainer', port: (s) => s.training.trainerPort, paths: trainerPaths() });
  map.set(entryOf(['npm', 'run', 'migrate']), { name: 'migrate', port: () => null, paths: [] });
  return map;
}

function checkVariable(name: string, where: string): void {
  assert.ok(CONFIG_VARS.has(name), `${where} sets ${name}, which server/config.ts does not read`);
}

// ---- the Dockerfile -----------------------------------------------------------------

interface Image {
  env: Record<string, string>;
  cmd: string[];
  exposed: number[];
  healthcheck: string;
}

function parseDockerfile(): { df: Dockerfile; image: Image } {
  const df = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  // Stages in order, each with its instructions; the image is the last stage, which may build on earlier ones.
  const stages: Array<{ name: string | null; base: string; instructions: ReturnType<Dockerfile['getInstructions']> }> = [];
  for (const ins of df.getInstructions()) {
    if (ins.getKeyword() === 'FROM') {
      const args = ins.getArguments().map((a) => a.getValue());
      stages.push({ base: args[0]!, name: args[2] ?? null, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push(ins);
    }
  }
  const chain: typeof stages = [];
  for (let s = stages.at(-1); s; s = stages.find((t) => t.name === s!.base)) chain.unshift(s);
  const image: Image = { env: {}, cmd: [], exposed: [], healthcheck: '' };
  for (const stage of chain) {
    for (const ins of stage.instructions) {
      const k = ins.getKeyword();
      if (k === 'ENV') {
        for (const p of df.getENVs().find((e) => e.getRange().start.line === ins.getRange().start.line)!.getProperties()) image.env[p.getName()] = p.getValue() ?? '';
      } else if (k === 'CMD') {
        image.cmd = JSON.parse(ins.getRawArgumentsContent() ?? '[]') as string[];
      } else if (k === 'EXPOSE') {
        image.exposed = ins.getArguments().map((a) => Number(a.getValue()));
      } else if (k === 'HEALTHCHECK') {
        image.healthcheck = ins.getRawArgumentsContent() ?? '';
      }
    }
  }
  return { df, image };
}

/** .dockerignore's patterns (plain names and `*.ext` here). */
function dockerIgnored(path: string): boolean {
  const file = join(ROOT, '.dockerignore');
  if (!existsSync(file)) return false;
  const patterns = readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const top = path.replace(/^\.\//, '').split('/')[0]!;
  return patterns.some((p) => p === top || p === path || (p.startsWith('*.') && path.endsWith(p.slice(1))));
}

// ---- the manifests ----------------------------------------------------------------

type Obj = Record<string, any>;

function manifests(): Array<{ file: string; doc: Obj }> {
  const out: Array<{ file: string; doc: Obj }> = [];
  for (const file of readdirSync(K8S_DIR).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const d of parseAllDocuments(readFileSync(join(K8S_DIR, file), 'utf8'))) {
      assert.deepEqual(d.errors, [], `${file}: YAML errors`);
      const doc = d.toJS() as Obj | null;
      if (doc) out.push({ file, doc });
    }
  }
  return out;
}

function byKind(docs: Array<{ file: string; doc: Obj }>, kind: string): Array<{ file: string; doc: Obj }> {
  return docs.filter((d) => d.doc.kind === kind);
}

/** A Kubernetes memory quantity in MiB. */
function mebibytes(q: string): number {
  const m = /^(\d+)(Mi|Gi)$/.exec(q);
  assert.ok(m, `memory quantity ${q}: use Mi or Gi`);
  return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
}

function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

// ---- the tests ----------------------------------------------------------------

describe('Dockerfile', () => {
  it('runs what npm start runs, with tsx (a production dependency) and an existing entry file', () => {
    const { image } = parseDockerfile();
    assert.deepEqual(image.cmd, words(pkg.scripts['start']!), 'the image command and `npm start` differ');
    assert.equal(entryOf(image.cmd), 'server/main.ts');
  });

  it('sets only SOFTSERVE_* variables the server reads, with values that parse, and listens where it says', () => {
    const { image } = parseDockerfile();
    const softserve = Object.keys(image.env).filter((k) => k.startsWith('SOFTSERVE_'));
    assert.ok(softserve.length > 0);
    for (const name of softserve) checkVariable(name, 'the Dockerfile');
    const settings = loadSettings(image.env);
    assert.deepEqual(image.exposed, [settings.server.port], 'EXPOSE is not the port the server listens on');
    assert.equal(settings.server.port, DEFAULT_CONFIG.port, 'the image listens on another port than the documented default');
    assert.equal(settings.server.host, '0.0.0.0', 'in a container the server must listen on every interface');
    assert.match(image.healthcheck, /\/healthz/);
    const paths = Object.keys(healthRoutes(() => null).openapi!.paths!);
    for (const m of image.healthcheck.matchAll(/'(\/[a-z]+)'/g)) assert.ok(paths.includes(m[1]!), `HEALTHCHECK asks ${m[1]}, not a route`);
  });

  it('copies only files that exist and are not excluded by .dockerignore; --from names a stage or a documented build context', () => {
    const { df } = parseDockerfile();
    const stages = df.getFROMs().map((f) => f.getBuildStage()).filter((s): s is string => s !== null);
    const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    let copied = 0;
    for (const copy of df.getCOPYs()) {
      const from = copy.getFlags().find((f) => f.getName() === 'from')?.getValue();
      const sources = copy.getArguments().map((a) => a.getValue()).slice(0, -1);
      if (from) {
        assert.ok(stages.includes(from) || text.includes(`--build-context ${from}=`), `COPY --from=${from}: no such stage, and no build context documented`);
        continue;
      }
      for (const src of sources) {
        assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: no such file in the repository`);
        assert.ok(!dockerIgnored(src), `COPY ${src}: excluded by .dockerignore`);
        copied++;
      }
    }
    assert.ok(copied >= 5, `only ${copied} files copied`);
    // The image installs production dependencies only; what it runs must be among them.
    assert.match(text, /npm ci --omit=dev/);
    assert.ok(pkg.dependencies['tsx'] !== undefined, 'tsx must stay a runtime dependency: the image runs TypeScript with it');
  });

  it('runs as a user other than root', () => {
    const { df } = parseDockerfile();
    const users = df.getInstructions().filter((i) => i.getKeyword() === 'USER').map((i) => i.getArguments()[0]?.getValue());
    assert.ok(users.length > 0 && users.at(-1) !== 'root' && users.at(-1) !== '0', 'the image must not run as root');
  });
});

/**
 * Everything the manifests declare, each container resolved: its role, its whole
 * environment (image ENV, ConfigMaps, env, Secret values) and the settings the
 * product reads from it. Throws (an assertion) at the first thing that does not exist.
 */
function loadFleet() {
  const docs = manifests();
  const { image } = parseDockerfile();
  const roleOf = roles();
  const secrets = new Map(byKind(docs, 'Secret').map(({ doc }) => [doc.metadata.name as string, { ...(doc.stringData ?? {}) } as Record<string, string>]));
  const configMaps = new Map(byKind(docs, 'ConfigMap').map(({ doc }) => [doc.metadata.name as string, (doc.data ?? {}) as Record<string, string>]));
  const workloads = [...byKind(docs, 'Deployment'), ...byKind(docs, 'Job')];

  const containers = workloads.flatMap(({ file, doc }) => (doc.spec.template.spec.containers as Obj[]).map((c) => {
    const where = `${file} ${doc.metadata.name}/${c.name}`;
    const argv = [...((c.command as string[] | undefined) ?? image.cmd), ...((c.args as string[] | undefined) ?? [])];
    const entry = entryOf(argv);
    const role = roleOf.get(entry);
    assert.ok(role, `${where} runs ${entry}, which is none of serve, trainer, migrate`);
    const env: Record<string, string> = { ...image.env };
    for (const from of (c.envFrom ?? []) as Obj[]) {
      const cm = configMaps.get(from.configMapRef?.name);
      assert.ok(cm, `${where}: envFrom names ConfigMap ${from.configMapRef?.name}, which is not in the manifests`);
      Object.assign(env, cm);
    }
    for (const e of (c.env ?? []) as Obj[]) {
      checkVariable(e.name, where);
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) {
        const value = secrets.get(ref.name)?.[ref.key];
        assert.ok(value !== undefined, `${where}: ${e.name} comes from Secret ${ref.name} key ${ref.key}, which is not in the manifests`);
        env[e.name] = value;
      } else {
        assert.equal(typeof e.value, 'string', `${where}: ${e.name} needs a string value (quote numbers and "off")`);
        env[e.name] = e.value;
      }
    }
    let settings: Settings;
    try {
      settings = loadSettings(env);
    } catch (err) {
      assert.fail(`${where}: ${(err as Error).message}`);
    }
    return { where, doc, spec: doc.spec.template.spec as Obj, c, role: role.name, roleInfo: role, env, settings };
  }));
  return { docs, secrets, configMaps, containers };
}

describe('Kubernetes manifests', () => {
  // Loaded inside each test (not at collection), so a missing script or variable fails tests, not the suite's set-up.
  let loaded: ReturnType<typeof loadFleet> | undefined;
  const fleet = (): ReturnType<typeof loadFleet> => (loaded ??= loadFleet());

  it('has the fleet: a serve Deployment, a trainer Deployment, a migrate Job, a Service, a Secret', () => {
    const { docs, secrets, containers } = fleet();
    const kinds = (role: string) => containers.filter((c) => c.role === role).map((c) => c.doc.kind);
    assert.deepEqual(kinds('serve'), ['Deployment']);
    assert.deepEqual(kinds('trainer'), ['Deployment']);
    assert.deepEqual(kinds('migrate'), ['Job']);
    assert.equal(byKind(docs, 'Service').length, 1);
    assert.ok(secrets.has('softserve'));
  });

  it('runs commands that exist, and sets only variables server/config.ts reads, to values that parse', () => {
    const { configMaps, containers } = fleet();
    for (const [name, data] of configMaps) for (const key of Object.keys(data)) checkVariable(key, `ConfigMap ${name}`);
    // loadFleet() resolved every command and parsed every environment; this checks there were some.
    assert.ok(containers.length >= 3);
    for (const c of containers) assert.ok(c.settings.server.databaseUrl, `${c.where}: every role of the fleet needs SOFTSERVE_DATABASE_URL`);
  });

  it('probes real routes on the port the process listens on', () => {
    const { containers } = fleet();
    let probes = 0;
    for (const { where, c, roleInfo, settings } of containers) {
      const listening = roleInfo.port(settings);
      const ports = (c.ports ?? []) as Obj[];
      if (listening === null) {
        assert.deepEqual(ports, [], `${where}: ${roleInfo.name} listens on nothing`);
        continue;
      }
      assert.deepEqual(ports.map((p) => p.containerPort), [listening], `${where}: containerPort is not the port ${roleInfo.name} listens on (${listening})`);
      for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const probe = c[kind]?.httpGet as Obj | undefined;
        if (!probe) continue;
        probes++;
        const port = typeof probe.port === 'number' ? probe.port : ports.find((p) => p.name === probe.port)?.containerPort;
        assert.equal(port, listening, `${where} ${kind}: port ${probe.port} is not where ${roleInfo.name} listens`);
        assert.ok(roleInfo.paths.includes(probe.path), `${where} ${kind}: ${probe.path} is not a route of ${roleInfo.name} (${roleInfo.paths.join(', ')})`);
      }
    }
    const serve = containers.find((c) => c.role === 'serve')!;
    assert.equal(serve.c.livenessProbe?.httpGet?.path, '/healthz', 'serve liveness is /healthz');
    assert.equal(serve.c.readinessProbe?.httpGet?.path, '/readyz', 'serve readiness is /readyz');
    assert.ok(probes >= 4, `only ${probes} probes`);
  });

  it('the Service and the disruption budget reach the serve pods on their port', () => {
    const { docs, containers } = fleet();
    const serve = containers.find((c) => c.role === 'serve')!;
    const podLabels = serve.doc.spec.template.metadata.labels as Record<string, string>;
    for (const { doc } of byKind(docs, 'Service')) {
      assert.ok(labelsMatch(doc.spec.selector, podLabels), `Service ${doc.metadata.name} selects no serve pod`);
      for (const p of doc.spec.ports as Obj[]) {
        const target = typeof p.targetPort === 'number' ? p.targetPort : (serve.c.ports as Obj[]).find((q) => q.name === p.targetPort)?.containerPort;
        assert.equal(target, serve.settings.server.port, `Service port ${p.port} does not reach the server`);
      }
    }
    for (const { doc } of byKind(docs, 'PodDisruptionBudget')) assert.ok(labelsMatch(doc.spec.selector.matchLabels, podLabels));
  });

  it('keeps the fleet rules: serve trains nothing, the grace period covers the drain, a trainer has room for its job', () => {
    const { containers } = fleet();
    for (const c of containers.filter((x) => x.role === 'serve')) {
      assert.equal(c.settings.training.enabled, false, `${c.where}: serve replicas run SOFTSERVE_TRAINING=off (trainers train)`);
      assert.ok(c.settings.server.adminKey, `${c.where}: the admin key comes from the Secret (no first-run key per replica)`);
      const preStopMs = c.c.lifecycle?.preStop?.exec?.command?.[0] === 'sleep' ? Number(c.c.lifecycle.preStop.exec.command[1]) * 1000 : 0;
      const graceMs = Number(c.spec.terminationGracePeriodSeconds ?? 30) * 1000;
      assert.ok(graceMs > preStopMs + c.settings.serving.drainTimeoutMs,
        `${c.where}: terminationGracePeriodSeconds (${graceMs} ms) must exceed preStop (${preStopMs} ms) + SOFTSERVE_DRAIN_TIMEOUT_MS (${c.settings.serving.drainTimeoutMs} ms)`);
    }
    for (const c of containers.filter((x) => x.role === 'trainer')) {
      const limit = c.c.resources?.limits?.memory as string | undefined;
      assert.ok(limit, `${c.where}: a trainer needs a memory limit`);
      assert.ok(mebibytes(limit) > c.settings.training.memoryMb, `${c.where}: memory limit ${limit} is not above SOFTSERVE_TRAINING_MEMORY_MB (${c.settings.training.memoryMb})`);
    }
  });

  it('the kustomization lists files that exist', () => {
    const docs = manifests();
    const k = byKind(docs, 'Kustomization');
    assert.equal(k.length, 1);
    for (const r of k[0]!.doc.resources as string[]) assert.ok(existsSync(join(K8S_DIR, r)), `kustomization names ${r}, which does not exist`);
  });
});

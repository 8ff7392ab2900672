// Bundles the application for the device bundle (scripts/device/pack.sh):
// the server (server/main.ts), every worker-thread entry the product code
// starts, the device scripts (scripts/device/cli.ts) and the load generator
// (loadtest/run.ts), each into one plain-JS ES module under --out. Native
// packages (onnxruntime-node, better-sqlite3) stay external: pack.sh ships
// them in a minimal node_modules beside the bundle.
//
// Worker entries: the product starts its workers with
// `new Worker(new URL('./worker-entry.mjs', import.meta.url))`, and those
// .mjs files register tsx and import the TypeScript worker. In one bundle
// every module shares the bundle's import.meta.url, so two `./worker-entry.mjs`
// would collide. This build finds every such reference in the product code,
// bundles each referenced .mjs as its own entry named `<folder>-<file>`
// (e.g. inference-worker-entry.mjs) with tsx's `register` replaced by a no-op
// (the bundle is plain JS already), and rewrites the reference in the bundled
// copy only: the repository's behaviour does not change.
//
// Usage: node --import tsx scripts/device/bundle.ts --out DIR

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** The product's folders whose code the server bundle holds (DESIGN.md's layout). */
const PRODUCT_DIRS = ['server', 'prompts', 'models', 'kernels'];
const WORKER_URL = /new URL\(\s*(['"])(\.\/[\w.-]+\.mjs)\1\s*,\s*import\.meta\.url\s*\)/g;

interface WorkerRef { source: string; spec: string; entry: string; outName: string }

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|mjs)$/.test(name)) out.push(p);
  }
  return out;
}

/** Every `new URL('./x.mjs', import.meta.url)` in the product code, with the name its target gets in the bundle. */
export function findWorkerRefs(repo: string = REPO): WorkerRef[] {
  const refs: WorkerRef[] = [];
  for (const dir of PRODUCT_DIRS) {
    for (const source of walk(join(repo, dir))) {
      for (const m of readFileSync(source, 'utf8').matchAll(WORKER_URL)) {
        const entry = resolve(dirname(source), m[2]!);
        refs.push({ source, spec: m[2]!, entry, outName: `${basename(dirname(entry))}-${basename(entry)}` });
      }
    }
  }
  const byName = new Map<string, string>();
  for (const r of refs) {
    const seen = byName.get(r.outName);
    if (seen !== undefined && seen !== r.entry) throw new Error(`two worker entries would both be bundled as ${r.outName}: ${seen}, ${r.entry}`);
    byName.set(r.outName, r.entry);
  }
  return refs;
}

// CommonJS dependencies (express, pino, ...) call require() and read
// __dirname; an ES module output has neither, so every bundle defines them.
const BANNER = [
  "import { createRequire as __softserveCreateRequire } from 'node:module';",
  "import { fileURLToPath as __softserveFileURLToPath } from 'node:url';",
  "import { dirname as __softserveDirname } from 'node:path';",
  'const require = __softserveCreateRequire(import.meta.url);',
  'const __filename = __softserveFileURLToPath(import.meta.url);',
  'const __dirname = __softserveDirname(__filename);',
].join('\n');

function workerPlugin(refs: WorkerRef[]): esbuild.Plugin {
  const bySource = new Map<string, WorkerRef[]>();
  for (const r of refs) bySource.set(r.source, [...(bySource.get(r.source) ?? []), r]);
  return {
    name: 'softserve-workers',
    setup(build) {
      build.onResolve({ filter: /^tsx\/esm\/api$/ }, () => ({ path: 'tsx-esm-api', namespace: 'softserve-stub' }));
      build.onLoad({ filter: /.*/, namespace: 'softserve-stub' }, () => ({
        contents: '// The bundle is plain JS: nothing to register.\nexport function register() { return () => {}; }\n',
        loader: 'js',
      }));
      build.onLoad({ filter: /\.(ts|mjs)$/ }, (args) => {
        const mine = bySource.get(args.path);
        if (!mine) return undefined;
        let text = readFileSync(args.path, 'utf8');
        for (const r of mine) text = text.split(`'${r.spec}'`).join(`'./${r.outName}'`).split(`"${r.spec}"`).join(`"./${r.outName}"`);
        return { contents: text, loader: args.path.endsWith('.ts') ? 'ts' : 'js', resolveDir: dirname(args.path) };
      });
    },
  };
}

export async function bundle(outDir: string): Promise<{ files: string[]; workers: WorkerRef[] }> {
  const workers = findWorkerRefs();
  const entryPoints: Record<string, string> = {
    main: join(REPO, 'server/main.ts'),
    device: join(REPO, 'scripts/device/cli.ts'),
    loadtest: join(REPO, 'loadtest/run.ts'),
  };
  for (const w of workers) entryPoints[w.outName.replace(/\.mjs$/, '')] = w.entry;
  const result = await esbuild.build({
    entryPoints,
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['onnxruntime-node', 'better-sqlite3'],
    banner: { js: BANNER },
    plugins: [workerPlugin(workers)],
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
  });
  const files = Object.keys(result.metafile.outputs).map((f) => relative(outDir, resolve(f)));
  // A reference the rewrite missed would start a worker file the bundle lacks.
  for (const f of files) {
    const text = readFileSync(join(outDir, f), 'utf8');
    for (const m of text.matchAll(WORKER_URL)) {
      if (!files.includes(m[2]!.slice(2))) throw new Error(`${f} starts ${m[2]}, which the bundle does not hold`);
    }
  }
  return { files, workers };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? process.argv[i + 1] : undefined;
  if (!out) throw new Error('usage: bundle.ts --out DIR');
  const { files, workers } = await bundle(resolve(out));
  for (const w of workers) process.stderr.write(`worker ${relative(REPO, w.source)} -> ${w.outName}\n`);
  process.stdout.write(`${files.join('\n')}\n`);
}

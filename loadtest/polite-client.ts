// The isolation bench's polite tenant (loadtest/isolation.ts), in a process
// of its own: in the bench process, the flooders' client work (up to 1,000
// connections) would share the event loop that sends the polite requests and
// reads their clock, and delay both. Started with fork(); told what to send
// and which phase it is in over IPC; answers with every latency at the end.

import { HttpClient } from './client.ts';
import { rng } from './generator.ts';

export type ToPolite =
  | { t: 'start'; url: string; path: string; key: string; bodies: string[]; rate: number; seed: number }
  | { t: 'phase'; id: string | null }
  | { t: 'stop' };

/** One phase's answers: the status and milliseconds of each request sent in it, and when it was sent (ms into the phase). */
export interface PolitePhaseSamples { statuses: number[]; ms: number[]; sentAt: number[] }

export type FromPolite = { t: 'done'; phases: Record<string, PolitePhaseSamples> };

let phase: string | null = null;
let phaseStart = 0;
let on = true;
const phases: Record<string, PolitePhaseSamples> = {};

async function run(o: Extract<ToPolite, { t: 'start' }>): Promise<void> {
  const client = new HttpClient(o.url, { maxSockets: 64 });
  const rand = rng(o.seed);
  const pending = new Set<Promise<void>>();
  let i = 0;
  while (on) {
    await new Promise((r) => setTimeout(r, (-Math.log(1 - rand()) / o.rate) * 1000));
    if (!on) break;
    const id = phase;
    const sent = performance.now();
    const at = sent - phaseStart;
    const p = client.request('POST', o.path, { key: o.key, body: o.bodies[i++ % o.bodies.length]!, parse: false }).then((res) => {
      if (id === null) return;
      const s = (phases[id] ??= { statuses: [], ms: [], sentAt: [] });
      s.statuses.push(res.status);
      s.ms.push(performance.now() - sent);
      s.sentAt.push(at);
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }
  await Promise.all([...pending]);
  client.close();
  process.send!({ t: 'done', phases } satisfies FromPolite, () => process.exit(0));
}

process.on('message', (m: ToPolite) => {
  if (m.t === 'start') void run(m);
  else if (m.t === 'phase') {
    phase = m.id;
    phaseStart = performance.now();
  }
  else if (m.t === 'stop') on = false;
});

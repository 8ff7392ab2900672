// The floor under softserve's HTTP thread: a server that does only what any
// Node HTTP JSON service must do for a classify call (parse the request,
// read and JSON.parse its body, write a JSON answer of the same size), with
// nothing of softserve's. Like the real server it answers in bursts, at most
// BURST requests every EVERY_MS (a forward pass's worth), so that its
// sockets and event loop see the same rhythm. MODE=express puts the same
// work behind express, express.json() and res.json(), as softserve does.
// GET /cpu: this process's CPU and its main thread's (Linux), in ms.
// Nothing here but Node, express in express mode, and the server's own
// thread CPU reader (run with tsx, which costs nothing per request).

import http from 'node:http';
import { threadCpuMs } from '../server/thread-cpu.ts';

const BURST = Number(process.env.BURST ?? 34);
const EVERY_MS = Number(process.env.EVERY_MS ?? 55);
const MODE = process.env.MODE ?? 'node';

const cpu = () => {
  const u = process.cpuUsage();
  return { processMs: (u.user + u.system) / 1000, mainMs: threadCpuMs() };
};

/** An answer the size and shape of a single-input classify answer. */
const answer = (n) => ({
  task: 'sentiment', prompt: { name: 'p3', version: 1 }, request_id: `req_${n.toString(36).padStart(12, '0')}`,
  results: [{ label: 'positive', scores: { negative: 0.29731, positive: 0.70269 } }],
  batch_ids: [n >> 5], usage: { rows: 1, tokens: 74 },
});

const pending = [];
let answered = 0;
setInterval(() => {
  for (const send of pending.splice(0, BURST)) send(answer(answered++));
}, EVERY_MS);

let server;
if (MODE === 'express') {
  const { default: express } = await import('express');
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/cpu', (_req, res) => res.json(cpu()));
  app.post('/classify', express.json({ limit: '64kb' }), (req, res) => {
    if (!Array.isArray(req.body?.inputs)) return res.status(400).json({ error: 'inputs' });
    pending.push((body) => res.json(body));
  });
  server = http.createServer(app);
} else {
  server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/cpu') return json(res, cpu());
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { body = null; }
      if (!Array.isArray(body?.inputs)) { res.statusCode = 400; return res.end(); }
      pending.push((out) => json(res, out));
    });
  });
}

function json(res, value) {
  const text = JSON.stringify(value);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));

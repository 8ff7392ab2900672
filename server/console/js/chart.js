// Training curves with uPlot: training loss and held-out loss (left axis),
// held-out accuracy (right axis, 0-1) against the optimiser step, members of
// an ensemble job one after another. The container's data-points attribute
// says how many steps are plotted (tests and people can watch it grow).

import uPlot from '/console/vendor/uPlot.esm.js';

export function lossChart(container) {
  let plot = null;
  const width = () => Math.max(320, container.clientWidth || 900);
  const opts = {
    width: width(),
    height: 300,
    scales: { x: { time: false }, loss: { auto: true }, acc: { range: [0, 1] } },
    axes: [
      { label: 'step' },
      { scale: 'loss', label: 'loss' },
      { scale: 'acc', label: 'held-out accuracy', side: 1, grid: { show: false }, values: (_u, v) => v.map((x) => `${Math.round(x * 100)}%`) },
    ],
    series: [
      { label: 'step' },
      { label: 'training loss', scale: 'loss', stroke: '#2957c8', width: 2, spanGaps: true, points: { show: false } },
      { label: 'held-out loss', scale: 'loss', stroke: '#9a6200', width: 2, spanGaps: true, dash: [6, 4] },
      { label: 'held-out accuracy', scale: 'acc', stroke: '#1a7f46', width: 2, spanGaps: true, value: (_u, v) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(1)}%`) },
    ],
    legend: { live: true },
  };
  const onResize = () => { if (plot) plot.setSize({ width: width(), height: 300 }); };
  window.addEventListener('resize', onResize);
  return {
    /** points: [{x, train?, heldOutLoss?, heldOutAcc?}] */
    update(points) {
      const xs = points.map((p) => p.x);
      const data = [xs, points.map((p) => p.train ?? null), points.map((p) => p.heldOutLoss ?? null), points.map((p) => p.heldOutAcc ?? null)];
      container.dataset.points = String(xs.length);
      if (xs.length === 0) return;
      if (!plot) plot = new uPlot(opts, data, container);
      else plot.setData(data);
    },
    destroy() { window.removeEventListener('resize', onResize); plot?.destroy(); plot = null; },
  };
}

/**
 * The job's curve so far: held-out history (train loss, held-out loss and
 * accuracy at each evaluation) merged with the live training loss samples the
 * page saw while polling (`live`: Map step -> loss). x is the step counted
 * over all members.
 */
export function jobPoints(job, live) {
  const perMember = job.progress?.total_steps ?? 0;
  const byX = new Map();
  const at = (x) => { let p = byX.get(x); if (!p) { p = { x }; byX.set(x, p); } return p; };
  for (const [x, loss] of live) at(x).train = loss;
  for (const e of job.history ?? []) {
    const p = at((e.member - 1) * perMember + e.step);
    if (e.train_loss !== null) p.train = e.train_loss;
    p.heldOutLoss = e.held_out_loss;
    p.heldOutAcc = e.held_out_accuracy;
  }
  return [...byX.values()].sort((a, b) => a.x - b.x);
}

export function globalStep(job) {
  const p = job.progress;
  if (!p) return null;
  return (p.member - 1) * p.total_steps + p.step;
}

// ONNX Runtime (CPU, npm onnxruntime-node) side of tools/bench/compare.py.
//
//   node tools/bench/ort_run.mjs SPEC.json > RESULT.json
//
// SPEC: {"threads": T, "tasks": [TASK...]}; TENSOR = {"file", "dtype": float32|int64|int32, "shape"}.
//   {"name", "kind": "run", "onnx", "inputs": {name: TENSOR}, "output": "logits", "warmup", "reps",
//    "budget_s", "dump"}                       one session.run per repetition (forward, prefill)
//   {"name", "kind": "decode", "onnx", "inputs": {name: TENSOR} (tokens excluded: the state and pos),
//    "tokens": TENSOR int64 [steps, batch], "state_names": [...], ...}
//                                              `steps` session.run calls per repetition; each
//                                              feeds the outputs "new.<name>" back as "<name>"
// Every repetition starts from the same inputs. "dump" receives the output of the first (warmup)
// run: logits of every decode step, concatenated. Prints {"threads", "ort_version", "tasks":
// [{"name", "samples_s", "session_s", "error"?}]}.
import fs from 'node:fs';
import * as ort from 'onnxruntime-node';

const ARRAYS = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };

function loadTensor(t) {
  const buf = fs.readFileSync(t.file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  return new ort.Tensor(t.dtype, new ARRAYS[t.dtype](ab), t.shape);
}

function seconds(t0) {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

// Repetitions: at least minReps, at most reps, fewer when the warmup says budget_s would be exceeded.
function repCount(task, warmS) {
  const maxReps = task.reps ?? 5;
  const minReps = Math.min(task.min_reps ?? 3, maxReps);
  if (!task.budget_s || warmS <= 0) return maxReps;
  return Math.max(minReps, Math.min(maxReps, Math.floor(task.budget_s / warmS)));
}

async function runTask(task, threads) {
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(task.onnx, opts);
  const res = { name: task.name, session_s: seconds(t0) };
  const inputs = {};
  for (const [name, t] of Object.entries(task.inputs)) inputs[name] = loadTensor(t);
  const dumped = [];
  const once = async (record) => {
    if (task.kind === 'run') {
      const t = process.hrtime.bigint();
      const out = await session.run(inputs);
      const s = seconds(t);
      if (record) dumped.push(out[task.output].data);
      return s;
    }
    // decode: tokens [steps, batch]; the state flows from each step's outputs to the next inputs.
    const tok = loadTensorCached(task);
    const [steps, batch] = task.tokens.shape;
    const feeds = { ...inputs };
    const t = process.hrtime.bigint();
    for (let i = 0; i < steps; ++i) {
      feeds.tokens = new ort.Tensor('int64', tok.subarray(i * batch, (i + 1) * batch), [batch]);
      const out = await session.run(feeds);
      for (const name of task.state_names) feeds[name] = out['new.' + name];
      if (record) dumped.push(out.logits.data);
    }
    return seconds(t);
  };
  const warmup = task.warmup ?? 1;
  let warmS = 0;
  for (let r = 0; r < warmup; ++r) warmS = await once(r === 0 && !!task.dump);
  const reps = repCount(task, warmS);
  const samples = [];
  for (let r = 0; r < reps; ++r) samples.push(await once(warmup === 0 && r === 0 && !!task.dump));
  res.samples_s = samples;
  if (task.dump) {
    const total = dumped.reduce((n, a) => n + a.length, 0);
    const all = new Float32Array(total);
    let o = 0;
    for (const a of dumped) { all.set(a, o); o += a.length; }
    fs.writeFileSync(task.dump, Buffer.from(all.buffer));
  }
  if (typeof session.release === 'function') await session.release();
  return res;
}

const tokenCache = new Map();
function loadTensorCached(task) {
  if (!tokenCache.has(task.name)) tokenCache.set(task.name, loadTensor(task.tokens).data);
  return tokenCache.get(task.name);
}

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const threads = spec.threads ?? 1;
const out = { threads, ort_version: ort.env.versions?.node ?? 'unknown', tasks: [] };
for (const task of spec.tasks) {
  process.stderr.write(`ort_run: ${task.name} (threads ${threads})\n`);
  try {
    out.tasks.push(await runTask(task, threads));
  } catch (err) {
    out.tasks.push({ name: task.name, error: String(err && err.message ? err.message : err) });
  }
}
process.stdout.write(JSON.stringify(out, null, 1) + '\n');

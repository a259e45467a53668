// Read NumPy .npy and .npz files in the browser into nested arrays, for "Check your gradients".
// .npy: the NPY format (magic, version, a header dict with descr, fortran_order, shape).
// .npz: a zip of .npy members, stored (np.savez) or deflated (np.savez_compressed, read with
// DecompressionStream). Little- and big-endian floats and integers; no object arrays.

const DTYPES = { f8: [8, 'getFloat64'], f4: [4, 'getFloat32'], i8: [8, 'getBigInt64'], i4: [4, 'getInt32'],
  i2: [2, 'getInt16'], i1: [1, 'getInt8'], u8: [8, 'getBigUint64'], u4: [4, 'getUint32'], u2: [2, 'getUint16'],
  u1: [1, 'getUint8'], b1: [1, 'getUint8'] };

/** One .npy file's bytes -> {shape, data (nested arrays, or a number for shape [])}. */
export function parseNpy(buffer, name = 'array') {
  const bytes = new Uint8Array(buffer);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new Error(`${name} is not a .npy file`);
  const view = new DataView(buffer instanceof ArrayBuffer ? buffer : bytes.buffer, bytes.byteOffset);
  const major = bytes[6];
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = (/'descr':\s*'([^']+)'/.exec(header) || [])[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeText = (/'shape':\s*\(([^)]*)\)/.exec(header) || [])[1];
  if (!descr || shapeText === undefined) throw new Error(`${name}: unreadable .npy header`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const little = descr[0] !== '>';
  const kind = descr.replace(/^[<>|=]/, '');
  if (!DTYPES[kind]) throw new Error(`${name}: dtype ${descr} is not supported (save it as float64)`);
  const [size, getter] = DTYPES[kind];
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (offset + count * size > bytes.length) throw new Error(`${name}: the file is shorter than its shape says`);
  const flat = new Array(count);
  for (let k = 0; k < count; k++) flat[k] = Number(view[getter](offset + k * size, little));
  return { shape, data: nest(flat, shape, fortran) };
}

function nest(flat, shape, fortran) {
  if (shape.length === 0) return flat[0];
  const strides = shape.map((_, d) => (fortran ? shape.slice(0, d) : shape.slice(d + 1)).reduce((a, b) => a * b, 1));
  const build = (d, base) => Array.from({ length: shape[d] }, (_, j) => (d === shape.length - 1
    ? flat[base + j * strides[d]] : build(d + 1, base + j * strides[d])));
  return build(0, 0);
}

async function inflate(data) {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** An .npz's bytes -> {name: {shape, data}} (member names without ".npy"). */
export async function parseNpz(buffer, name = 'archive') {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) throw new Error(`${name} is not an .npz (zip) file`);
  const entries = view.getUint16(end + 10, true);
  let p = view.getUint32(end + 16, true);
  const out = {};
  for (let e = 0; e < entries; e++) {
    if (view.getUint32(p, true) !== 0x02014b50) throw new Error(`${name}: damaged zip directory`);
    const method = view.getUint16(p + 10, true);
    const csize = view.getUint32(p + 20, true);
    const nameLen = view.getUint16(p + 28, true); const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true); const local = view.getUint32(p + 42, true);
    const member = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    let data = bytes.subarray(dataStart, dataStart + csize);
    if (method === 8) data = await inflate(data);
    else if (method !== 0) throw new Error(`${name}: ${member} uses an unsupported compression`);
    const key = member.replace(/\.npy$/, '');
    out[key] = parseNpy(data.slice().buffer, `${name}:${member}`);
  }
  return out;
}

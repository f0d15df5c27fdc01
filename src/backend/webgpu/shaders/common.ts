// WGSL snippets shared by the webgpu kernels: the 1-D invocation index folded from a 2-D dispatch
// (maxComputeWorkgroupsPerDimension is 65535, so large element counts use y as well), workgroup
// reductions, and the f32 <-> storage conversions for each dtype.

/** Workgroup size of one-dimensional kernels. */
export const WG = 256;

/** Entry-point header of a 1-D kernel: `i` is the global element index (check it against n). */
export const MAIN_1D = /* wgsl */ `
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;`;

/** Entry-point header of a kernel with one workgroup per row: `row` and local index `lid`. */
export const MAIN_ROWS = /* wgsl */ `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;`;

/** Tree reductions over the workgroup (all invocations must call them, in uniform control flow). */
export const WG_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, ${WG}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { let o = red[lid + s]; if (o > red[lid]) { red[lid] = o; } }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn neg_inf() -> f32 { var b = 0xff800000u; return bitcast<f32>(b); }
`;

/** WGSL scalar type of a storage dtype. */
export function wgslType(dtype: 'f32' | 'i32'): string {
  return dtype;
}

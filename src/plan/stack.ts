// The software stack a run uses: the same hardware and layout run at different speeds under
// Megatron-LM 2021-23, DeepSpeed 2021-22 and the overlapped stacks of 2024+ (Megatron-Core with
// communication overlap, MegaScale, torchtitan). Each stack is a few physical switches (which
// communication hides behind computation) and one efficiency factor fitted on published runs.
export type Stack = 'megatron' | 'deepspeed-legacy' | 'overlapped';
export const STACKS: readonly Stack[] = ['megatron', 'deepspeed-legacy', 'overlapped'];

export interface StackProfile {
  /** fraction of tensor-parallel communication hidden behind GEMMs (userbuffers / async TP) */
  tpOverlap: number;
  /** pipeline send/receive hidden behind computation */
  ppOverlap: boolean;
  /** data-parallel gradient reduction overlapped with the backward of every micro-batch's last pass (false: only the last layer's) */
  dpOverlap: boolean;
  /** fraction of the expert all-to-all hidden behind computation */
  epOverlap: number;
}

export const STACK_PROFILES: Record<Stack, StackProfile> = {
  megatron: { tpOverlap: 0, ppOverlap: false, dpOverlap: true, epOverlap: 0 },
  'deepspeed-legacy': { tpOverlap: 0, ppOverlap: false, dpOverlap: false, epOverlap: 0 },
  overlapped: { tpOverlap: 0.8, ppOverlap: true, dpOverlap: true, epOverlap: 0.5 },
};

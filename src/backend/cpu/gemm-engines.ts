// Names and codes shared by the GEMM engine tuner, its probe child process and the addon: the
// shape classes the choice is made for (native/gemm.cc gemm_class decides which class a call is
// in) with the sample shapes timed for each, and the engine codes setGemmChoice takes.

export const GEMM_CLASSES = ['small', 'thin', 'large'] as const;
export type GemmClass = (typeof GEMM_CLASSES)[number];

export interface SampleShape { m: number; n: number; k: number; ta: boolean; tb: boolean }

// The three layouts a linear layer runs in training (forward x W^T, dX = dY W, dW = dY^T X).
const layouts = (m: number, n: number, k: number): SampleShape[] => [
  { m, n, k, ta: false, tb: true },
  { m, n, k, ta: false, tb: false },
  { m: n, n: k, k: m, ta: true, tb: false },
];

/** Sample shapes per class: small (m*n*k < 256^3), thin (a dimension < 512: d_model-sized layers), large. */
export const SAMPLE_SHAPES: Record<GemmClass, SampleShape[]> = {
  small: layouts(512, 128, 128),
  thin: layouts(2048, 384, 384),
  large: layouts(1024, 1024, 1024),
};

export const F32_ENGINES = { openblas: 1, onednn: 2 } as const;
export type F32Engine = keyof typeof F32_ENGINES;
export const BF16_ENGINES = { onednn: 1, widen: 2 } as const;
export type Bf16Engine = keyof typeof BF16_ENGINES;

export function classIndex(c: GemmClass): number {
  return GEMM_CLASSES.indexOf(c);
}

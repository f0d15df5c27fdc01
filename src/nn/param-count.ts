// Exact parameter counts of a ModelConfig, as the engine allocates them (the planner uses the same
// function, and a test checks it against the engine's real parameter list).
import { type ModelConfig, headDim, isGatedFfn, isMoeLayer } from './config.js';

export interface ParamCount {
  total: number;
  /** parameters touched by one token: all but the routed experts a token is not sent to */
  active: number;
  embedding: number;
  attention: number;
  ffnDense: number;
  experts: number;
  router: number;
  norms: number;
}

function ffnParams(c: ModelConfig, hidden: number): number {
  return (isGatedFfn(c.ffnKind) ? 3 : 2) * c.dModel * hidden;
}

export function countParams(c: ModelConfig): ParamCount {
  const d = c.dModel;
  const hd = headDim(c);
  const attnPerLayer = d * (c.heads * hd) + 2 * d * (c.kvHeads * hd) + c.heads * hd * d;
  const embedding = c.vocab * d * (c.tiedEmbeddings ? 1 : 2);
  let attention = 0, ffnDense = 0, experts = 0, router = 0, norms = d, activeExperts = 0;
  for (let i = 0; i < c.layers; i++) {
    attention += attnPerLayer;
    norms += 2 * d;
    if (isMoeLayer(c, i)) {
      const m = c.moe!;
      const one = ffnParams(c, m.expertFfnHidden);
      experts += (m.experts + m.sharedExperts) * one;
      activeExperts += (m.topK + m.sharedExperts) * one;
      router += d * m.experts;
    } else {
      ffnDense += ffnParams(c, c.ffnHidden);
    }
  }
  const total = embedding + attention + ffnDense + experts + router + norms;
  const active = embedding + attention + ffnDense + activeExperts + router + norms;
  return { total, active, embedding, attention, ffnDense, experts, router, norms };
}

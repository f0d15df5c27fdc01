// DataError: a user-facing error about input data (files, shards, manifests, tokenizers) that names
// the file at fault and the fix; src/cli/main.ts prints its message without a stack trace.

export class DataError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

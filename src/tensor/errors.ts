// Error types of the tensor engine. Each message names the op, the shapes or dtypes, and the fix.

export class ShapeError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'ShapeError';
  }
}

export class DTypeError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'DTypeError';
  }
}

export class BackendError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'BackendError';
  }
}

export class OutOfMemoryError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'OutOfMemoryError';
  }
}

// TensorBoard event files (`events.out.tfevents.*`): TFRecord framing (length, masked CRC-32C of the
// length, payload, masked CRC-32C of the payload) around tensorflow.Event protocol buffers. Enough
// of the format for scalar curves and restart markers; every record goes straight to the operating
// system (one write each), so a crash loses no written point.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { maskedCrc32c } from './crc32c.js';
import { ProtoWriter } from './protobuf.js';

// tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto field numbers.
const EVENT_WALL_TIME = 1;
const EVENT_STEP = 2;
const EVENT_FILE_VERSION = 3;
const EVENT_SUMMARY = 5;
const EVENT_SESSION_LOG = 7;
const SUMMARY_VALUE = 1;
const VALUE_TAG = 1;
const VALUE_SIMPLE_VALUE = 2;
const SESSION_LOG_STATUS = 1;
const SESSION_LOG_MSG = 3;
const SESSION_LOG_START = 1;

/** One TFRecord: u64 length, masked CRC of the length bytes, payload, masked CRC of the payload. */
export function tfRecord(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 4 + payload.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(payload.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(payload, 12);
  view.setUint32(12 + payload.length, maskedCrc32c(payload), true);
  return out;
}

function event(wallTime: number, step: number, fill: (e: ProtoWriter) => void): Uint8Array {
  const e = new ProtoWriter().double(EVENT_WALL_TIME, wallTime).varint(EVENT_STEP, step);
  fill(e);
  return e.finish();
}

/** An Event holding a Summary of scalar values (tag, float32 value). */
export function scalarEvent(wallTime: number, step: number, scalars: ReadonlyArray<readonly [string, number]>): Uint8Array {
  const summary = new ProtoWriter();
  for (const [tag, value] of scalars) summary.bytes(SUMMARY_VALUE, new ProtoWriter().bytes(VALUE_TAG, tag).float(VALUE_SIMPLE_VALUE, value).finish());
  return event(wallTime, step, (e) => e.bytes(EVENT_SUMMARY, summary.finish()));
}

/**
 * A SessionLog START event: TensorBoard's reader drops every point at this step or later read
 * before it, which is what a run resumed from a checkpoint needs (the steps after the checkpoint
 * that the crashed run wrote are replaced by the resumed run's).
 */
export function sessionStartEvent(wallTime: number, step: number, message: string): Uint8Array {
  const log = new ProtoWriter().varint(SESSION_LOG_STATUS, SESSION_LOG_START).bytes(SESSION_LOG_MSG, message).finish();
  return event(wallTime, step, (e) => e.bytes(EVENT_SESSION_LOG, log));
}

export class EventFileWriter {
  readonly file: string;
  private fd: number | null;

  /** Creates a new event file in `dir` (made if missing); TensorBoard reads all of a folder's files in name order. */
  constructor(dir: string, now: Date = new Date()) {
    fs.mkdirSync(dir, { recursive: true });
    const secs = String(Math.floor(now.getTime() / 1000)).padStart(10, '0');
    const base = `events.out.tfevents.${secs}.${os.hostname()}.${process.pid}`;
    let file = path.join(dir, base);
    for (let n = 1; fs.existsSync(file); n++) file = path.join(dir, `${base}.${n}`);
    this.file = file;
    this.fd = fs.openSync(file, 'wx');
    this.append(event(now.getTime() / 1000, 0, (e) => e.bytes(EVENT_FILE_VERSION, 'brain.Event:2')));
  }

  /** Appends one Event (already encoded). */
  append(eventBytes: Uint8Array): void {
    if (this.fd === null) throw new Error(`TensorBoard event file ${this.file} is closed`);
    const rec = tfRecord(eventBytes);
    for (let at = 0; at < rec.length; ) at += fs.writeSync(this.fd, rec, at, rec.length - at);
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}

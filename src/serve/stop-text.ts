// Streaming text with stop strings: text is released as it arrives except a tail that could still
// become the start of a stop string; once a stop string appears, the text before it is released and
// the stream ends (the stop string itself is never sent, as in OpenAI's API).

export class StopText {
  private held = '';
  stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Adds text; returns what can be sent now. */
  push(text: string): string {
    if (this.stopped) return '';
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.held.slice(0, cut);
      this.held = '';
      return out;
    }
    let keep = 0;
    for (const s of this.stops)
      for (let n = Math.min(s.length - 1, this.held.length); n > keep; n--)
        if (this.held.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return out;
  }

  /** The held tail at the end of the stream (no stop string completed). */
  end(): string {
    const out = this.stopped ? '' : this.held;
    this.held = '';
    return out;
  }
}

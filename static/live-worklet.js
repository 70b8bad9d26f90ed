// The Live view's audio worklet: the microphone's samples (at the context's
// 16 kHz) as 20 ms chunks of 16-bit little-endian PCM, posted to the page.
class Pcm16Chunks extends AudioWorkletProcessor {
  constructor() {
    super();
    this.size = Math.round(sampleRate / 50);
    this.chunk = new Int16Array(this.size);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      for (const sample of channel) {
        this.chunk[this.filled++] = Math.max(-32768, Math.min(32767, Math.round(sample * 32768)));
        if (this.filled === this.size) {
          this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
          this.chunk = new Int16Array(this.size);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16-chunks", Pcm16Chunks);

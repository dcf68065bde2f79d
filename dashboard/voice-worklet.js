// The microphone as 20 ms frames of PCM16 (320 samples at the context's 16 kHz), posted
// to the page, which streams them to the voice socket.
class Pcm16Frames extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(320);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0]?.[0];
    if (channel) {
      for (const sample of channel) {
        this.frame[this.filled++] = Math.max(-1, Math.min(1, sample)) * 0x7fff;
        if (this.filled === this.frame.length) {
          const frame = this.frame.slice();
          this.port.postMessage(frame.buffer, [frame.buffer]);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("pcm16-frames", Pcm16Frames);

// Audio worklets of the softphone (loaded by softphone.js with audioWorklet.addModule).
//
// pa-capture: the microphone → 20 ms frames of 16-bit PCM at 16 kHz, posted to the page.
// pa-player:  the agent's 16 kHz 16-bit PCM → the speakers, in order with the call's marks: a mark is
//             posted back as "played" once every sample queued before it has been output, as a phone
//             echoes Twilio's marks. "clear" (a barge-in) drops everything queued, marks included.
// Both resample linearly when the AudioContext does not run at 16 kHz (Chrome honours 16 kHz).
"use strict";

const WIRE_RATE = 16000;
const FRAME_SAMPLES = WIRE_RATE / 50; // 20 ms
const AUDIBLE = 0.006; // RMS (full scale 1.0) above which a block counts as voice, not silence

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / WIRE_RATE; // input samples per output sample
    this.t = 0; // position of the next output sample in this block (may be in [-1, 0))
    this.prev = 0;
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.filled = 0;
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.frame[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.filled === FRAME_SAMPLES) {
      this.port.postMessage(this.frame.buffer, [this.frame.buffer]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input || input.length === 0) return true;
    if (this.step === 1) {
      for (let i = 0; i < input.length; i++) this.push(input[i]);
      return true;
    }
    let t = this.t;
    while (Math.floor(t) + 1 < input.length) {
      const i = Math.floor(t);
      const a = i < 0 ? this.prev : input[i];
      const b = input[i + 1];
      this.push(a + (b - a) * (t - i));
      t += this.step;
    }
    this.t = t - input.length;
    this.prev = input[input.length - 1];
    return true;
  }
}

class Player extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = WIRE_RATE / sampleRate; // wire samples per output sample
    this.queue = []; // {pcm: Float32Array} | {mark: string}
    this.pos = 0; // read position in the head chunk
    this.queued = 0; // wire samples queued
    this.playing = false;
    this.prebuffer = WIRE_RATE * 0.06; // 60 ms of jitter buffer before a reply starts
    this.played = 0; // output samples of agent audio
    this.audible = 0; // output samples of it that were voice
    this.peak = 0;
    this.sinceReport = 0;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(data) {
    if (data.audio) {
      const pcm16 = new Int16Array(data.audio);
      const pcm = new Float32Array(pcm16.length);
      for (let i = 0; i < pcm16.length; i++) pcm[i] = pcm16[i] / 0x8000;
      this.queue.push({ pcm });
      this.queued += pcm.length;
    } else if (data.mark !== undefined) {
      if (this.queue.length === 0) this.port.postMessage({ played: data.mark });
      else this.queue.push({ mark: data.mark });
    } else if (data.clear) {
      this.queue = [];
      this.pos = 0;
      this.queued = 0;
      this.playing = false;
    }
  }

  releaseMarks() {
    while (this.queue.length && this.queue[0].mark !== undefined) {
      this.port.postMessage({ played: this.queue.shift().mark });
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing) {
      // start once a jitter buffer is queued, or once the server has closed a piece with a mark
      this.playing = this.queued >= this.prebuffer || this.queue.some((item) => item.mark !== undefined);
    }
    let energy = 0;
    let wrote = 0;
    for (let i = 0; i < out.length; i++) {
      this.releaseMarks();
      if (!this.playing || this.queue.length === 0) {
        out[i] = 0;
        continue;
      }
      const head = this.queue[0].pcm;
      const k = Math.floor(this.pos);
      const a = head[k];
      const b = k + 1 < head.length ? head[k + 1] : a;
      const value = a + (b - a) * (this.pos - k);
      out[i] = value;
      energy += value * value;
      wrote++;
      this.pos += this.step;
      if (this.pos >= head.length) {
        this.queued -= head.length;
        this.pos -= head.length;
        this.queue.shift();
        this.releaseMarks();
        if (this.queue.length === 0) this.playing = false; // an underrun: rebuffer before going on
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (wrote) {
      const rms = Math.sqrt(energy / wrote);
      this.played += wrote;
      if (rms >= AUDIBLE) this.audible += wrote;
      this.peak = Math.max(this.peak, rms);
    }
    this.sinceReport += out.length;
    if (this.sinceReport >= sampleRate / 10) {
      this.sinceReport = 0;
      this.port.postMessage({
        stats: {
          playedMs: (1000 * this.played) / sampleRate,
          audibleMs: (1000 * this.audible) / sampleRate,
          peakRms: this.peak,
          queuedMs: (1000 * this.queued) / WIRE_RATE,
        },
      });
    }
    return true;
  }
}

registerProcessor("pa-capture", Capture);
registerProcessor("pa-player", Player);

// "Call your agent": the admin page's softphone. The microphone goes to /admin/web-call as 16 kHz
// 16-bit PCM (20 ms a message, from the pa-capture worklet); the agent's voice comes back as the same
// PCM and plays through the pa-player worklet, which echoes the call's marks as it plays them and drops
// what is queued when the agent is interrupted ("clear"). Protocol: src/phone_agent/voice/web_leg.py.
// window.softphone exposes the call's state and counters (the page's tests read them).
"use strict";
(() => {
  const root = document.getElementById("softphone");
  if (!root) return;
  const RATE = 16000;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const form = document.getElementById("softphone-form");
  const number = document.getElementById("softphone-number");
  const callButton = document.getElementById("softphone-call");
  const hangupButton = document.getElementById("softphone-hangup");
  const status = document.getElementById("softphone-status");
  const level = document.getElementById("softphone-level");
  const after = document.getElementById("softphone-after");
  const stats = {
    state: "idle", callSid: null, error: null, framesSent: 0, bytesReceived: 0, marksEchoed: 0,
    clears: 0, playedMs: 0, audibleMs: 0, peakRms: 0, peakLevel: 0, queuedMs: 0,
  };
  window.softphone = stats;
  let call = null;

  const saved = window.localStorage && window.localStorage.getItem("pa-softphone-number");
  if (saved) number.value = saved;

  function show(state, text, isError) {
    stats.state = state;
    status.className = "softphone-status " + (isError ? "error" : "hint");
    status.textContent = text;
    callButton.disabled = state === "connecting" || state === "in-call";
    hangupButton.disabled = !(state === "connecting" || state === "in-call");
    number.disabled = callButton.disabled;
  }

  async function start() {
    after.replaceChildren();
    stats.error = null;
    show("connecting", "Asking for the microphone…");
    let mic;
    try {
      mic = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      stats.error = err.message;
      show("idle", "No microphone: " + err.message + " (allow this page to use it, or plug one in).", true);
      return;
    }
    const ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    call = { ws: null, ctx, mic, meter: null }; // from here on, finish() releases the microphone
    await ctx.audioWorklet.addModule("/admin/static/softphone-worklet.js");
    const source = ctx.createMediaStreamSource(mic);
    const capture = new AudioWorkletNode(ctx, "pa-capture", { numberOfOutputs: 1 });
    const silent = ctx.createGain();
    silent.gain.value = 0; // the capture node must reach the destination to be pulled, but is not heard
    source.connect(capture).connect(silent).connect(ctx.destination);
    const player = new AudioWorkletNode(ctx, "pa-player", { numberOfInputs: 0, outputChannelCount: [1] });
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    player.connect(analyser).connect(ctx.destination);
    await ctx.resume();

    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + window.location.host + root.dataset.path);
    ws.binaryType = "arraybuffer";
    call.ws = ws;
    const samples = new Float32Array(analyser.fftSize);
    call.meter = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      stats.peakLevel = Math.max(stats.peakLevel, rms);
      level.value = Math.min(1, rms * 4);
    }, 50);

    ws.addEventListener("open", () => {
      show("connecting", "Ringing…");
      ws.send(JSON.stringify({ event: "start", caller: number.value, csrf }));
    });
    capture.port.onmessage = (event) => {
      if (ws.readyState === WebSocket.OPEN && stats.state === "in-call") {
        ws.send(event.data);
        stats.framesSent += 1;
      }
    };
    player.port.onmessage = (event) => {
      if (event.data.played !== undefined && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ event: "mark", name: event.data.played }));
        stats.marksEchoed += 1;
      } else if (event.data.stats) {
        Object.assign(stats, event.data.stats);
      }
    };
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        stats.bytesReceived += event.data.byteLength;
        player.port.postMessage({ audio: event.data }, [event.data]);
        return;
      }
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      if (message.event === "started") {
        stats.callSid = message.call_sid;
        if (window.localStorage) window.localStorage.setItem("pa-softphone-number", number.value);
        show("in-call", "In a call as " + number.value + ". Speak; talk over the agent to interrupt it.");
      } else if (message.event === "mark") {
        player.port.postMessage({ mark: message.name });
      } else if (message.event === "clear") {
        stats.clears += 1;
        player.port.postMessage({ clear: true });
      } else if (message.event === "error") {
        stats.error = message.message;
      }
    });
    ws.addEventListener("close", () => finish());
  }

  function finish() {
    if (!call) return;
    const { ws, ctx, mic, meter } = call;
    call = null;
    if (meter) clearInterval(meter);
    mic.getTracks().forEach((track) => track.stop());
    if (ws && (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)) ws.close();
    ctx.close();
    level.value = 0;
    if (stats.error) {
      show("ended", "The call could not be made: " + stats.error, true);
      return;
    }
    show("ended", "Call ended.");
    if (stats.callSid) {
      const link = document.createElement("a");
      link.href = "/admin/calls/" + encodeURIComponent(stats.callSid);
      link.textContent = "Transcript and timings of this call";
      link.id = "softphone-transcript";
      after.replaceChildren(link);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!call) {
      start().catch((err) => {
        stats.error = err.message;
        finish();
        show("idle", "The call failed: " + err.message, true);
      });
    }
  });
  hangupButton.addEventListener("click", () => finish());
  window.addEventListener("pagehide", () => finish());
})();

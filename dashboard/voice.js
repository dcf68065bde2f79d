// A voice call from the browser, on the agent's voice socket (protocol oratio.voice.v1):
// the microphone captured as PCM16 at 16 kHz by an AudioWorklet, the agent's audio
// played as it arrives, and barge-in: when the server says the caller interrupted, what
// is still queued stops at once. Played chunks are acknowledged with marks, so that the
// server knows what the caller heard.

import { config } from "./api.js";

/**
 * An agent's voice socket: the voice gateway's (`config.voice` in `config.json`, AWS), else
 * the serverless relay's (`config.voice_relay`, a stack without the gateway), else this origin's.
 */
export const voiceUrl = (agentId) => {
  if (!config.voice && config.voice_relay) return `${config.voice_relay}?agent_id=${encodeURIComponent(agentId)}`;
  return `${config.voice || location.origin.replace(/^http/, "ws")}/v1/agents/${agentId}/voice`;
};

const toBase64 = (buffer) => {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
};

const fromBase64 = (text) => {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return new Int16Array(bytes.buffer, 0, bytes.length >> 1);
};

/** Starts a call; `onEvent` gets every server event. Resolves to `{ hangUp }`. */
export async function startCall({ agentId, key, onEvent, onClose }) {
  const microphone = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  });
  const context = new AudioContext({ sampleRate: 16000 });
  await context.audioWorklet.addModule("/voice-worklet.js");
  const capture = new AudioWorkletNode(context, "pcm16-frames");
  context.createMediaStreamSource(microphone).connect(capture);

  const url = voiceUrl(agentId);
  // Browsers cannot set headers on a WebSocket: the key goes as a subprotocol.
  const socket = new WebSocket(url, ["oratio.voice.v1", `oratio-key.${key}`]);
  let started = false;
  let frame = 1;
  let playUntil = 0;
  const queued = new Set();

  capture.port.onmessage = ({ data }) => {
    if (!started || socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "input_audio_buffer.append", seq: frame++, audio: toBase64(data) }));
  };
  const play = (event) => {
    const samples = fromBase64(event.audio);
    const buffer = context.createBuffer(1, samples.length, 16000);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 0x8000;
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    playUntil = Math.max(playUntil, context.currentTime + 0.05);
    source.start(playUntil);
    playUntil += buffer.duration;
    queued.add(source);
    source.onended = () => {
      if (!queued.delete(source)) return;
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "output_audio.mark", seq: event.seq }));
    };
  };
  const silence = () => {
    for (const source of queued) source.stop();
    queued.clear();
    playUntil = 0;
  };
  socket.onopen = () => socket.send(JSON.stringify({ type: "session.start", customer: { channel: "dashboard" } }));
  socket.onmessage = ({ data }) => {
    const event = JSON.parse(data);
    if (event.type === "session.created") started = true;
    if (event.type === "response.audio.delta") play(event);
    if (event.type === "response.interrupted") silence();
    onEvent(event);
  };
  const stop = () => {
    silence();
    microphone.getTracks().forEach((track) => track.stop());
    context.close();
  };
  socket.onclose = (close) => {
    stop();
    onClose?.(close);
  };
  return {
    hangUp() {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "session.end" }));
      else stop();
    },
  };
}

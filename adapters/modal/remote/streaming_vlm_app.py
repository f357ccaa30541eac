"""Modal app: legacy StreamingVLM chunk captioning, kept for rollback.

Deploy with Modal's Python SDK 1.2 or newer:

    FORESIGHT_INFERENCE_BACKEND=streamingvlm make deploy-modal   # or:
    modal deploy -e main adapters/modal/remote/streaming_vlm_app.py

Same remote interface as the Gemma 3 app: ``infer_chunk(frames, start_ts_s,
end_ts_s, prompt=None, session_id=None) -> dict`` and ``close(session_id=None)``,
same reply keys.

SIMPLIFIED, on purpose and honestly: the original ran the streaming-vlm
project's inference loop, which keeps the model's KV cache across chunks and
prunes it with an attention-sink + sliding-window policy (text sink, recent
text and vision tokens). That loop is not reproduced here. Instead each chunk
is a fresh prefill of
  - a fixed system turn (the "text sink"),
  - a sliding window of this stream's most recent captions
    (STREAMINGVLM_MAX_HISTORY_ENTRIES, in the same prompt format as Gemma 3),
  - the chunk's sampled frames,
and generation samples with temperature, top-p and a repetition penalty as the
original did. Context across chunks is therefore carried as text, not as cached
keys/values: more prefill per chunk, but bounded, per-stream, and with no GPU
state that can leak between streams. State is per ``session_id`` (bounded LRU,
see vlm_logic.SessionStore); calls without it share one container-wide state,
and ``close()`` without an id resets that shared state, as the original did.

Knobs (env at deploy time, baked into the image): STREAMINGVLM_MODEL_ID,
STREAMINGVLM_PROCESSOR_ID, STREAMINGVLM_GPU, STREAMINGVLM_MODAL_APP_NAME,
STREAMINGVLM_MAX_FRAME_EDGE, STREAMINGVLM_MAX_FRAMES_PER_CHUNK,
STREAMINGVLM_MAX_HISTORY_ENTRIES, STREAMINGVLM_MAX_NEW_TOKENS,
STREAMINGVLM_TEMPERATURE, STREAMINGVLM_TOP_P, STREAMINGVLM_REPETITION_PENALTY,
STREAMINGVLM_DO_SAMPLE, STREAMINGVLM_DEFAULT_PROMPT, STREAMINGVLM_HF_SECRET_NAME,
STREAMINGVLM_MAX_SESSIONS.
"""

from __future__ import annotations

import io
import os

import modal

import vlm_logic

CFG = vlm_logic.StreamingVLMConfig.from_env(os.environ)

CLASS_NAME = "StreamingVLMSession"
HF_CACHE_VOLUME = "streamingvlm-hf-cache"
HF_CACHE_DIR = "/root/.cache/huggingface"
TIMEOUT_S = 1200
SCALEDOWN_WINDOW_S = 300
MIN_CONTAINERS = 1

# The fixed system turn that plays the role of the original's text sink.
SYSTEM_SINK = (
    "You are a real-time narrator for a first-person live video stream. "
    "You receive short chunks of frames in order and describe what is happening now."
)

image = (
    modal.Image.debian_slim(python_version="3.12")
    .pip_install(
        "torch==2.7.1",
        "torchvision==0.22.1",
        "transformers==4.56.2",
        "accelerate==1.10.1",
        "pillow==11.3.0",
    )
    .env({"HF_HOME": HF_CACHE_DIR, **CFG.to_env()})
    # Must stay last: local files are added at container start, not built in.
    .add_local_python_source("vlm_logic")
)

hf_cache = modal.Volume.from_name(HF_CACHE_VOLUME, create_if_missing=True)
secrets = [modal.Secret.from_name(CFG.hf_secret_name)] if CFG.hf_secret_name else []

app = modal.App(CFG.app_name)

# Per-stream sliding text windows of this container (None = shared, original behaviour).
SESSIONS = vlm_logic.SessionStore(lambda: vlm_logic.HistoryWindow(CFG.max_history_entries), CFG.max_sessions)


def _open_frame(data: bytes):
    """Parse the image header only (cheap); raises if the bytes are no image."""
    from PIL import Image

    return Image.open(io.BytesIO(data))


def _finish_frame(img):
    """Full decode, RGB, shrink so the longest edge is at most the max edge."""
    from PIL import Image

    img.load()
    img = img.convert("RGB")
    size = vlm_logic.fit_within(img.width, img.height, CFG.max_frame_edge)
    if size != (img.width, img.height):
        img = img.resize(size, Image.Resampling.BICUBIC)
    return img


@app.cls(
    image=image,
    gpu=CFG.gpu,
    timeout=TIMEOUT_S,
    scaledown_window=SCALEDOWN_WINDOW_S,
    min_containers=MIN_CONTAINERS,
    volumes={HF_CACHE_DIR: hf_cache},
    secrets=secrets,
)
class StreamingVLMSession:
    """StreamingVLM (Qwen2.5-VL base) with per-stream text context."""

    @modal.enter()
    def load(self) -> None:
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        self._torch = torch
        self._processor = AutoProcessor.from_pretrained(CFG.processor_id)
        self._model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            CFG.model_id,
            torch_dtype=torch.bfloat16,
            attn_implementation="sdpa",
            device_map="cuda" if torch.cuda.is_available() else "auto",
        ).eval()

    def _generate(self, text: str, images: list) -> tuple:
        torch = self._torch
        messages = [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_SINK}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": text}] + [{"type": "image"} for _ in images],
            },
        ]
        chat = self._processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self._processor(text=[chat], images=images, return_tensors="pt").to(self._model.device)
        input_len = inputs["input_ids"].shape[-1]
        with torch.inference_mode():
            output = self._model.generate(**inputs, **CFG.generation_kwargs())
        new_tokens = output[0][input_len:]
        raw = self._processor.decode(new_tokens, skip_special_tokens=True)
        return raw, int(new_tokens.shape[-1])

    @modal.method()
    def infer_chunk(self, frames, start_ts_s, end_ts_s, prompt=None, session_id=None) -> dict:
        """Caption one chunk of JPEG frames; same reply shape as the Gemma 3 app."""
        return vlm_logic.run_chunk(
            frames=frames,
            start_s=start_ts_s,
            end_s=end_ts_s,
            prompt=prompt,
            history=SESSIONS.get(session_id),
            max_frames=CFG.max_frames_per_chunk,
            default_prompt=CFG.default_prompt,
            open_frame=_open_frame,
            finish_frame=_finish_frame,
            generate=self._generate,
        )

    @modal.method()
    def close(self, session_id=None) -> None:
        """Reset one stream's state (or the shared state without an id) and free
        cached GPU memory."""
        SESSIONS.close(session_id)
        torch = getattr(self, "_torch", None)
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

"""Modal app: legacy StreamingVLM chunk captioning, kept for rollback.

Deploy with Modal's Python SDK 1.2 or newer:

    FORESIGHT_INFERENCE_BACKEND=streamingvlm make deploy-modal   # or:
    modal deploy -e main adapters/inference/modal/remote/streaming_vlm_app.py

Same remote interface as the Gemma 3 app: ``infer_chunk(frames, start_ts_s,
end_ts_s, prompt=None, session_id=None) -> dict`` and ``close(session_id=None)``,
same reply keys.

What it does, per stream (``session_id``; calls without it share one state and
``close()`` without an id resets that, as the original did):

- keeps the model's KV cache from chunk to chunk, with the token ids it holds;
- before each chunk, drops from that cache what the window policy evicts
  (vlm_logic.KVWindowPolicy / plan_eviction): the first
  STREAMINGVLM_TEXT_SINK_TOKENS text tokens stay (the sink), the newest text
  turns that fit in STREAMINGVLM_TEXT_WINDOW_TOKENS stay, vision tokens stay
  only for the last STREAMINGVLM_VISION_WINDOW_CHUNKS chunks;
- feeds only the new chunk (``Time=S-Es``, the frames as one video, the task
  on the first chunk or when it changes) with its M-RoPE positions continued
  from the last position used, then decodes token by token, sampling with
  temperature, top-p and the repetition penalty over the kept tokens;
- at most STREAMINGVLM_MAX_SESSIONS caches per container (LRU); a stream whose
  RoPE position reaches STREAMINGVLM_MAX_POSITION starts over.

This follows the streaming-vlm project's inference loop (mit-han-lab's
StreamingVLM, ``streaming_vlm/inference/inference.py``: ``process_past_kv`` and
``prune_id_and_kv_cache``) but is our own code on stock transformers. It
differs: no patched model, so positions of kept tokens are not re-compacted
after a drop ("shrink" mode there; here they keep growing, hence the reset
bound); evicted captions are dropped, not moved into a "previous text" block;
the sink is the first text tokens, the window counts tokens, not rounds.
The model-facing code is the plain class ``vlm_models.StreamingVLMCaptioner``;
the local harness (test_model_smoke.py) runs it on a tiny random-weight
Qwen2.5-VL. docs/modal.md says what has run where.

Knobs (env at deploy time, baked into the image): STREAMINGVLM_MODEL_ID,
STREAMINGVLM_PROCESSOR_ID, STREAMINGVLM_GPU, STREAMINGVLM_MODAL_APP_NAME,
STREAMINGVLM_MAX_FRAME_EDGE, STREAMINGVLM_MAX_FRAMES_PER_CHUNK,
STREAMINGVLM_MAX_NEW_TOKENS, STREAMINGVLM_TEMPERATURE, STREAMINGVLM_TOP_P,
STREAMINGVLM_REPETITION_PENALTY, STREAMINGVLM_DO_SAMPLE,
STREAMINGVLM_DEFAULT_PROMPT, STREAMINGVLM_HF_SECRET_NAME,
STREAMINGVLM_MAX_SESSIONS, STREAMINGVLM_TEXT_SINK_TOKENS,
STREAMINGVLM_TEXT_WINDOW_TOKENS, STREAMINGVLM_VISION_WINDOW_CHUNKS,
STREAMINGVLM_MAX_POSITION. See docs/modal.md.
"""

from __future__ import annotations

import os

import modal

import vlm_logic

CFG = vlm_logic.StreamingVLMConfig.from_env(os.environ)

CLASS_NAME = "StreamingVLMSession"
HF_CACHE_VOLUME = "streamingvlm-hf-cache"

DEPLOY = vlm_logic.ModalDeployment(modal, CFG, HF_CACHE_VOLUME)
image = DEPLOY.image
app = DEPLOY.app


@app.cls(**DEPLOY.cls_kwargs)
class StreamingVLMSession:
    """StreamingVLM (Qwen2.5-VL base) with a per-stream KV cache."""

    @modal.enter()
    def load(self) -> None:
        import vlm_models

        self._captioner = vlm_models.StreamingVLMCaptioner.from_pretrained(CFG)

    @modal.method()
    def infer_chunk(self, frames, start_ts_s, end_ts_s, prompt=None, session_id=None) -> dict:
        """Caption one chunk of JPEG frames; same reply shape as the Gemma 3 app."""
        return self._captioner.infer_chunk(frames, start_ts_s, end_ts_s, prompt, session_id)

    @modal.method()
    def close(self, session_id=None) -> None:
        """Drop one stream's KV cache and bookkeeping (or the shared state without
        an id) and free cached GPU memory."""
        self._captioner.close(session_id)

"""Modal app: stateful Gemma 3 chunk captioning for Foresight's vision stream.

Deploy with Modal's Python SDK 1.2 or newer (the Go server calls it with CBOR):

    make deploy-modal                     # or:
    modal deploy -e main adapters/inference/modal/remote/gemma3_vlm_app.py

Knobs (env at deploy time, baked into the image so the container sees the same
values): GEMMA3_MODEL_ID, GEMMA3_GPU, GEMMA3_VLM_MODAL_APP_NAME,
GEMMA3_MAX_FRAME_EDGE, GEMMA3_MAX_FRAMES_PER_CHUNK, GEMMA3_MAX_HISTORY_ENTRIES,
GEMMA3_MAX_NEW_TOKENS, GEMMA3_TEMPERATURE, GEMMA3_TOP_P, GEMMA3_DO_SAMPLE,
GEMMA3_DEFAULT_PROMPT, GEMMA3_HF_SECRET_NAME, GEMMA3_MAX_SESSIONS. See
docs/modal.md.

This file imports with only ``modal`` installed. The model-facing code is the
plain class ``vlm_models.Gemma3Captioner`` (the local harness runs the same
class on a tiny model); the pure logic lives in ``vlm_logic`` (standard library
only). Both are shipped into the image beside this file.
"""

from __future__ import annotations

import os

import modal

import vlm_logic

CFG = vlm_logic.Gemma3Config.from_env(os.environ)

CLASS_NAME = "Gemma3VLMSession"
HF_CACHE_VOLUME = "gemma3-vlm-hf-cache"

# Image, HF cache volume, optional HF secret, app and the app.cls arguments
# (GPU, timeout 1200 s, scaledown 300 s, one warm container): shared with the
# legacy app, see vlm_logic.ModalDeployment.
DEPLOY = vlm_logic.ModalDeployment(modal, CFG, HF_CACHE_VOLUME)
image = DEPLOY.image
app = DEPLOY.app


@app.cls(**DEPLOY.cls_kwargs)
class Gemma3VLMSession:
    """One warm container serving every stream; history is scoped per session_id."""

    @modal.enter()
    def load(self) -> None:
        import vlm_models

        self._captioner = vlm_models.Gemma3Captioner.from_pretrained(CFG)

    @modal.method()
    def infer_chunk(self, frames, start_ts_s, end_ts_s, prompt=None, session_id=None) -> dict:
        """Caption one chunk of JPEG frames; see seed-protocol.md for the reply."""
        return self._captioner.infer_chunk(frames, start_ts_s, end_ts_s, prompt, session_id)

    @modal.method()
    def close(self, session_id=None) -> None:
        """Drop one stream's history (or the shared one without an id) and free
        cached GPU memory."""
        self._captioner.close(session_id)

"""Modal app: stateful Gemma 3 chunk captioning for Foresight's vision stream.

Deploy with Modal's Python SDK 1.2 or newer (the Go server calls it with CBOR):

    make deploy-modal                     # or:
    modal deploy -e main adapters/modal/remote/gemma3_vlm_app.py

Knobs (env at deploy time, baked into the image so the container sees the same
values): GEMMA3_MODEL_ID, GEMMA3_GPU, GEMMA3_VLM_MODAL_APP_NAME,
GEMMA3_MAX_FRAME_EDGE, GEMMA3_MAX_FRAMES_PER_CHUNK, GEMMA3_MAX_HISTORY_ENTRIES,
GEMMA3_MAX_NEW_TOKENS, GEMMA3_TEMPERATURE, GEMMA3_TOP_P, GEMMA3_DO_SAMPLE,
GEMMA3_DEFAULT_PROMPT, GEMMA3_HF_SECRET_NAME, GEMMA3_MAX_SESSIONS. See
docs/modal.md.

This file imports with only ``modal`` installed: torch, transformers and PIL are
imported inside the container (``@modal.enter`` / methods). The pure logic lives
in ``vlm_logic`` (standard library only), shipped into the image beside it.
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

# Per-stream caption histories of this container. None is the original's
# shared history (calls without session_id); named sessions are LRU-bounded.
SESSIONS = vlm_logic.SessionStore(lambda: vlm_logic.HistoryWindow(CFG.max_history_entries), CFG.max_sessions)


_open_frame = vlm_logic.pil_open_frame


def _finish_frame(img):
    return vlm_logic.pil_finish_frame(img, CFG.max_frame_edge)


@app.cls(**DEPLOY.cls_kwargs)
class Gemma3VLMSession:
    """One warm container serving every stream; history is scoped per session_id."""

    @modal.enter()
    def load(self) -> None:
        import torch
        from transformers import AutoProcessor, Gemma3ForConditionalGeneration

        self._torch = torch
        self._processor = AutoProcessor.from_pretrained(CFG.model_id)
        self._model = Gemma3ForConditionalGeneration.from_pretrained(
            CFG.model_id,
            torch_dtype=torch.bfloat16,
            device_map="cuda" if torch.cuda.is_available() else "auto",
        ).eval()

    def _generate(self, text: str, images: list) -> tuple:
        torch = self._torch
        # One user turn: the text part first, then the images.
        content = [{"type": "text", "text": text}] + [{"type": "image", "image": im} for im in images]
        messages = [{"role": "user", "content": content}]
        inputs = self._processor.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
        ).to(self._model.device, dtype=torch.bfloat16)
        input_len = inputs["input_ids"].shape[-1]
        with torch.inference_mode():
            output = self._model.generate(**inputs, **CFG.generation_kwargs())
        new_tokens = output[0][input_len:]
        raw = self._processor.decode(new_tokens, skip_special_tokens=True)
        return raw, int(new_tokens.shape[-1])

    @modal.method()
    def infer_chunk(self, frames, start_ts_s, end_ts_s, prompt=None, session_id=None) -> dict:
        """Caption one chunk of JPEG frames; see seed-protocol.md for the reply."""
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
        """Drop one stream's history (or the shared one without an id) and free
        cached GPU memory."""
        SESSIONS.close(session_id)
        vlm_logic.free_gpu_cache(getattr(self, "_torch", None))

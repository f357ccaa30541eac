"""Modal app: legacy StreamingVLM chunk captioning, kept for rollback.

Deploy with Modal's Python SDK 1.2 or newer:

    FORESIGHT_INFERENCE_BACKEND=streamingvlm make deploy-modal   # or:
    modal deploy -e main adapters/modal/remote/streaming_vlm_app.py

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
Only the pure logic and the wiring are tested (no GPU, no torch in CI); this
model code has never been run.

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
POLICY = CFG.policy()
SAMPLING = CFG.sampling()

CLASS_NAME = "StreamingVLMSession"
HF_CACHE_VOLUME = "streamingvlm-hf-cache"

# The system turn: the first tokens of every session, kept by the text sink.
SYSTEM_SINK = (
    "You are a real-time narrator for a first-person live video stream. "
    "You receive short chunks of frames in order and describe what is happening now."
)

DEPLOY = vlm_logic.ModalDeployment(modal, CFG, HF_CACHE_VOLUME)
image = DEPLOY.image
app = DEPLOY.app

# Per-stream model state of this container (None = shared, original behaviour).
SESSIONS = vlm_logic.SessionStore(vlm_logic.KVStreamState, CFG.max_sessions)

_open_frame = vlm_logic.pil_open_frame


def _finish_frame(img):
    return vlm_logic.pil_finish_frame(img, CFG.max_frame_edge)


@app.cls(**DEPLOY.cls_kwargs)
class StreamingVLMSession:
    """StreamingVLM (Qwen2.5-VL base) with a per-stream KV cache."""

    @modal.enter()
    def load(self) -> None:
        import torch
        from transformers import (
            AutoProcessor,
            LogitsProcessorList,
            Qwen2_5_VLForConditionalGeneration,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopPLogitsWarper,
        )

        self._torch = torch
        self._processor = AutoProcessor.from_pretrained(CFG.processor_id)
        self._model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            CFG.model_id,
            torch_dtype=torch.bfloat16,
            attn_implementation="sdpa",
            device_map="cuda" if torch.cuda.is_available() else "auto",
        ).eval()
        tok = self._processor.tokenizer
        self._vision_ids = (
            tok.convert_tokens_to_ids("<|vision_start|>"),
            tok.convert_tokens_to_ids("<|vision_end|>"),
        )
        self._im_end_id = tok.convert_tokens_to_ids("<|im_end|>")
        processors = [RepetitionPenaltyLogitsProcessor(SAMPLING["repetition_penalty"])]
        if SAMPLING["do_sample"]:
            processors += [TemperatureLogitsWarper(SAMPLING["temperature"]), TopPLogitsWarper(SAMPLING["top_p"])]
        self._logits_processors = LogitsProcessorList(processors)

    # -- torch parts -------------------------------------------------------

    def _prune(self, cache, keep: list):
        """Keep only the cache positions ``keep`` in every layer."""
        if cache is None:
            return None
        torch = self._torch
        layers = getattr(cache, "layers", None)
        if layers is not None:  # transformers >= 4.54: DynamicCache.layers[i].keys/.values
            for layer in layers:
                if getattr(layer, "keys", None) is None:
                    continue
                index = torch.tensor(keep, device=layer.keys.device, dtype=torch.long)
                layer.keys = layer.keys.index_select(2, index)
                layer.values = layer.values.index_select(2, index)
        else:  # older caches: key_cache / value_cache lists
            for i, keys in enumerate(cache.key_cache):
                index = torch.tensor(keep, device=keys.device, dtype=torch.long)
                cache.key_cache[i] = keys.index_select(2, index)
                cache.value_cache[i] = cache.value_cache[i].index_select(2, index)
        return cache

    def _forward(self, state, inputs: dict, position_ids, past: int):
        """Run new tokens on top of ``state.cache`` (``past`` tokens long);
        returns the logits of the last new token."""
        torch = self._torch
        from transformers import DynamicCache

        if state.cache is None:
            state.cache = DynamicCache()
        device = self._model.device
        length = inputs["input_ids"].shape[1]
        # The inner model, then the LM head on the last position only: logits for
        # every prefill position would be seq_len x 152k floats.
        out = self._model.model(
            **inputs,
            # All-ones mask over cache + new tokens, as the streaming-vlm loop
            # passes; positions come from position_ids, not from the mask.
            attention_mask=torch.ones((1, past + length), device=device, dtype=torch.long),
            position_ids=position_ids,
            past_key_values=state.cache,
            cache_position=torch.arange(past, past + length, device=device),
            use_cache=True,
        )
        state.cache = out.past_key_values
        return self._model.lm_head(out.last_hidden_state[:, -1, :])

    def _step(self, state, text: str, images: list) -> tuple:
        """Prefill the chunk on top of the cache, then decode token by token;
        returns (raw_text, tokens_generated, fed_ids, next_position)."""
        import numpy as np

        torch = self._torch
        device = self._model.device
        size = images[0].size  # one video: every frame at the first frame's size
        video = np.stack([np.asarray(im if im.size == size else im.resize(size)) for im in images])
        inputs = self._processor(text=[text], videos=[video], return_tensors="pt").to(device)
        inputs.pop("attention_mask", None)
        ids = inputs["input_ids"]
        # M-RoPE positions of this chunk on their own, moved past the last one used.
        positions, _ = self._model.model.get_rope_index(
            ids, None, inputs.get("video_grid_thw"), second_per_grid_ts=inputs.get("second_per_grid_ts")
        )
        positions = positions + state.next_position
        next_position = int(positions.max().item()) + 1
        past = len(state)
        fed = ids[0].tolist()
        generated = []
        with torch.inference_mode():
            logits = self._forward(state, dict(inputs), positions, past)
            past += len(fed)
            # The repetition penalty looks at every token the cache holds, as
            # generate() over the streaming-vlm loop's full input_ids does.
            context = torch.tensor([state.token_ids + fed], device=device, dtype=torch.long)
            for _ in range(SAMPLING["max_new_tokens"]):
                scores = self._logits_processors(context, logits.float())
                if SAMPLING["do_sample"]:
                    token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)
                else:
                    token = scores.argmax(dim=-1, keepdim=True)
                tok = int(token.item())
                generated.append(tok)
                if tok == self._im_end_id:
                    break  # not fed: the next chunk's text opens with <|im_end|>
                pos = torch.full((3, 1, 1), next_position, device=device, dtype=torch.long)
                logits = self._forward(state, {"input_ids": token}, pos, past)
                past += 1
                fed.append(tok)
                next_position += 1
                context = torch.cat([context, token], dim=1)
        text_ids = [t for t in generated if t != self._im_end_id]
        raw = self._processor.decode(text_ids, skip_special_tokens=True)
        return raw, len(generated), fed, next_position

    # -- remote methods ----------------------------------------------------

    @modal.method()
    def infer_chunk(self, frames, start_ts_s, end_ts_s, prompt=None, session_id=None) -> dict:
        """Caption one chunk of JPEG frames; same reply shape as the Gemma 3 app."""
        return vlm_logic.run_kv_chunk(
            frames=frames,
            start_s=start_ts_s,
            end_s=end_ts_s,
            prompt=prompt,
            state=SESSIONS.get(session_id),
            policy=POLICY,
            max_frames=CFG.max_frames_per_chunk,
            default_prompt=CFG.default_prompt,
            system=SYSTEM_SINK,
            open_frame=_open_frame,
            finish_frame=_finish_frame,
            prune=self._prune,
            step=self._step,
            vision_ids=self._vision_ids,
        )

    @modal.method()
    def close(self, session_id=None) -> None:
        """Drop one stream's KV cache and bookkeeping (or the shared state without
        an id) and free cached GPU memory."""
        SESSIONS.close(session_id)
        vlm_logic.free_gpu_cache(getattr(self, "_torch", None))

"""The model-facing code of both Modal apps, as plain classes.

A Modal class (``gemma3_vlm_app.py``, ``streaming_vlm_app.py``) only loads one
of these in ``@modal.enter`` and forwards its methods, so the same
``infer_chunk``/``close`` code runs deployed and in the local harness
(``model_harness.py``, ``test_model_smoke.py``), where the model is a tiny
random-weight one built in code.

Standard library and ``vlm_logic`` only at import: torch, transformers, numpy
and PIL are imported when a model is loaded or a chunk runs, so the stdlib
tests can import this module and swap the model parts for fakes.
"""

from __future__ import annotations

from typing import Any, Optional

import vlm_logic


class Gemma3Captioner:
    """Stateful Gemma 3 chunk captioning: one caption history per session_id."""

    def __init__(self, cfg: vlm_logic.Gemma3Config, model: Any, processor: Any, torch: Any):
        self.cfg = cfg
        self._model = model
        self._processor = processor
        self._torch = torch
        # Per-stream caption histories. None is the original's shared history
        # (calls without session_id); named sessions are LRU-bounded.
        self.sessions = vlm_logic.SessionStore(
            lambda: vlm_logic.HistoryWindow(cfg.max_history_entries), cfg.max_sessions
        )
        self.open_frame = vlm_logic.pil_open_frame
        self.finish_frame = lambda img: vlm_logic.pil_finish_frame(img, cfg.max_frame_edge)

    @classmethod
    def from_pretrained(cls, cfg: vlm_logic.Gemma3Config) -> "Gemma3Captioner":
        """Load the model named by ``cfg`` from the Hugging Face hub (or its cache)."""
        import torch
        from transformers import AutoProcessor, Gemma3ForConditionalGeneration

        # Besides disable_compile in generate (see Gemma3Config.generation_kwargs):
        # nothing in this container may start a torch.compile, whose first run
        # can outlast a call's timeout.
        torch._dynamo.config.disable = True
        processor = AutoProcessor.from_pretrained(cfg.model_id)
        model = Gemma3ForConditionalGeneration.from_pretrained(
            cfg.model_id,
            torch_dtype=torch.bfloat16,
            device_map="cuda" if torch.cuda.is_available() else "auto",
        ).eval()
        return cls(cfg, model, processor, torch)

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
        ).to(self._model.device, dtype=self._model.dtype)  # dtype casts the pixel values only
        input_len = inputs["input_ids"].shape[-1]
        with torch.inference_mode():
            output = self._model.generate(**inputs, **self.cfg.generation_kwargs())
        new_tokens = output[0][input_len:]
        raw = self._processor.decode(new_tokens, skip_special_tokens=True)
        return raw, int(new_tokens.shape[-1])

    def infer_chunk(self, frames, start_ts_s, end_ts_s, prompt=None, session_id=None) -> dict:
        """Caption one chunk of JPEG frames; see seed-protocol.md for the reply."""
        return vlm_logic.run_chunk(
            frames=frames,
            start_s=start_ts_s,
            end_s=end_ts_s,
            prompt=prompt,
            history=self.sessions.get(session_id),
            max_frames=self.cfg.max_frames_per_chunk,
            default_prompt=self.cfg.default_prompt,
            open_frame=self.open_frame,
            finish_frame=self.finish_frame,
            generate=self._generate,
        )

    def close(self, session_id=None) -> None:
        """Drop one stream's history (or the shared one without an id) and free
        cached GPU memory."""
        self.sessions.close(session_id)
        vlm_logic.free_gpu_cache(self._torch)


# The system turn of the legacy app: the first tokens of every session, kept
# by the text sink.
STREAMINGVLM_SYSTEM = (
    "You are a real-time narrator for a first-person live video stream. "
    "You receive short chunks of frames in order and describe what is happening now."
)


class StreamingVLMCaptioner:
    """StreamingVLM (Qwen2.5-VL base) with a per-stream KV cache; see
    streaming_vlm_app.py for what it does and how it differs from the
    streaming-vlm project's loop."""

    def __init__(self, cfg: vlm_logic.StreamingVLMConfig, model: Any, processor: Any, torch: Any):
        self.cfg = cfg
        self.policy = cfg.policy()
        self.sampling = cfg.sampling()
        self._model = model
        self._processor = processor
        self._torch = torch
        # Per-stream model state (None = shared, original behaviour).
        self.sessions = vlm_logic.SessionStore(vlm_logic.KVStreamState, cfg.max_sessions)
        self.open_frame = vlm_logic.pil_open_frame
        self.finish_frame = lambda img: vlm_logic.pil_finish_frame(img, cfg.max_frame_edge)
        # Called with (state, tokens fed so far) before each forward pass: the
        # harness raises from it to cancel a call half-way, as Modal does.
        self.before_forward = None
        tok = processor.tokenizer
        self._vision_ids = (
            tok.convert_tokens_to_ids("<|vision_start|>"),
            tok.convert_tokens_to_ids("<|vision_end|>"),
        )
        self._im_end_id = tok.convert_tokens_to_ids("<|im_end|>")
        self._logits_processors = None  # built on first use (imports transformers)

    @classmethod
    def from_pretrained(cls, cfg: vlm_logic.StreamingVLMConfig) -> "StreamingVLMCaptioner":
        """Load the checkpoint and the base model's processor named by ``cfg``."""
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        processor = AutoProcessor.from_pretrained(cfg.processor_id)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            cfg.model_id,
            torch_dtype=torch.bfloat16,
            attn_implementation="sdpa",
            device_map="cuda" if torch.cuda.is_available() else "auto",
        ).eval()
        return cls(cfg, model, processor, torch)

    # -- torch parts -------------------------------------------------------

    def _scores(self, context, logits):
        """The sampling distribution's logits: repetition penalty, then
        temperature and top-p when sampling (transformers' processors)."""
        if self._logits_processors is None:
            from transformers import (
                LogitsProcessorList,
                RepetitionPenaltyLogitsProcessor,
                TemperatureLogitsWarper,
                TopPLogitsWarper,
            )

            processors = [RepetitionPenaltyLogitsProcessor(self.sampling["repetition_penalty"])]
            if self.sampling["do_sample"]:
                processors += [
                    TemperatureLogitsWarper(self.sampling["temperature"]),
                    TopPLogitsWarper(self.sampling["top_p"]),
                ]
            self._logits_processors = LogitsProcessorList(processors)
        return self._logits_processors(context, logits.float())

    def _prune(self, cache, keep: list):
        """Keep only the cache positions ``keep`` in every layer. New tensors
        are assigned, the old ones are not written into (the rollback of a
        cancelled call relies on that, see vlm_logic.snapshot_cache)."""
        if cache is None:
            return None
        torch = self._torch
        layers = getattr(cache, "layers", None)
        if layers is not None:  # transformers >= 4.54: DynamicCache.layers[i].keys/.values
            for layer in layers:
                if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
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

        if self.before_forward is not None:
            self.before_forward(state, past)
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
        if "pixel_values_videos" in inputs:
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self._model.dtype)
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
            for _ in range(self.sampling["max_new_tokens"]):
                scores = self._scores(context, logits)
                if self.sampling["do_sample"]:
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

    # -- the remote interface ----------------------------------------------

    def infer_chunk(self, frames, start_ts_s, end_ts_s, prompt=None, session_id=None) -> dict:
        """Caption one chunk of JPEG frames; same reply shape as the Gemma 3 app."""
        return vlm_logic.run_kv_chunk(
            frames=frames,
            start_s=start_ts_s,
            end_s=end_ts_s,
            prompt=prompt,
            state=self.sessions.get(session_id),
            policy=self.policy,
            max_frames=self.cfg.max_frames_per_chunk,
            default_prompt=self.cfg.default_prompt,
            system=STREAMINGVLM_SYSTEM,
            open_frame=self.open_frame,
            finish_frame=self.finish_frame,
            prune=self._prune,
            step=self._step,
            vision_ids=self._vision_ids,
        )

    def close(self, session_id: Optional[str] = None) -> None:
        """Drop one stream's KV cache and bookkeeping (or the shared state without
        an id) and free cached GPU memory."""
        self.sessions.close(session_id)
        vlm_logic.free_gpu_cache(self._torch)

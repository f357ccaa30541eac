"""Tiny random-weight models for running the apps' model code locally.

Builds, in code and without any download, a Gemma 3 and a Qwen2.5-VL (the
StreamingVLM base) with a few small layers, plus a processor for each: a
byte-level tokenizer made with the ``tokenizers`` library (every byte is a
token, so any text encodes, plus the special tokens the processors and our
chat text use), the image/video processors constructed from their classes,
and for Gemma 3 a chat template written after the real model's. The models
are wrapped in the same ``vlm_models`` classes the Modal apps load, so
``infer_chunk``/``close`` run exactly the deployed code.

Written against transformers 4.56 (the version the Modal image pins), torch
2.x, tokenizers 0.2x and Pillow. Importing this module needs none of them;
``missing_packages()`` says what is absent.

Environment: FORESIGHT_SMOKE_DEVICE (cpu | cuda; default cuda when available)
and FORESIGHT_SMOKE_DTYPE (float32 | bfloat16; default bfloat16 on CUDA,
float32 on CPU).
"""

from __future__ import annotations

import importlib.util
import io
import os

import vlm_logic
import vlm_models

REQUIRED = ("torch", "transformers", "tokenizers", "PIL", "numpy")
# Qwen2.5-VL's video processor needs torchvision in transformers 4.5x.
REQUIRED_FOR_QWEN = ("torchvision",)

GEMMA3_SPECIALS = (
    "<pad>", "<eos>", "<bos>", "<unk>",
    "<start_of_turn>", "<end_of_turn>",
    "<start_of_image>", "<end_of_image>", "<image_soft_token>",
)
QWEN_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
)

# After google/gemma-3-4b-it's chat template: bos, an optional system turn
# folded into the first user turn, roles user/model, images as
# <start_of_image> (the processor expands it), text trimmed.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

# Frames are at most this many pixels on their longest edge (the apps'
# MAX_FRAME_EDGE knob), which keeps the vision towers' inputs tiny.
FRAME_EDGE = 64


def missing_packages(extra=()) -> list:
    """The packages of REQUIRED (and ``extra``) that cannot be imported."""
    return [name for name in tuple(REQUIRED) + tuple(extra) if importlib.util.find_spec(name) is None]


def device_and_dtype():
    """(torch.device, torch.dtype) chosen by the environment (see module doc)."""
    import torch

    name = os.environ.get("FORESIGHT_SMOKE_DEVICE", "").strip() or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    default = "bfloat16" if device.type == "cuda" else "float32"
    dtype = getattr(torch, os.environ.get("FORESIGHT_SMOKE_DTYPE", "").strip() or default)
    return device, dtype


def byte_level_tokenizer(tokenizer_class, specials, extra_special_tokens=None, **special_roles):
    """A ``tokenizer_class`` (a PreTrainedTokenizerFast subclass: processors
    check the class they are given) over all 256 bytes plus ``specials``.

    ``special_roles`` maps bos_token/eos_token/pad_token/unk_token to
    tokens of ``specials``; ``extra_special_tokens`` names model-specific
    ones (Gemma 3's image_token, boi_token, eoi_token), which become
    attributes of the tokenizer as a hub tokenizer_config.json makes them.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for tok in specials:
        vocab[tok] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(specials))
    kwargs = dict(special_roles)
    if extra_special_tokens:
        kwargs["extra_special_tokens"] = dict(extra_special_tokens)
    return tokenizer_class(tokenizer_object=core, **kwargs)


def tiny_gemma3(cfg: vlm_logic.Gemma3Config):
    """A Gemma3Captioner over a random 2-layer Gemma 3 with a 1-layer SigLIP."""
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor
    from transformers import GemmaTokenizerFast

    device, dtype = device_and_dtype()
    tokenizer = byte_level_tokenizer(
        GemmaTokenizerFast,
        GEMMA3_SPECIALS,
        extra_special_tokens={
            "image_token": "<image_soft_token>",
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
        },
        bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
    )
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in GEMMA3_SPECIALS}
    image_size, patch_size, mm_tokens = 32, 8, 4  # 4x4 patches pooled to 2x2 tokens
    config = Gemma3Config(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "sliding_window": 64,
            # One sliding-window and one global layer, as the real model mixes them.
            "layer_types": ["sliding_attention", "full_attention"],
            "max_position_embeddings": 4096,
            "pad_token_id": ids["<pad>"],
            "bos_token_id": ids["<bos>"],
            "eos_token_id": ids["<eos>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        mm_tokens_per_image=mm_tokens,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<bos>"],
        eos_token_id=ids["<eos>"],
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": image_size, "width": image_size}, do_pan_and_scan=False),
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=mm_tokens,
    )
    torch.manual_seed(0)
    model = Gemma3ForConditionalGeneration(config).to(device=device, dtype=dtype).eval()
    gen = model.generation_config
    gen.bos_token_id, gen.pad_token_id = ids["<bos>"], ids["<pad>"]
    gen.eos_token_id = [ids["<eos>"], ids["<end_of_turn>"]]
    # As google/gemma-3-4b-it's generation_config.json: the compileable cache
    # that made generate() call torch.compile (disable_compile stops it).
    gen.cache_implementation = "hybrid"
    return vlm_models.Gemma3Captioner(cfg, model, processor, torch)


def tiny_qwen25vl(cfg: vlm_logic.StreamingVLMConfig):
    """A StreamingVLMCaptioner over a random 2-layer Qwen2.5-VL with a 2-block
    vision tower."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers import Qwen2TokenizerFast, Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    device, dtype = device_and_dtype()
    tokenizer = byte_level_tokenizer(
        Qwen2TokenizerFast, QWEN_SPECIALS,
        unk_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
    )
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in QWEN_SPECIALS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            # head_dim 16: the three M-RoPE sections cover its 8 frequency pairs.
            "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
            "tie_word_embeddings": False,
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    # 28 px = one merged 2x2 group of 14 px patches; frames land on 2x2 to 4x4 groups.
    pixels = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16}
    size = {"shortest_edge": pixels["min_pixels"], "longest_edge": pixels["max_pixels"]}
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=dict(size), **pixels),
        video_processor=Qwen2VLVideoProcessor(size=dict(size), **pixels),
        tokenizer=tokenizer,
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).to(device=device, dtype=dtype).eval()
    return vlm_models.StreamingVLMCaptioner(cfg, model, processor, torch)


def jpeg_frame(index: int, size=(FRAME_EDGE, FRAME_EDGE * 3 // 4)) -> bytes:
    """A real JPEG: a moving square over a colour that changes with ``index``."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, ((37 * index) % 256, (91 * index) % 256, (53 * index + 80) % 256))
    draw = ImageDraw.Draw(img)
    x = (index * 7) % max(1, size[0] - 16)
    draw.rectangle([x, 8, x + 16, 24], fill=(255 - (37 * index) % 256, 200, 40))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=80)
    return out.getvalue()


def cache_layers(cache) -> list:
    """(keys, values) of every initialised layer of a DynamicCache (>= 4.54
    ``layers``, or the older key_cache/value_cache lists)."""
    if cache is None:
        return []
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers if getattr(layer, "keys", None) is not None]
    return list(zip(cache.key_cache, cache.value_cache))

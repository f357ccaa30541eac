"""Tests of the remote side's pure logic and of the Modal app files' wiring.

Standard library only (CI cannot install packages). Run from the repo root:

    python3 -m unittest discover -s adapters/inference/modal/remote -p 'test_*.py'

or from this directory: ``python3 -m unittest -v``.

The app files need ``modal`` to import; here they are imported against a small
stand-in ``modal`` module that records what the decorators were given, which
checks the deploy-time settings (names, GPU, timeouts, volume, secret) and the
method signatures without the real SDK, torch or PIL.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import types
import unittest
from unittest import mock

# Keep the source tree free of __pycache__ (the test module's own .pyc is
# written by unittest's import before this line runs; PYTHONDONTWRITEBYTECODE=1
# avoids that too).
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import vlm_logic  # noqa: E402
import vlm_models  # noqa: E402
from vlm_logic import (  # noqa: E402
    ConfigError,
    Gemma3Config,
    HistoryWindow,
    NoDecodableFramesError,
    SessionStore,
    StreamingVLMConfig,
    build_prompt,
    collapse_whitespace,
    fit_within,
    run_chunk,
    sample_indices,
    select_frames,
)

APP_FILES = ("gemma3_vlm_app.py", "streaming_vlm_app.py")


class HistoryWindowTest(unittest.TestCase):
    def test_keeps_last_n_in_order(self):
        h = HistoryWindow(3)
        for i in range(5):
            h.append(i, i + 1, f"caption {i}")
        self.assertEqual(
            h.entries(),
            ["2.0-3.0s: caption 2", "3.0-4.0s: caption 3", "4.0-5.0s: caption 4"],
        )

    def test_entry_format_and_collapsing(self):
        h = HistoryWindow(6)
        h.append(1.25, 2.96, "  A person\n walks\tby.  ")
        self.assertEqual(h.entries(), ["1.2-3.0s: A person walks by."])

    def test_empty_caption_not_recorded(self):
        h = HistoryWindow(6)
        h.append(0, 1, "")
        h.append(0, 1, "  \n ")
        self.assertEqual(len(h), 0)

    def test_zero_entries_keeps_nothing(self):
        h = HistoryWindow(0)
        h.append(0, 1, "x")
        self.assertEqual(h.entries(), [])

    def test_clear(self):
        h = HistoryWindow(2)
        h.append(0, 1, "x")
        h.clear()
        self.assertEqual(h.entries(), [])


class SampleIndicesTest(unittest.TestCase):
    def test_edge_cases(self):
        self.assertEqual(sample_indices(0, 6), [])
        self.assertEqual(sample_indices(1, 6), [0])
        self.assertEqual(sample_indices(2, 6), [0, 1])
        self.assertEqual(sample_indices(5, 6), [0, 1, 2, 3, 4])
        self.assertEqual(sample_indices(6, 6), [0, 1, 2, 3, 4, 5])

    def test_more_than_max_matches_numpy_linspace_round(self):
        # numpy.linspace(0, 9, 6).round() -> [0, 2, 4, 5, 7, 9]
        self.assertEqual(sample_indices(10, 6), [0, 2, 4, 5, 7, 9])
        # numpy.linspace(0, 119, 6).round() -> [0, 24, 48, 71, 95, 119]
        self.assertEqual(sample_indices(120, 6), [0, 24, 48, 71, 95, 119])
        self.assertEqual(sample_indices(7, 2), [0, 6])

    def test_properties(self):
        for count in range(0, 60):
            for max_count in range(1, 10):
                got = sample_indices(count, max_count)
                self.assertEqual(len(got), min(count, max_count), (count, max_count))
                self.assertEqual(got, sorted(set(got)))
                if count:
                    self.assertEqual(got[0], 0)
                    if max_count > 1:
                        self.assertEqual(got[-1], count - 1)

    def test_max_one_and_nonpositive(self):
        self.assertEqual(sample_indices(9, 1), [0])
        self.assertEqual(sample_indices(9, 0), [])


class PromptTest(unittest.TestCase):
    def test_without_history(self):
        got = build_prompt(0.0, 1.04, [], "Describe it.")
        self.assertEqual(
            got,
            "Chunk time window: 0.0s to 1.0s.\n"
            "Use only what is visible in these frames. "
            "Answer with exactly one concise present-tense sentence.\n"
            "Task: Describe it.",
        )

    def test_with_history(self):
        got = build_prompt(2.0, 3.5, ["0.0-1.0s: A door opens.", "1.0-2.0s: A man enters."], "Narrate.")
        self.assertEqual(
            got,
            "Chunk time window: 2.0s to 3.5s.\n"
            "Recent prior observations (may be stale):\n"
            "- 0.0-1.0s: A door opens.\n"
            "- 1.0-2.0s: A man enters.\n"
            "Use only what is visible in these frames. "
            "Answer with exactly one concise present-tense sentence.\n"
            "Task: Narrate.",
        )

    def test_resolve_task(self):
        self.assertEqual(vlm_logic.resolve_task(None, "D"), "D")
        self.assertEqual(vlm_logic.resolve_task("   ", "D"), "D")
        self.assertEqual(vlm_logic.resolve_task(" P ", "D"), "P")

    def test_collapse(self):
        self.assertEqual(collapse_whitespace("  a\n\n b \t c "), "a b c")
        self.assertEqual(collapse_whitespace(""), "")
        self.assertEqual(collapse_whitespace(None), "")


class SessionStoreTest(unittest.TestCase):
    def make(self, max_sessions=256):
        return SessionStore(lambda: HistoryWindow(6), max_sessions)

    def test_sessions_are_isolated(self):
        store = self.make()
        store.get("a").append(0, 1, "seen by a")
        store.get("b").append(0, 1, "seen by b")
        self.assertEqual(store.get("a").entries(), ["0.0-1.0s: seen by a"])
        self.assertEqual(store.get("b").entries(), ["0.0-1.0s: seen by b"])
        self.assertEqual(store.get(None).entries(), [])

    def test_close_one_leaves_other(self):
        store = self.make()
        store.get("a").append(0, 1, "x")
        store.get("b").append(0, 1, "y")
        store.get(None).append(0, 1, "z")
        self.assertTrue(store.close("a"))
        self.assertEqual(store.get("a").entries(), [])
        self.assertEqual(store.get("b").entries(), ["0.0-1.0s: y"])
        self.assertEqual(store.get(None).entries(), ["0.0-1.0s: z"])
        self.assertFalse(store.close("never-seen"))

    def test_none_is_the_shared_history(self):
        store = self.make()
        store.get(None).append(0, 1, "first caller")
        # A second caller without session_id sees it, as in the original.
        self.assertEqual(store.get(None).entries(), ["0.0-1.0s: first caller"])
        self.assertEqual(store.get("").entries(), ["0.0-1.0s: first caller"])
        store.get("s").append(0, 1, "named")
        store.close()  # close() without id clears the shared one only
        self.assertEqual(store.get(None).entries(), [])
        self.assertEqual(store.get("s").entries(), ["0.0-1.0s: named"])

    def test_lru_bound(self):
        store = self.make(max_sessions=3)
        for sid in ("a", "b", "c"):
            store.get(sid).append(0, 1, sid)
        store.get("a")  # a becomes most recent; b is now the oldest
        store.get("d").append(0, 1, "d")
        self.assertEqual(len(store), 3)
        self.assertEqual(store.session_ids(), ["c", "a", "d"])
        self.assertNotIn("b", store)
        self.assertEqual(store.get("a").entries(), ["0.0-1.0s: a"])
        # An evicted stream starts over with an empty history.
        self.assertEqual(store.get("b").entries(), [])
        for i in range(1000):
            store.get(f"s{i}")
        self.assertEqual(len(store), 3)
        store.get(None).append(0, 1, "shared survives")
        self.assertEqual(store.get(None).entries(), ["0.0-1.0s: shared survives"])

    def test_session_id_validation(self):
        store = self.make()
        with self.assertRaises(TypeError):
            store.get(42)
        with self.assertRaises(ValueError):
            store.get("x" * 300)
        self.assertIs(store.get(" a "), store.get("a"))
        with self.assertRaises(ValueError):
            SessionStore(list, 0)


class ConfigTest(unittest.TestCase):
    def test_gemma3_defaults(self):
        cfg = Gemma3Config.from_env({})
        self.assertEqual(cfg.model_id, "google/gemma-3-4b-it")
        self.assertEqual(cfg.gpu, "L40S")
        self.assertEqual(cfg.app_name, "foresight-gemma3-vlm")
        self.assertEqual(cfg.max_frame_edge, 720)
        self.assertEqual(cfg.max_frames_per_chunk, 6)
        self.assertEqual(cfg.max_history_entries, 6)
        self.assertEqual(cfg.max_new_tokens, 64)
        self.assertEqual(cfg.temperature, 0.2)
        self.assertEqual(cfg.top_p, 0.9)
        self.assertFalse(cfg.do_sample)
        self.assertEqual(cfg.default_prompt, vlm_logic.DEFAULT_PROMPT)
        self.assertIsNone(cfg.hf_secret_name)
        self.assertEqual(cfg.max_sessions, 256)
        self.assertEqual(cfg, Gemma3Config())

    def test_gemma3_overrides(self):
        env = {
            "GEMMA3_MODEL_ID": "google/gemma-3-12b-it",
            "GEMMA3_GPU": "H100",
            "GEMMA3_VLM_MODAL_APP_NAME": " my-app ",
            "GEMMA3_MAX_FRAME_EDGE": "512",
            "GEMMA3_MAX_FRAMES_PER_CHUNK": "4",
            "GEMMA3_MAX_HISTORY_ENTRIES": "0",
            "GEMMA3_MAX_NEW_TOKENS": "32",
            "GEMMA3_TEMPERATURE": "0.7",
            "GEMMA3_TOP_P": "0.95",
            "GEMMA3_DO_SAMPLE": "TRUE",
            "GEMMA3_DEFAULT_PROMPT": "Say what you see.",
            "GEMMA3_HF_SECRET_NAME": "hf",
            "GEMMA3_MAX_SESSIONS": "8",
            "UNRELATED": "x",
        }
        cfg = Gemma3Config.from_env(env)
        self.assertEqual(
            cfg,
            Gemma3Config(
                model_id="google/gemma-3-12b-it",
                gpu="H100",
                app_name="my-app",
                max_frame_edge=512,
                max_frames_per_chunk=4,
                max_history_entries=0,
                max_new_tokens=32,
                temperature=0.7,
                top_p=0.95,
                do_sample=True,
                default_prompt="Say what you see.",
                hf_secret_name="hf",
                max_sessions=8,
            ),
        )
        # to_env round-trips, which is how the container sees the deploy-time values.
        self.assertEqual(Gemma3Config.from_env(cfg.to_env()), cfg)
        self.assertEqual(Gemma3Config.from_env(Gemma3Config().to_env()), Gemma3Config())

    def test_empty_values_mean_default(self):
        cfg = Gemma3Config.from_env({"GEMMA3_GPU": "", "GEMMA3_HF_SECRET_NAME": "  ", "GEMMA3_MAX_FRAME_EDGE": ""})
        self.assertEqual(cfg.gpu, "L40S")
        self.assertIsNone(cfg.hf_secret_name)
        self.assertEqual(cfg.max_frame_edge, 720)

    def test_bad_values_name_the_knob(self):
        cases = {
            "GEMMA3_MAX_FRAME_EDGE": "big",
            "GEMMA3_MAX_FRAMES_PER_CHUNK": "0",
            "GEMMA3_MAX_HISTORY_ENTRIES": "-1",
            "GEMMA3_TEMPERATURE": "warm",
            "GEMMA3_TOP_P": "1.5",
            "GEMMA3_DO_SAMPLE": "maybe",
            "GEMMA3_MAX_SESSIONS": "0",
        }
        for key, value in cases.items():
            with self.subTest(key=key):
                with self.assertRaises(ConfigError) as ctx:
                    Gemma3Config.from_env({key: value})
                self.assertIn(key, str(ctx.exception))

    def test_bool_spellings(self):
        for value in ("1", "true", "Yes", "on"):
            self.assertTrue(Gemma3Config.from_env({"GEMMA3_DO_SAMPLE": value}).do_sample, value)
        for value in ("0", "false", "No", "off"):
            self.assertFalse(Gemma3Config.from_env({"GEMMA3_DO_SAMPLE": value}).do_sample, value)

    def test_generation_kwargs(self):
        # disable_compile: no torch.compile of the decode step (it can outlast a call's timeout).
        self.assertEqual(
            Gemma3Config().generation_kwargs(), {"max_new_tokens": 64, "do_sample": False, "disable_compile": True}
        )
        sampled = Gemma3Config(do_sample=True).generation_kwargs()
        self.assertEqual(
            sampled,
            {"max_new_tokens": 64, "do_sample": True, "temperature": 0.2, "top_p": 0.9, "disable_compile": True},
        )
        # Sampling at temperature 0 is rejected by transformers: fall back to greedy.
        self.assertFalse(Gemma3Config(do_sample=True, temperature=0.0).generation_kwargs()["do_sample"])

    def test_streamingvlm_defaults_and_roundtrip(self):
        cfg = StreamingVLMConfig.from_env({})
        self.assertEqual(cfg, StreamingVLMConfig())
        self.assertEqual(cfg.model_id, "mit-han-lab/StreamingVLM")
        self.assertEqual(cfg.gpu, "A100")
        self.assertEqual(cfg.app_name, "foresight-streamingvlm")
        self.assertTrue(cfg.do_sample)
        # The streaming-vlm project's inference defaults.
        self.assertEqual((cfg.temperature, cfg.repetition_penalty), (0.9, 1.05))
        self.assertEqual((cfg.text_sink_tokens, cfg.text_window_tokens), (512, 512))
        self.assertEqual(cfg.max_sessions, 16)
        sampling = cfg.sampling()
        self.assertTrue(sampling["do_sample"])
        self.assertEqual(sampling["repetition_penalty"], cfg.repetition_penalty)
        self.assertEqual(sampling["temperature"], 0.9)
        greedy = StreamingVLMConfig(do_sample=False).sampling()
        self.assertEqual((greedy["do_sample"], greedy["temperature"], greedy["top_p"]), (False, None, None))
        self.assertEqual(greedy["repetition_penalty"], 1.05)
        custom = StreamingVLMConfig.from_env({
            "STREAMINGVLM_GPU": "H100",
            "STREAMINGVLM_MAX_SESSIONS": "3",
            "STREAMINGVLM_TEXT_SINK_TOKENS": "64",
            "STREAMINGVLM_TEXT_WINDOW_TOKENS": "0",
            "STREAMINGVLM_VISION_WINDOW_CHUNKS": "2",
            "STREAMINGVLM_MAX_POSITION": "4096",
            "STREAMINGVLM_HF_SECRET_NAME": "hf",
            "STREAMINGVLM_DO_SAMPLE": "off",
        })
        self.assertEqual(
            (custom.gpu, custom.max_sessions, custom.hf_secret_name, custom.do_sample), ("H100", 3, "hf", False)
        )
        self.assertEqual(custom.policy(), vlm_logic.KVWindowPolicy(64, 0, 2, 4096))
        self.assertEqual(StreamingVLMConfig.from_env(custom.to_env()), custom)
        self.assertEqual(StreamingVLMConfig.from_env(StreamingVLMConfig().to_env()), StreamingVLMConfig())

    def test_streamingvlm_bad_values_name_the_knob(self):
        cases = {
            "STREAMINGVLM_VISION_WINDOW_CHUNKS": "0",
            "STREAMINGVLM_TEXT_SINK_TOKENS": "-1",
            "STREAMINGVLM_MAX_POSITION": "10",
            "STREAMINGVLM_REPETITION_PENALTY": "x",
            "STREAMINGVLM_MAX_SESSIONS": "0",
        }
        for key, value in cases.items():
            with self.subTest(key=key):
                with self.assertRaises(ConfigError) as ctx:
                    StreamingVLMConfig.from_env({key: value})
                self.assertIn(key, str(ctx.exception))

    def test_to_env_covers_every_field(self):
        # The knob table is the single source of both directions: every field
        # (bar an unset secret) has an env key, and keys carry the app's prefix.
        for cls, prefix in ((Gemma3Config, "GEMMA3_"), (StreamingVLMConfig, "STREAMINGVLM_")):
            with self.subTest(cls=cls.__name__):
                fields = {f.name for f in dataclasses.fields(cls)}
                self.assertEqual({k.field for k in cls._KNOBS}, fields)
                env = cls(hf_secret_name="s").to_env()
                self.assertEqual(len(env), len(fields))
                self.assertTrue(all(key.startswith(prefix) for key in env))


class FitWithinTest(unittest.TestCase):
    def test_fit(self):
        self.assertEqual(fit_within(1920, 1080, 720), (720, 405))
        self.assertEqual(fit_within(1080, 1920, 720), (405, 720))
        self.assertEqual(fit_within(640, 480, 720), (640, 480))
        self.assertEqual(fit_within(720, 720, 720), (720, 720))
        self.assertEqual(fit_within(5000, 2, 720), (720, 1))


class FakeImage:
    def __init__(self, data: bytes):
        self.data = data


def fake_open(data: bytes) -> FakeImage:
    if not data.startswith(b"IMG"):
        raise OSError("cannot identify image file")
    return FakeImage(data)


def fake_finish(img: FakeImage) -> str:
    if b"truncated" in img.data:
        raise OSError("image file is truncated")
    return img.data.decode()


class SelectFramesTest(unittest.TestCase):
    def test_skips_undecodable_and_samples_decodable(self):
        frames = [b"junk", b"IMG0", b"IMG1", "not bytes", b"IMG2", b"IMG3", b"\xff\xd8broken"]
        self.assertEqual(select_frames(frames, 2, fake_open, fake_finish), ["IMG0", "IMG3"])
        self.assertEqual(select_frames(frames, 6, fake_open, fake_finish), ["IMG0", "IMG1", "IMG2", "IMG3"])

    def test_only_picked_frames_are_fully_decoded(self):
        finished = []

        def finish(img):
            finished.append(img.data)
            return img.data

        frames = [b"IMG%d" % i for i in range(120)]
        got = select_frames(frames, 6, fake_open, finish)
        self.assertEqual(len(got), 6)
        self.assertEqual(finished, got)

    def test_none_decodable_is_an_error(self):
        with self.assertRaises(NoDecodableFramesError):
            select_frames([b"junk", b"more junk"], 6, fake_open, fake_finish)
        with self.assertRaises(NoDecodableFramesError):
            select_frames([b"IMG truncated"], 6, fake_open, fake_finish)

    def test_accepts_bytearray_and_memoryview(self):
        got = select_frames([bytearray(b"IMGa"), memoryview(b"IMGb")], 6, fake_open, fake_finish)
        self.assertEqual(got, ["IMGa", "IMGb"])


class RunChunkTest(unittest.TestCase):
    def setUp(self):
        self.calls = []
        self.ticks = iter([10.0, 10.25, 20.0, 20.5, 30.0, 30.125])

    def clock(self):
        return next(self.ticks)

    def generate(self, text, images):
        self.calls.append((text, images))
        return f"  Caption\n number {len(self.calls)}. ", 7

    def chunk(self, history, frames, start, end, prompt=None):
        return run_chunk(
            frames=frames,
            start_s=start,
            end_s=end,
            prompt=prompt,
            history=history,
            max_frames=2,
            default_prompt="Default task.",
            open_frame=fake_open,
            finish_frame=fake_finish,
            generate=self.generate,
            clock=self.clock,
        )

    def test_reply_and_history(self):
        h = HistoryWindow(6)
        reply = self.chunk(h, [b"IMG0", b"IMG1", b"IMG2"], 0, 1.0)
        self.assertEqual(
            reply,
            {
                "caption": "Caption number 1.",
                "chunk_start_s": 0.0,
                "chunk_end_s": 1.0,
                "latency_ms": 250,
                "tokens_generated": 7,
            },
        )
        self.assertIsInstance(reply["chunk_start_s"], float)
        text, images = self.calls[0]
        self.assertEqual(images, ["IMG0", "IMG2"])
        self.assertNotIn("Recent prior observations", text)
        self.assertTrue(text.endswith("Task: Default task."))
        self.assertEqual(h.entries(), ["0.0-1.0s: Caption number 1."])

        reply = self.chunk(h, [b"IMG3"], 1.0, 2.0, prompt="Custom.")
        text, _ = self.calls[1]
        self.assertIn("Recent prior observations (may be stale):\n- 0.0-1.0s: Caption number 1.\n", text)
        self.assertTrue(text.endswith("Task: Custom."))
        self.assertEqual(reply["latency_ms"], 500)

    def test_empty_frames_skip_model(self):
        h = HistoryWindow(6)
        for frames in ([], None):
            reply = self.chunk(h, frames, 3, 4)
            self.assertEqual(reply["caption"], "")
            self.assertEqual(reply["tokens_generated"], 0)
            self.assertEqual((reply["chunk_start_s"], reply["chunk_end_s"]), (3.0, 4.0))
        self.assertEqual(self.calls, [])
        self.assertEqual(h.entries(), [])

    def test_empty_caption_not_in_history(self):
        h = HistoryWindow(6)
        reply = run_chunk(
            frames=[b"IMG0"], start_s=0, end_s=1, prompt=None, history=h, max_frames=6,
            default_prompt="D", open_frame=fake_open, finish_frame=fake_finish,
            generate=lambda text, images: ("\n  \n", 1),
        )
        self.assertEqual(reply["caption"], "")
        self.assertEqual(h.entries(), [])

    def test_undecodable_chunk_raises_without_model(self):
        with self.assertRaises(NoDecodableFramesError):
            self.chunk(HistoryWindow(6), [b"junk"], 0, 1)
        self.assertEqual(self.calls, [])


VS, VE = 900, 901  # stand-in vision start / end token ids
T, V = vlm_logic.TEXT, vlm_logic.VISION
Span = vlm_logic.Span


class KVPolicyTest(unittest.TestCase):
    def test_split_segment(self):
        split = vlm_logic.split_segment
        self.assertEqual(split([1, 2, VS, 7, 7, VE, 3], VS, VE, 4), [Span(T, 4, 2), Span(V, 4, 4), Span(T, 4, 1)])
        self.assertEqual(split([VS, 7, VE], VS, VE, 0), [Span(V, 0, 3)])
        self.assertEqual(split([1, 2, 3], VS, VE, 0), [Span(T, 0, 3)])
        self.assertEqual(split([], VS, VE, 0), [])
        # Two videos in one chunk, text between them.
        self.assertEqual(
            split([VS, VE, 5, VS, 7, VE], VS, VE, 1), [Span(V, 1, 2), Span(T, 1, 1), Span(V, 1, 3)]
        )
        # An unterminated vision run stays one vision span (lengths always add up).
        self.assertEqual(split([1, VS, 7], VS, VE, 0), [Span(T, 0, 1), Span(V, 0, 2)])

    def test_ranges(self):
        self.assertEqual(vlm_logic.merge_ranges([(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)]), [(0, 3), (5, 9)])
        self.assertEqual(vlm_logic.kept_indices(10, [(0, 3), (5, 9)]), [3, 4, 9])
        self.assertEqual(vlm_logic.kept_indices(4, []), [0, 1, 2, 3])
        self.assertEqual(vlm_logic.kept_indices(4, [(2, 99)]), [0, 1])
        spans = [Span(T, 0, 4), Span(V, 0, 3), Span(T, 0, 2)]
        self.assertEqual(vlm_logic.apply_drops(spans, [(2, 7)]), [Span(T, 0, 2), Span(T, 0, 2)])

    def test_plan_eviction_by_hand(self):
        policy = vlm_logic.KVWindowPolicy(sink_tokens=6, text_window_tokens=5, vision_window_chunks=2, max_position=10**6)
        spans = [
            Span(T, 0, 4), Span(V, 0, 10), Span(T, 0, 4),   # 0-4, 4-14, 14-18
            Span(T, 1, 3), Span(V, 1, 10), Span(T, 1, 3),   # 18-21, 21-31, 31-34
            Span(T, 2, 2), Span(V, 2, 10), Span(T, 2, 3),   # 34-36, 36-46, 46-49
        ]
        # Before chunk 3 with a 2-chunk vision window: only chunk 2's vision stays.
        # Text: sink = first 6 text tokens (span 0 whole, 2 of span 2);
        # window = newest whole text spans within 5 tokens: 46-49 and 34-36.
        drops = vlm_logic.plan_eviction(spans, policy, next_chunk=3)
        self.assertEqual(drops, [(4, 14), (16, 34)])
        self.assertEqual(
            vlm_logic.apply_drops(spans, drops),
            [Span(T, 0, 4), Span(T, 0, 2), Span(T, 2, 2), Span(V, 2, 10), Span(T, 2, 3)],
        )
        # Nothing to drop while everything fits.
        roomy = vlm_logic.KVWindowPolicy(sink_tokens=100, text_window_tokens=100, vision_window_chunks=4)
        self.assertEqual(vlm_logic.plan_eviction(spans, roomy, next_chunk=3), [])

    def test_window_of_one_chunk_and_no_text(self):
        policy = vlm_logic.KVWindowPolicy(sink_tokens=0, text_window_tokens=0, vision_window_chunks=1)
        spans = [Span(T, 0, 4), Span(V, 0, 10), Span(T, 0, 4)]
        self.assertEqual(vlm_logic.plan_eviction(spans, policy, next_chunk=1), [(0, 18)])

    def test_policy_validation(self):
        with self.assertRaises(ValueError):
            vlm_logic.KVWindowPolicy(vision_window_chunks=0)
        with self.assertRaises(ValueError):
            vlm_logic.KVWindowPolicy(sink_tokens=-1)
        self.assertEqual(vlm_logic.KVWindowPolicy(10, 20, 3).cache_bound(100), 230)

    def test_simulated_stream_stays_bounded_and_keeps_the_sink(self):
        import random

        rng = random.Random(7)
        for sink, window, chunks in ((0, 0, 1), (16, 40, 2), (64, 64, 4), (200, 10, 3)):
            with self.subTest(sink=sink, window=window, chunks=chunks):
                policy = vlm_logic.KVWindowPolicy(sink, window, chunks, 10**9)
                state = vlm_logic.KVStreamState()
                max_vision = 0
                first_text = None
                next_id = iter(range(10**6))
                for n in range(120):
                    drops = state.plan(policy)
                    if drops:
                        keep = state.drop(drops)
                        self.assertEqual(len(keep), len(state))
                    bound = policy.cache_bound(max_vision)
                    self.assertLessEqual(len(state), bound, n)
                    kept_vision = {s.chunk for s in state.spans if s.kind == V}
                    self.assertTrue(all(c > n - chunks for c in kept_vision), (n, kept_vision))
                    text_ids = [t for t, k in zip(state.token_ids, self._kinds(state)) if k == T]
                    if first_text is not None:
                        self.assertEqual(text_ids[: min(sink, len(first_text))], first_text[: min(sink, len(first_text))])
                    # Feed a chunk: text, a video, more text and a caption (unique ids).
                    vision_len = rng.randint(3, 30)
                    max_vision = max(max_vision, vision_len)
                    ids = [next(next_id) for _ in range(rng.randint(1, 12))]
                    ids += [VS] + [next(next_id) for _ in range(vision_len - 2)] + [VE]
                    ids += [next(next_id) for _ in range(rng.randint(1, 25))]
                    state.append(ids, VS, VE, state.next_position + len(ids))
                    if first_text is None:
                        first_text = [t for t, k in zip(state.token_ids, self._kinds(state)) if k == T]

    @staticmethod
    def _kinds(state):
        kinds = []
        for span in state.spans:
            kinds.extend([span.kind] * span.length)
        return kinds

    def test_state_bookkeeping(self):
        state = vlm_logic.KVStreamState()
        self.assertTrue(state.empty)
        state.append([1, VS, 5, VE, 2], VS, VE, 10)
        self.assertEqual((len(state), state.chunk_index, state.next_position), (5, 1, 10))
        self.assertEqual(state.spans, [Span(T, 0, 1), Span(V, 0, 3), Span(T, 0, 1)])
        self.assertEqual(state.drop([(1, 4)]), [0, 4])
        self.assertEqual(state.token_ids, [1, 2])
        with self.assertRaises(ValueError):
            state.append([3], VS, VE, 5)  # positions never go backwards
        state.cache = object()
        state.reset()
        self.assertTrue(state.empty)
        self.assertEqual((state.cache, state.spans, state.next_position, state.chunk_index), (None, [], 0, 0))

    def test_qwen_chunk_text(self):
        first = vlm_logic.qwen_chunk_text(first=True, system="Sys.", start_s=0, end_s=1.04, task="Narrate.")
        self.assertEqual(
            first,
            "<|im_start|>system\nSys.<|im_end|>\n"
            "<|im_start|>user\nTime=0.0-1.0s<|vision_start|><|video_pad|><|vision_end|>Narrate.<|im_end|>\n"
            "<|im_start|>assistant\n",
        )
        later = vlm_logic.qwen_chunk_text(first=False, system="Sys.", start_s=1, end_s=2, task=None)
        self.assertEqual(
            later,
            "<|im_end|>\n<|im_start|>user\nTime=1.0-2.0s<|vision_start|><|video_pad|><|vision_end|><|im_end|>\n"
            "<|im_start|>assistant\n",
        )


class FakeKVModel:
    """Stands in for the torch part of the legacy app: tokenizes a chunk's text
    into 1 token per line plus a fixed-size video, "generates" 3 tokens."""

    def __init__(self, vision_len=20):
        self.vision_len = vision_len
        self.texts = []
        self.pruned = []
        self.fail = False

    def step(self, state, text, images):
        if self.fail:
            state.cache = "half-fed"
            raise RuntimeError("CUDA out of memory")
        self.texts.append(text)
        before, _, after = text.partition(vlm_logic.VISION_PLACEHOLDER)
        fed = [1] * len(before.splitlines()) + [VS] + [7] * (self.vision_len - 2) + [VE]
        fed += [2] * len(after.splitlines()) + [3, 3]
        state.cache = ("cache", len(state) + len(fed))
        return f" caption\n {len(self.texts)} ...", 3, fed, state.next_position + len(fed)

    def prune(self, cache, keep):
        self.pruned.append(len(keep))
        return ("cache", len(keep))


class RunKVChunkTest(unittest.TestCase):
    def setUp(self):
        self.model = FakeKVModel()
        self.policy = vlm_logic.KVWindowPolicy(sink_tokens=4, text_window_tokens=6, vision_window_chunks=2, max_position=500)

    def chunk(self, state, start, prompt="Narrate.", frames=(b"IMG0", b"IMG1")):
        return vlm_logic.run_kv_chunk(
            frames=list(frames), start_s=start, end_s=start + 1, prompt=prompt, state=state, policy=self.policy,
            max_frames=4, default_prompt="Default.", system="Sys.", open_frame=fake_open, finish_frame=fake_finish,
            prune=self.model.prune, step=self.model.step, vision_ids=(VS, VE), clock=lambda: 0.0,
        )

    def test_cache_carries_over_and_is_pruned(self):
        state = vlm_logic.KVStreamState()
        reply = self.chunk(state, 0)
        self.assertEqual(reply, {"caption": "caption 1", "chunk_start_s": 0.0, "chunk_end_s": 1.0,
                                 "latency_ms": 0, "tokens_generated": 3})
        self.assertTrue(self.model.texts[0].startswith("<|im_start|>system\nSys."))
        self.assertIn("Narrate.", self.model.texts[0])
        self.chunk(state, 1)
        # Later chunks continue the cache: no system turn, task not repeated.
        self.assertTrue(self.model.texts[1].startswith("<|im_end|>\n<|im_start|>user\nTime=1.0-2.0s"))
        self.assertNotIn("Narrate.", self.model.texts[1])
        for n in range(2, 40):
            self.chunk(state, n)
            self.assertEqual(state.cache, ("cache", len(state)))
            self.assertLessEqual(len(state), self.policy.cache_bound(20) + 30)
        self.assertTrue(self.model.pruned)
        # A new task is sent again.
        self.chunk(state, 40, prompt="Count the cars.")
        self.assertIn("Count the cars.", self.model.texts[-1])

    def test_position_bound_restarts_the_session(self):
        state = vlm_logic.KVStreamState()
        n = 0
        while state.next_position < self.policy.max_position:
            self.chunk(state, n)
            n += 1
        self.chunk(state, n)
        self.assertTrue(self.model.texts[-1].startswith("<|im_start|>system\n"))
        self.assertEqual(state.chunk_index, 1)

    def test_empty_chunk_and_failures(self):
        state = vlm_logic.KVStreamState()
        self.assertEqual(self.chunk(state, 0, frames=())["tokens_generated"], 0)
        self.assertTrue(state.empty)
        self.assertEqual(self.model.texts, [])
        with self.assertRaises(NoDecodableFramesError):
            self.chunk(state, 0, frames=(b"junk",))
        self.chunk(state, 0)
        before = (list(state.token_ids), list(state.spans), state.next_position, state.chunk_index, state.cache)
        self.model.fail = True
        with self.assertRaises(RuntimeError):
            self.chunk(state, 1)
        # A failed step leaves no half-known cache behind: the state is as before the call.
        self.assertEqual((state.token_ids, state.spans, state.next_position, state.chunk_index, state.cache), before)
        self.model.fail = False
        self.assertEqual(self.chunk(state, 1)["caption"], "caption 2")


class InputCancellation(BaseException):
    """Stands in for modal.exception.InputCancellation (a BaseException)."""


class FakeLayer:
    """Like transformers' DynamicLayer: tensors replaced, never written into."""

    def __init__(self):
        self.keys = None
        self.values = None

    def update(self, tokens):
        self.keys = (self.keys or ()) + tuple(tokens)
        self.values = (self.values or ()) + tuple(-t for t in tokens)


class FakeCache:
    """Like DynamicCache: a list of layers, created lazily on first update."""

    def __init__(self):
        self.layers = []
        self.seen_tokens = 0

    def update(self, layer_idx, tokens):
        while len(self.layers) <= layer_idx:
            self.layers.append(FakeLayer())
        self.layers[layer_idx].update(tokens)
        if layer_idx == 0:
            self.seen_tokens += len(tokens)

    def dump(self):
        return (self.seen_tokens, [(layer.keys, layer.values) for layer in self.layers])


class CancellableKVModel:
    """Feeds a chunk into a FakeCache layer by layer, token by token, and can be
    cancelled after a given number of tokens, as Modal's InputCancellation
    interrupts a call wherever it is."""

    LAYERS = 3

    def __init__(self, vision_len=6):
        self.vision_len = vision_len
        self.cancel_after = None
        self.calls = 0

    def step(self, state, text, images):
        self.calls += 1
        if state.cache is None:
            state.cache = FakeCache()
        fed = [1, 1] + [VS] + [7] * (self.vision_len - 2) + [VE] + [2, 3, 3]
        for n, tok in enumerate(fed):
            if self.cancel_after is not None and n == self.cancel_after:
                raise InputCancellation()
            for layer in range(self.LAYERS):
                state.cache.update(layer, [tok])
        return "words ...", 3, fed, state.next_position + len(fed)

    def prune(self, cache, keep):
        for layer in cache.layers:
            layer.keys = tuple(layer.keys[i] for i in keep)
            layer.values = tuple(layer.values[i] for i in keep)
        cache.seen_tokens = len(keep)
        return cache


class KVRollbackTest(unittest.TestCase):
    """A call cancelled half-way leaves the stream's state exactly as before it."""

    def setUp(self):
        self.model = CancellableKVModel()
        self.policy = vlm_logic.KVWindowPolicy(sink_tokens=2, text_window_tokens=4, vision_window_chunks=2, max_position=60)

    def chunk(self, state, start):
        return vlm_logic.run_kv_chunk(
            frames=[b"IMG0"], start_s=start, end_s=start + 1, prompt="p", state=state, policy=self.policy,
            max_frames=4, default_prompt="d", system="s", open_frame=fake_open, finish_frame=fake_finish,
            prune=self.model.prune, step=self.model.step, vision_ids=(VS, VE), clock=lambda: 0.0,
        )

    @staticmethod
    def snapshot(state):
        cache = state.cache.dump() if state.cache is not None else None
        return (cache, list(state.token_ids), list(state.spans), state.next_position, state.chunk_index, state.task)

    def test_cancel_mid_feed_at_every_point_and_every_chunk(self):
        state = vlm_logic.KVStreamState()
        pruned_before_a_cancel = reset_before_a_cancel = False
        for n in range(12):
            before = self.snapshot(state)
            if state.plan(self.policy):
                pruned_before_a_cancel = True
            if state.next_position >= self.policy.max_position:
                reset_before_a_cancel = True
            for cancel_after in (0, 1, 5, 9):
                self.model.cancel_after = cancel_after
                with self.assertRaises(InputCancellation):
                    self.chunk(state, n)
                self.assertEqual(self.snapshot(state), before, f"chunk {n}, cancelled after {cancel_after} tokens")
            self.model.cancel_after = None
            self.chunk(state, n)
            self.assertEqual(state.cache.seen_tokens, len(state))
            for keys, values in state.cache.dump()[1]:
                self.assertEqual(len(keys), len(state))
                self.assertEqual(list(keys), state.token_ids)
        # The cancelled calls covered the prune and the position-bound reset too.
        self.assertTrue(pruned_before_a_cancel)
        self.assertTrue(reset_before_a_cancel)

    def test_cancel_in_prune_and_other_base_exceptions(self):
        state = vlm_logic.KVStreamState()
        for n in range(3):
            self.chunk(state, n)
        before = self.snapshot(state)
        self.assertTrue(state.plan(self.policy))

        real = self.model.prune

        def prune_then_cancel(cache, keep):
            real(cache, keep)
            raise InputCancellation()

        self.model.prune = prune_then_cancel
        with self.assertRaises(InputCancellation):
            self.chunk(state, 3)
        self.assertEqual(self.snapshot(state), before)
        self.model.prune = real
        self.model.cancel_after = 4
        for exc in (KeyboardInterrupt, SystemExit):
            with mock.patch.object(self.model, "step", side_effect=exc):
                with self.assertRaises(exc):
                    self.chunk(state, 3)
            self.assertEqual(self.snapshot(state), before)

    def test_snapshot_and_restore_cache(self):
        self.assertIsNone(vlm_logic.snapshot_cache(None))
        self.assertIsNone(vlm_logic.restore_cache(None, None))
        cache = FakeCache()
        cache.update(0, [1, 2])
        snap = vlm_logic.snapshot_cache(cache)
        before = cache.dump()
        cache.update(0, [3])
        cache.update(1, [4])  # a layer created after the snapshot
        cache.extra = "new attribute"
        self.assertIs(vlm_logic.restore_cache(cache, snap), cache)
        self.assertEqual(cache.dump(), before)
        self.assertFalse(hasattr(cache, "extra"))


class ImportHygieneTest(unittest.TestCase):
    def test_vlm_logic_and_vlm_models_import_with_stdlib_only(self):
        # -I: isolated, -S: no site-packages, so a third-party import would fail;
        # and every module loaded must be a standard-library one.
        for module in ("vlm_logic", "vlm_models"):
            code = (
                f"import sys; sys.path.insert(0, sys.argv[1]); import {module}\n"
                "allowed = set(sys.stdlib_module_names) | set(sys.builtin_module_names)\n"
                "allowed |= {'vlm_logic', 'vlm_models', '__main__'}\n"
                "bad = sorted({m.split('.')[0] for m in sys.modules} - allowed)\n"
                "print(','.join(bad))\n"
            )
            out = subprocess.run(
                [sys.executable, "-I", "-S", "-B", "-c", code, HERE],
                capture_output=True, text=True, timeout=60, check=False,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.strip(), "", f"{module}: non-stdlib modules imported")

    def test_app_files_parse_and_import_only_light_modules_at_top_level(self):
        allowed = set(sys.stdlib_module_names) | {"modal", "vlm_logic", "__future__"}
        for name in APP_FILES:
            with self.subTest(file=name):
                with open(os.path.join(HERE, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read(), filename=name)
                for node in tree.body:
                    if isinstance(node, ast.Import):
                        mods = [a.name for a in node.names]
                    elif isinstance(node, ast.ImportFrom):
                        mods = [node.module or ""]
                    else:
                        continue
                    for mod in mods:
                        self.assertIn(mod.split(".")[0], allowed, f"{name}: top-level import of {mod}")


# ---------------------------------------------------------------------------
# App files against a stand-in `modal` module
# ---------------------------------------------------------------------------


class _Recorder:
    def __init__(self):
        self.apps = []
        self.cls_kwargs = []
        self.images = []
        self.volumes = []
        self.secrets = []


def _fake_modal(rec: _Recorder) -> types.ModuleType:
    mod = types.ModuleType("modal")

    class Image:
        def __init__(self):
            self.steps = []
            rec.images.append(self)

        @classmethod
        def debian_slim(cls, python_version=None):
            img = cls()
            img.steps.append(("debian_slim", python_version))
            return img

        def pip_install(self, *packages):
            self.steps.append(("pip_install", packages))
            return self

        def env(self, mapping):
            self.steps.append(("env", dict(mapping)))
            return self

        def add_local_python_source(self, *modules):
            self.steps.append(("add_local_python_source", modules))
            return self

    class Volume:
        @staticmethod
        def from_name(name, create_if_missing=False):
            rec.volumes.append((name, create_if_missing))
            return ("volume", name)

    class Secret:
        @staticmethod
        def from_name(name):
            rec.secrets.append(name)
            return ("secret", name)

    class App:
        def __init__(self, name):
            self.name = name
            rec.apps.append(name)

        def cls(self, **kwargs):
            rec.cls_kwargs.append(kwargs)
            return lambda klass: klass

    mod.Image = Image
    mod.Volume = Volume
    mod.Secret = Secret
    mod.App = App
    mod.enter = lambda **kw: (lambda f: f)
    mod.method = lambda **kw: (lambda f: f)
    return mod


def _load_app(filename: str, env: dict):
    """Import an app file with a stand-in modal and the given knobs (others cleared)."""
    rec = _Recorder()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GEMMA3_", "STREAMINGVLM_"))}
    clean.update(env)
    spec = importlib.util.spec_from_file_location(f"_under_test_{filename[:-3]}", os.path.join(HERE, filename))
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(sys.modules, {"modal": _fake_modal(rec)}), mock.patch.dict(os.environ, clean, clear=True):
        spec.loader.exec_module(module)
    return module, rec


class AppWiringTest(unittest.TestCase):
    def check_signatures(self, klass):
        sig = inspect.signature(klass.infer_chunk)
        self.assertEqual(list(sig.parameters), ["self", "frames", "start_ts_s", "end_ts_s", "prompt", "session_id"])
        self.assertIsNone(sig.parameters["prompt"].default)
        self.assertIsNone(sig.parameters["session_id"].default)
        sig = inspect.signature(klass.close)
        self.assertEqual(list(sig.parameters), ["self", "session_id"])
        self.assertIsNone(sig.parameters["session_id"].default)

    def test_gemma3_defaults(self):
        mod, rec = _load_app("gemma3_vlm_app.py", {})
        self.assertEqual(rec.apps, ["foresight-gemma3-vlm"])
        self.assertTrue(hasattr(mod, "Gemma3VLMSession"))
        self.assertEqual(mod.CLASS_NAME, "Gemma3VLMSession")
        (kw,) = rec.cls_kwargs
        self.assertEqual(kw["gpu"], "L40S")
        self.assertEqual(kw["timeout"], 1200)
        self.assertEqual(kw["scaledown_window"], 300)
        self.assertEqual(kw["min_containers"], 1)
        self.assertEqual(kw["secrets"], [])
        self.assertEqual(rec.volumes, [("gemma3-vlm-hf-cache", True)])
        self.assertEqual(list(kw["volumes"].values()), [("volume", "gemma3-vlm-hf-cache")])
        steps = rec.images[0].steps
        self.assertEqual(steps[-1], ("add_local_python_source", ("vlm_logic", "vlm_models")))
        env = dict(s for s in steps if s[0] == "env")["env"]
        self.assertEqual(env["HF_HOME"], list(kw["volumes"])[0])
        self.assertEqual(env["GEMMA3_MAX_FRAMES_PER_CHUNK"], "6")
        self.check_signatures(mod.Gemma3VLMSession)

    def test_gemma3_knobs_and_secret(self):
        _, rec = _load_app(
            "gemma3_vlm_app.py",
            {"GEMMA3_VLM_MODAL_APP_NAME": "staging-vlm", "GEMMA3_GPU": "A10G", "GEMMA3_HF_SECRET_NAME": "hf-token"},
        )
        self.assertEqual(rec.apps, ["staging-vlm"])
        self.assertEqual(rec.cls_kwargs[0]["gpu"], "A10G")
        self.assertEqual(rec.secrets, ["hf-token"])
        self.assertEqual(rec.cls_kwargs[0]["secrets"], [("secret", "hf-token")])

    def test_streamingvlm_defaults(self):
        mod, rec = _load_app("streaming_vlm_app.py", {})
        self.assertEqual(rec.apps, ["foresight-streamingvlm"])
        self.assertEqual(mod.CLASS_NAME, "StreamingVLMSession")
        self.assertTrue(hasattr(mod, "StreamingVLMSession"))
        self.assertEqual(rec.cls_kwargs[0]["gpu"], "A100")
        self.check_signatures(mod.StreamingVLMSession)

    def test_methods_scope_history_per_session(self):
        for filename, class_name in (("gemma3_vlm_app.py", "Gemma3VLMSession"),):
            with self.subTest(app=filename):
                mod, _ = _load_app(filename, {})
                prompts = []

                def generate(text, images, prompts=prompts):
                    prompts.append(text)
                    return f"caption {len(prompts)}", 3

                obj = getattr(mod, class_name)()
                # What load() builds, with the PIL/torch parts swapped for fakes;
                # everything else is the deployed code.
                captioner = vlm_models.Gemma3Captioner(mod.CFG, model=None, processor=None, torch=None)
                captioner.open_frame, captioner.finish_frame = fake_open, fake_finish
                captioner._generate = generate
                obj._captioner = captioner

                empty = obj.infer_chunk([], 0.0, 1.0, "p", session_id="a")
                self.assertEqual((empty["caption"], empty["tokens_generated"]), ("", 0))
                self.assertEqual(prompts, [])

                self.assertEqual(obj.infer_chunk([b"IMG0"], 0.0, 1.0, "p", session_id="a")["caption"], "caption 1")
                obj.infer_chunk([b"IMG0"], 0.0, 1.0, "p", session_id="b")
                self.assertNotIn("caption 1", prompts[1], "stream b saw stream a's history")
                obj.infer_chunk([b"IMG0"], 1.0, 2.0, "p", session_id="a")
                self.assertIn("- 0.0-1.0s: caption 1", prompts[2])
                # Positional call without session_id: the original's shared history.
                obj.infer_chunk([b"IMG0"], 0.0, 1.0, "p")
                obj.infer_chunk([b"IMG0"], 1.0, 2.0, "p")
                self.assertIn("- 0.0-1.0s: caption 4", prompts[4])
                self.assertNotIn("caption 1", prompts[4])

                obj.close(session_id="a")
                obj.infer_chunk([b"IMG0"], 2.0, 3.0, "p", session_id="a")
                self.assertNotIn("Recent prior observations", prompts[5])
                obj.infer_chunk([b"IMG0"], 1.0, 2.0, "p", session_id="b")
                self.assertIn("- 0.0-1.0s: caption 2", prompts[6])
                obj.close()
                obj.infer_chunk([b"IMG0"], 2.0, 3.0, "p")
                self.assertNotIn("Recent prior observations", prompts[7])

                with self.assertRaises(NoDecodableFramesError):
                    obj.infer_chunk([b"junk"], 0.0, 1.0, "p", session_id="a")


class StreamingAppTest(unittest.TestCase):
    def test_kv_state_is_scoped_per_session(self):
        mod, _ = _load_app("streaming_vlm_app.py", {"STREAMINGVLM_VISION_WINDOW_CHUNKS": "1"})
        model = FakeKVModel()
        obj = mod.StreamingVLMSession()
        ids = {"<|vision_start|>": VS, "<|vision_end|>": VE, "<|im_end|>": 99}
        processor = types.SimpleNamespace(tokenizer=types.SimpleNamespace(convert_tokens_to_ids=ids.__getitem__))
        captioner = vlm_models.StreamingVLMCaptioner(mod.CFG, model=None, processor=processor, torch=None)
        self.assertEqual(captioner._vision_ids, (VS, VE))
        captioner.open_frame, captioner.finish_frame = fake_open, fake_finish
        captioner._step, captioner._prune = model.step, model.prune
        obj._captioner = captioner
        sessions = captioner.sessions

        self.assertEqual(obj.infer_chunk([], 0.0, 1.0, "p", session_id="a")["caption"], "")
        self.assertEqual(model.texts, [])
        self.assertEqual(obj.infer_chunk([b"IMG0"], 0.0, 1.0, "p", session_id="a")["caption"], "caption 1")
        obj.infer_chunk([b"IMG0"], 0.0, 1.0, "p", session_id="b")
        self.assertIn("<|im_start|>system", model.texts[1], "stream b continued stream a's cache")
        obj.infer_chunk([b"IMG0"], 1.0, 2.0, "p", session_id="a")
        self.assertTrue(model.texts[2].startswith("<|im_end|>"))
        # One-chunk vision window: chunk 0's vision tokens were dropped from a's cache.
        self.assertTrue(model.pruned)
        self.assertNotIn(0, {s.chunk for s in sessions.get("a").spans if s.kind == V})
        # Positional calls without session_id: the original's shared state.
        obj.infer_chunk([b"IMG0"], 0.0, 1.0, "p")
        obj.infer_chunk([b"IMG0"], 1.0, 2.0, "p")
        self.assertTrue(model.texts[4].startswith("<|im_end|>"))

        obj.close(session_id="a")
        self.assertNotIn("a", sessions)
        obj.infer_chunk([b"IMG0"], 2.0, 3.0, "p", session_id="a")
        self.assertIn("<|im_start|>system", model.texts[5])
        obj.infer_chunk([b"IMG0"], 1.0, 2.0, "p", session_id="b")
        self.assertTrue(model.texts[6].startswith("<|im_end|>"))
        obj.close()
        self.assertTrue(sessions.get(None).empty)
        self.assertFalse(sessions.get("b").empty)
        self.assertEqual(sessions._max, 16)

    def test_both_apps_share_the_deployment_settings(self):
        _, gemma = _load_app("gemma3_vlm_app.py", {})
        _, legacy = _load_app("streaming_vlm_app.py", {"STREAMINGVLM_HF_SECRET_NAME": "hf"})
        g, s = gemma.cls_kwargs[0], legacy.cls_kwargs[0]
        self.assertEqual(set(g), set(s))
        for key in ("timeout", "scaledown_window", "min_containers"):
            self.assertEqual(g[key], s[key])
        self.assertEqual(list(g["volumes"]), list(s["volumes"]))
        self.assertEqual(legacy.volumes, [("streamingvlm-hf-cache", True)])
        self.assertEqual(s["secrets"], [("secret", "hf")])
        steps = legacy.images[0].steps
        self.assertEqual(steps[-1], ("add_local_python_source", ("vlm_logic", "vlm_models")))
        # modal-go's calls are CBOR-encoded: the container needs cbor2.
        for rec in (gemma, legacy):
            (pip,) = [x[1] for x in rec.images[0].steps if x[0] == "pip_install"]
            self.assertTrue(any(p.startswith("cbor2==") for p in pip), pip)
        env = dict(x for x in steps if x[0] == "env")["env"]
        self.assertEqual(env["STREAMINGVLM_TEXT_SINK_TOKENS"], "512")


FAKE_MODAL = """#!/bin/sh
if [ "$1" = "--version" ]; then
  echo "modal client version: $FAKE_MODAL_VERSION"
  exit 0
fi
{
  for a in "$@"; do echo "ARG $a"; done
  echo "ENV GEMMA3_HF_SECRET_NAME=${GEMMA3_HF_SECRET_NAME:-}"
  echo "ENV GEMMA3_VLM_MODAL_APP_NAME=${GEMMA3_VLM_MODAL_APP_NAME:-}"
  echo "ENV GEMMA3_GPU=${GEMMA3_GPU:-}"
  echo "ENV STREAMINGVLM_MODAL_APP_NAME=${STREAMINGVLM_MODAL_APP_NAME:-}"
} > "$FAKE_MODAL_LOG"
"""


@unittest.skipUnless(shutil.which("bash"), "bash not available")
class DeployScriptTest(unittest.TestCase):
    """deploy.sh against a fake `modal` CLI placed first on PATH."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.log = os.path.join(self.tmp.name, "modal.log")
        fake = os.path.join(self.tmp.name, "modal")
        with open(fake, "w", encoding="utf-8") as f:
            f.write(FAKE_MODAL)
        os.chmod(fake, 0o755)

    def deploy(self, version="1.2.0", **env):
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GEMMA3_", "STREAMINGVLM_", "FORESIGHT_", "MODAL_"))}
        base["PATH"] = self.tmp.name + os.pathsep + base.get("PATH", "/usr/bin:/bin")
        base.update(FAKE_MODAL_VERSION=version, FAKE_MODAL_LOG=self.log)
        base.update(env)
        return subprocess.run(
            ["bash", os.path.join(HERE, "deploy.sh")],
            env=base, capture_output=True, text=True, timeout=60, check=False,
        )

    def logged(self):
        with open(self.log, encoding="utf-8") as f:
            return f.read().splitlines()

    def test_default_deploys_gemma3_to_main(self):
        out = self.deploy(FORESIGHT_GEMMA3_HF_SECRET_NAME="hf-token")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = self.logged()
        self.assertEqual(
            [line[4:] for line in lines if line.startswith("ARG ")],
            ["deploy", "-e", "main", os.path.join(HERE, "gemma3_vlm_app.py")],
        )
        self.assertIn("ENV GEMMA3_VLM_MODAL_APP_NAME=foresight-gemma3-vlm", lines)
        self.assertIn("ENV GEMMA3_HF_SECRET_NAME=hf-token", lines)

    def test_gated_gemma3_without_secret_refused(self):
        for env in ({}, {"FORESIGHT_GEMMA3_HF_SECRET_NAME": ""}, {"GEMMA3_HF_SECRET_NAME": "  "},
                    {"FORESIGHT_HF_MODEL_PUBLIC": "yes"}, {"FORESIGHT_DEPLOY_DRY_RUN": "1"}):
            with self.subTest(env=env):
                out = self.deploy(**env)
                self.assertNotEqual(out.returncode, 0)
                self.assertIn("gated", out.stderr)
                self.assertIn("FORESIGHT_GEMMA3_HF_SECRET_NAME=", out.stderr)
                self.assertIn("FORESIGHT_HF_MODEL_PUBLIC=1", out.stderr)
                self.assertNotIn("dry run", out.stdout)
        self.assertFalse(os.path.exists(self.log), "the modal CLI was asked to deploy")

    def test_public_model_flag_deploys_without_secret(self):
        out = self.deploy(FORESIGHT_HF_MODEL_PUBLIC="1", GEMMA3_MODEL_ID="someone/open-gemma")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = self.logged()
        self.assertIn("ARG deploy", lines)
        self.assertIn("ENV GEMMA3_HF_SECRET_NAME=", lines)

    def test_streamingvlm_needs_no_secret(self):
        out = self.deploy(FORESIGHT_INFERENCE_BACKEND="streamingvlm")
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_environment_secret_and_knobs_pass_through(self):
        out = self.deploy(
            version="1.3.2",
            FORESIGHT_MODAL_ENVIRONMENT="staging",
            FORESIGHT_GEMMA3_HF_SECRET_NAME="hf-secret",
            GEMMA3_VLM_MODAL_APP_NAME="vlm-staging",
            GEMMA3_GPU="H100",
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = self.logged()
        self.assertIn("ARG staging", lines)
        self.assertIn("ENV GEMMA3_HF_SECRET_NAME=hf-secret", lines)
        self.assertIn("ENV GEMMA3_VLM_MODAL_APP_NAME=vlm-staging", lines)
        self.assertIn("ENV GEMMA3_GPU=H100", lines)
        # A non-default app name is echoed as the server settings to use.
        self.assertIn("FORESIGHT_MODAL_APP_NAME=vlm-staging", out.stdout)

    def test_explicit_secret_name_wins(self):
        out = self.deploy(FORESIGHT_GEMMA3_HF_SECRET_NAME="from-foresight", GEMMA3_HF_SECRET_NAME="explicit")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("ENV GEMMA3_HF_SECRET_NAME=explicit", self.logged())

    def test_streamingvlm_backend(self):
        out = self.deploy(FORESIGHT_INFERENCE_BACKEND="streamingvlm")
        self.assertEqual(out.returncode, 0, out.stderr)
        lines = self.logged()
        self.assertIn("ARG " + os.path.join(HERE, "streaming_vlm_app.py"), lines)
        self.assertIn("ENV STREAMINGVLM_MODAL_APP_NAME=foresight-streamingvlm", lines)

    def test_bad_backend(self):
        for backend in ("none", "gpt"):
            out = self.deploy(FORESIGHT_INFERENCE_BACKEND=backend)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("FORESIGHT_INFERENCE_BACKEND", out.stderr)
        self.assertFalse(os.path.exists(self.log))

    def test_old_sdk_refused(self):
        for version in ("1.1.9", "0.73.1"):
            out = self.deploy(version=version, FORESIGHT_GEMMA3_HF_SECRET_NAME="hf-token")
            self.assertNotEqual(out.returncode, 0)
            self.assertIn("too old", out.stderr)
            self.assertIn("modal>=1.2", out.stderr)
        self.assertFalse(os.path.exists(self.log))

    def test_missing_cli(self):
        out = self.deploy(MODAL_BIN=os.path.join(self.tmp.name, "no-such-modal"))
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("pip install 'modal>=1.2'", out.stderr)

    def test_dry_run(self):
        out = self.deploy(FORESIGHT_DEPLOY_DRY_RUN="1", FORESIGHT_GEMMA3_HF_SECRET_NAME="hf-token")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("dry run:", out.stdout)
        self.assertFalse(os.path.exists(self.log))


if __name__ == "__main__":
    unittest.main()

"""Smoke tests of the apps' model code on tiny random-weight models.

They run the same ``vlm_models`` classes the Modal apps load, on models built
in code (model_harness.py), with real JPEG frames made with Pillow. Captions
from random weights are gibberish; what is checked is that every step runs,
that the legacy app's KV cache, bookkeeping and RoPE positions stay in step
far past its first eviction, that sessions are isolated, that memory stays
bounded, and that a call cancelled half-way leaves the cache as before.

Needs torch, transformers (4.5x), tokenizers, Pillow and numpy (torchvision
too for Qwen2.5-VL's video processor); without them every test skips and
says which are missing. CPU by default, CUDA in bf16 where available (see
model_harness for FORESIGHT_SMOKE_DEVICE / FORESIGHT_SMOKE_DTYPE).
gpu_smoke.py runs this module and writes a report.
"""

from __future__ import annotations

import os
import sys
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import model_harness  # noqa: E402
import vlm_logic  # noqa: E402

MISSING = model_harness.missing_packages()
MISSING_QWEN = model_harness.missing_packages(model_harness.REQUIRED_FOR_QWEN)
SKIP_REASON = f"model smoke tests skipped: missing {', '.join(MISSING)} (pip install torch transformers tokenizers pillow numpy)"
SKIP_REASON_QWEN = f"StreamingVLM smoke tests skipped: missing {', '.join(MISSING_QWEN)}"
if MISSING:
    print(f"test_model_smoke: {SKIP_REASON}", file=sys.stderr)

# Measurements the tests record; gpu_smoke.py puts them into its report.
REPORT: dict = {}


class Cancelled(BaseException):
    """Stands in for Modal's InputCancellation (also a BaseException)."""


def frames(start: int, count: int) -> list:
    return [model_harness.jpeg_frame(start + i) for i in range(count)]


@unittest.skipIf(MISSING, SKIP_REASON)
class Gemma3SmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cfg = vlm_logic.Gemma3Config(
            max_frame_edge=model_harness.FRAME_EDGE, max_frames_per_chunk=3, max_new_tokens=5,
            max_history_entries=3, max_sessions=4,
        )
        cls.captioner = model_harness.tiny_gemma3(cls.cfg)

    def test_chunks_sessions_close_and_bad_frames(self):
        cap = self.captioner
        replies = []
        for n in range(6):  # two sessions interleaved, several chunks each
            for session in ("a", "b"):
                reply = cap.infer_chunk(frames(n * 5, 5), float(n), n + 1.0, "Narrate.", session_id=session)
                self.assertEqual(set(reply), {"caption", "chunk_start_s", "chunk_end_s", "latency_ms", "tokens_generated"})
                self.assertEqual((reply["chunk_start_s"], reply["chunk_end_s"]), (float(n), n + 1.0))
                self.assertGreaterEqual(reply["tokens_generated"], 1)
                self.assertLessEqual(reply["tokens_generated"], self.cfg.max_new_tokens)
                self.assertIsInstance(reply["caption"], str)
                replies.append(reply)
            for session in ("a", "b"):
                self.assertLessEqual(len(cap.sessions.get(session)), self.cfg.max_history_entries)
        # Undecodable frames are skipped while one decodes; none decoding is an error.
        reply = cap.infer_chunk([b"not a jpeg", frames(99, 1)[0], b"\xff\xd8junk"], 6.0, 7.0, None, session_id="a")
        self.assertGreaterEqual(reply["tokens_generated"], 1)
        with self.assertRaises(vlm_logic.NoDecodableFramesError):
            cap.infer_chunk([b"not a jpeg"], 7.0, 8.0, None, session_id="a")
        # Empty chunk: no model call.
        self.assertEqual(cap.infer_chunk([], 7.0, 8.0, None, session_id="a")["tokens_generated"], 0)
        # Close and reopen: a fresh history; b's is untouched.
        b_before = cap.sessions.get("b").entries()
        cap.close(session_id="a")
        self.assertNotIn("a", cap.sessions)
        cap.infer_chunk(frames(200, 2), 8.0, 9.0, None, session_id="a")
        self.assertLessEqual(len(cap.sessions.get("a")), 1)
        self.assertEqual(cap.sessions.get("b").entries(), b_before)
        # The shared (no session_id) history of the original still works.
        cap.infer_chunk(frames(300, 2), 0.0, 1.0, None)
        cap.close()
        REPORT["gemma3_chunks"] = len(replies) + 3
        REPORT["gemma3_sample_caption"] = replies[-1]["caption"][:80]

    def test_generate_does_not_compile(self):
        # disable_compile reaches generate(); with it, no torch.compile runs.
        self.assertTrue(self.cfg.generation_kwargs()["disable_compile"])
        try:
            from torch._dynamo.utils import counters
        except ImportError:  # pragma: no cover - a torch without dynamo cannot compile
            counters = None
        before = sum(counters["stats"].values()) if counters is not None else 0
        self.captioner.infer_chunk(frames(400, 2), 0.0, 1.0, None, session_id="compile")
        if counters is not None:
            self.assertEqual(sum(counters["stats"].values()), before, "torch.compile ran in generate()")


@unittest.skipIf(MISSING_QWEN, SKIP_REASON_QWEN if not MISSING else SKIP_REASON)
class StreamingVLMSmokeTest(unittest.TestCase):
    CHUNKS = 60  # x 4 frames: 240 frames, far past the 42 where the original once crashed

    def setUp(self):
        self.cfg = vlm_logic.StreamingVLMConfig(
            max_frame_edge=model_harness.FRAME_EDGE, max_frames_per_chunk=4, max_new_tokens=6,
            do_sample=False, max_sessions=4,
            # Small windows, so eviction starts within a few chunks, and a
            # position bound the long run crosses.
            text_sink_tokens=48, text_window_tokens=96, vision_window_chunks=2, max_position=2048,
        )
        self.cap = model_harness.tiny_qwen25vl(self.cfg)
        self.prunes = 0
        real_prune = self.cap._prune

        def counting_prune(cache, keep):
            self.prunes += 1
            return real_prune(cache, keep)

        self.cap._prune = counting_prune

    def chunk(self, n, session="a", count=4, prompt="Narrate."):
        return self.cap.infer_chunk(frames(n * count, count), float(n), n + 1.0, prompt, session_id=session)

    def check_consistent(self, state):
        """Cache, token ids, spans and positions agree."""
        layers = model_harness.cache_layers(state.cache)
        self.assertTrue(layers)
        for keys, values in layers:
            self.assertEqual(keys.shape[2], len(state))
            self.assertEqual(values.shape[2], len(state))
        self.assertEqual(state.cache.get_seq_length(), len(state))
        self.assertEqual(sum(s.length for s in state.spans), len(state))
        self.assertGreater(state.next_position, 0)

    @staticmethod
    def snapshot(state):
        return (
            [(k.clone(), v.clone()) for k, v in model_harness.cache_layers(state.cache)],
            list(state.token_ids), list(state.spans), state.next_position, state.chunk_index, state.task,
        )

    def assertSameState(self, state, snap):
        import torch

        layers = model_harness.cache_layers(state.cache)
        self.assertEqual(len(layers), len(snap[0]))
        for (k, v), (k0, v0) in zip(layers, snap[0]):
            self.assertTrue(torch.equal(k, k0) and torch.equal(v, v0), "cache tensors changed")
        self.assertEqual((list(state.token_ids), list(state.spans), state.next_position, state.chunk_index, state.task), snap[1:])

    def test_long_stream_past_eviction_stays_consistent_and_bounded(self):
        a = self.cap.sessions.get("a")
        lengths, vision_lengths, fed_lengths, resets = [], [], [], 0
        last_position, last_index = 0, 0
        for n in range(self.CHUNKS):
            reply = self.chunk(n)
            self.assertGreaterEqual(reply["tokens_generated"], 1)
            self.check_consistent(a)
            if a.chunk_index < last_index:
                self.fail("chunk index went backwards")
            if a.chunk_index == 1 and n > 0:
                resets += 1  # the position bound started the session over
            else:
                self.assertGreater(a.next_position, last_position)
            last_position, last_index = a.next_position, a.chunk_index
            latest = [s for s in a.spans if s.chunk == a.chunk_index - 1]  # this chunk's tokens
            vision_lengths.extend(s.length for s in latest if s.kind == vlm_logic.VISION)
            fed_lengths.append(sum(s.length for s in latest))
            lengths.append(len(a))
            # Only the last vision_window_chunks chunks keep their vision tokens.
            kept = {s.chunk for s in a.spans if s.kind == vlm_logic.VISION}
            self.assertLessEqual(len(kept), self.cfg.vision_window_chunks)
        self.assertGreater(self.prunes, 0, "the window never evicted")
        self.assertGreaterEqual(resets, 1, "the position bound was never reached")
        bound = self.cap.policy.cache_bound(max(vision_lengths)) + max(fed_lengths)
        self.assertLessEqual(max(lengths), bound)
        REPORT["streamingvlm_chunks"] = self.CHUNKS
        REPORT["streamingvlm_frames"] = self.CHUNKS * 4
        REPORT["streamingvlm_prunes"] = self.prunes
        REPORT["streamingvlm_resets"] = resets
        REPORT["streamingvlm_max_cache_tokens"] = max(lengths)
        REPORT["streamingvlm_cache_bound_tokens"] = bound
        REPORT["streamingvlm_vision_tokens_per_chunk"] = max(vision_lengths)

    def test_sessions_isolated_close_reopen_and_bad_frames(self):
        for n in range(8):
            self.chunk(n, "a")
            snap_a = self.snapshot(self.cap.sessions.get("a"))
            self.chunk(n, "b")
            self.assertSameState(self.cap.sessions.get("a"), snap_a)
        a, b = self.cap.sessions.get("a"), self.cap.sessions.get("b")
        self.check_consistent(a)
        self.check_consistent(b)
        self.assertIsNot(a.cache, b.cache)
        # Undecodable frames skipped; a chunk of nothing but junk changes nothing.
        self.cap.infer_chunk([b"junk", frames(500, 1)[0]], 8.0, 9.0, None, session_id="a")
        self.check_consistent(a)
        snap_a = self.snapshot(a)
        with self.assertRaises(vlm_logic.NoDecodableFramesError):
            self.cap.infer_chunk([b"junk", b"\xff\xd8\xff"], 9.0, 10.0, None, session_id="a")
        self.assertSameState(a, snap_a)
        # Frames of different sizes in one chunk (resized to the first one's).
        mixed = [model_harness.jpeg_frame(600), model_harness.jpeg_frame(601, size=(40, 60))]
        self.cap.infer_chunk(mixed, 10.0, 11.0, None, session_id="a")
        self.check_consistent(a)
        # Close and reopen: a starts over; b goes on.
        snap_b = self.snapshot(b)
        self.cap.close(session_id="a")
        self.assertNotIn("a", self.cap.sessions)
        self.chunk(20, "a")
        self.assertEqual(self.cap.sessions.get("a").chunk_index, 1)
        self.assertSameState(b, snap_b)
        self.chunk(21, "b")
        self.check_consistent(b)

    def test_cancelled_call_leaves_the_cache_as_before(self):
        a = self.cap.sessions.get("a")
        for n in range(45):  # well past the first evictions
            self.chunk(n)
        self.assertGreater(self.prunes, 0)
        cancelled = 0
        # Cancel at the first forward (after the prune), at the first decode
        # step (the chunk fully fed) and at a later decode step.
        for forward_no in (1, 2, 4):
            calls = {"n": 0}

            def cancel(state, past, forward_no=forward_no, calls=calls):
                calls["n"] += 1
                if calls["n"] == forward_no:
                    raise Cancelled()

            snap = self.snapshot(a)
            self.cap.before_forward = cancel
            try:
                with self.assertRaises(Cancelled):
                    self.chunk(45 + cancelled)
            finally:
                self.cap.before_forward = None
            cancelled += 1
            self.assertSameState(a, snap)
            self.check_consistent(a)
            # The stream goes on from its last good chunk.
            self.chunk(50 + cancelled)
            self.check_consistent(a)
        REPORT["streamingvlm_cancellations_rolled_back"] = cancelled


if __name__ == "__main__":
    unittest.main()

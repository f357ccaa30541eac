"""Pure logic shared by the Modal VLM apps (Gemma 3 and legacy StreamingVLM).

Everything here is plain Python with standard-library imports only, so it can be
unit-tested where no third-party package can be installed (CI) and imported by
the Modal apps inside their containers. The apps inject the heavy parts (image
decoding with PIL, generation with transformers) as callables.

Behaviour follows the original remote classes (seed-protocol.md) with one fix:
caption history is scoped per stream (``session_id``) instead of being shared by
every stream that lands on the same container.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any, Callable, Generic, Hashable, Iterable, Mapping, Optional, Sequence, TypeVar

# The original's VISION_PROMPT; used when a call brings no prompt.
DEFAULT_PROMPT = (
    "Provide a concise present-tense narration of the wearer's current actions and surroundings."
)

# Instruction placed between the history and the task (see build_prompt).
INSTRUCTION = (
    "Use only what is visible in these frames. "
    "Answer with exactly one concise present-tense sentence."
)

HISTORY_HEADER = "Recent prior observations (may be stale):"

# Session ids come from the Go adapter (a per-stream id); anything longer is a
# misuse and would only waste memory as a dictionary key.
MAX_SESSION_ID_LEN = 256

T = TypeVar("T")


# --------------------------------------------------------------------------
# Configuration (env knobs)
# --------------------------------------------------------------------------


class ConfigError(ValueError):
    """A knob has a value that cannot be parsed or is out of range."""


def _raw(env: Mapping[str, str], key: str) -> Optional[str]:
    # An empty value counts as unset: deploy scripts commonly export empty vars.
    value = env.get(key)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_str(env: Mapping[str, str], key: str, default: str) -> str:
    """Return the trimmed value of ``key`` or ``default`` when unset/empty."""
    value = _raw(env, key)
    return default if value is None else value


def env_opt_str(env: Mapping[str, str], key: str) -> Optional[str]:
    """Return the trimmed value of ``key`` or None when unset/empty."""
    return _raw(env, key)


def env_int(env: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    """Parse an integer knob; reject garbage and values below ``minimum``."""
    value = _raw(env, key)
    if value is None:
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r}: not an integer") from None
    if parsed < minimum:
        raise ConfigError(f"{key}={parsed}: must be >= {minimum}")
    return parsed


def env_float(env: Mapping[str, str], key: str, default: float, minimum: float, maximum: Optional[float] = None) -> float:
    """Parse a float knob within [minimum, maximum]."""
    value = _raw(env, key)
    if value is None:
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r}: not a number") from None
    if parsed != parsed or parsed < minimum or (maximum is not None and parsed > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{key}={value}: must be {bound}")
    return parsed


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def env_bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    """Parse a boolean knob (1/0, true/false, yes/no, on/off; case-insensitive)."""
    value = _raw(env, key)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{key}={value!r}: not a boolean (use true or false)")


@dataclasses.dataclass(frozen=True)
class Gemma3Config:
    """Knobs of the Gemma 3 app; defaults are the original's."""

    model_id: str = "google/gemma-3-4b-it"
    gpu: str = "L40S"
    app_name: str = "foresight-gemma3-vlm"
    max_frame_edge: int = 720
    max_frames_per_chunk: int = 6
    max_history_entries: int = 6
    max_new_tokens: int = 64
    temperature: float = 0.2
    top_p: float = 0.9
    do_sample: bool = False
    default_prompt: str = DEFAULT_PROMPT
    hf_secret_name: Optional[str] = None
    # New: bound on per-stream histories kept by one container.
    max_sessions: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Gemma3Config":
        """Build the config from a mapping such as ``os.environ`` (pure function)."""
        d = cls()
        return cls(
            model_id=env_str(env, "GEMMA3_MODEL_ID", d.model_id),
            gpu=env_str(env, "GEMMA3_GPU", d.gpu),
            app_name=env_str(env, "GEMMA3_VLM_MODAL_APP_NAME", d.app_name),
            max_frame_edge=env_int(env, "GEMMA3_MAX_FRAME_EDGE", d.max_frame_edge, 1),
            max_frames_per_chunk=env_int(env, "GEMMA3_MAX_FRAMES_PER_CHUNK", d.max_frames_per_chunk, 1),
            max_history_entries=env_int(env, "GEMMA3_MAX_HISTORY_ENTRIES", d.max_history_entries, 0),
            max_new_tokens=env_int(env, "GEMMA3_MAX_NEW_TOKENS", d.max_new_tokens, 1),
            temperature=env_float(env, "GEMMA3_TEMPERATURE", d.temperature, 0.0),
            top_p=env_float(env, "GEMMA3_TOP_P", d.top_p, 0.0, 1.0),
            do_sample=env_bool(env, "GEMMA3_DO_SAMPLE", d.do_sample),
            default_prompt=env_str(env, "GEMMA3_DEFAULT_PROMPT", d.default_prompt),
            hf_secret_name=env_opt_str(env, "GEMMA3_HF_SECRET_NAME"),
            max_sessions=env_int(env, "GEMMA3_MAX_SESSIONS", d.max_sessions, 1),
        )

    def to_env(self) -> dict:
        """The knobs as env vars, baked into the image so the container parses
        the same values the deploying machine saw."""
        env = {
            "GEMMA3_MODEL_ID": self.model_id,
            "GEMMA3_GPU": self.gpu,
            "GEMMA3_VLM_MODAL_APP_NAME": self.app_name,
            "GEMMA3_MAX_FRAME_EDGE": str(self.max_frame_edge),
            "GEMMA3_MAX_FRAMES_PER_CHUNK": str(self.max_frames_per_chunk),
            "GEMMA3_MAX_HISTORY_ENTRIES": str(self.max_history_entries),
            "GEMMA3_MAX_NEW_TOKENS": str(self.max_new_tokens),
            "GEMMA3_TEMPERATURE": repr(self.temperature),
            "GEMMA3_TOP_P": repr(self.top_p),
            "GEMMA3_DO_SAMPLE": "true" if self.do_sample else "false",
            "GEMMA3_DEFAULT_PROMPT": self.default_prompt,
            "GEMMA3_MAX_SESSIONS": str(self.max_sessions),
        }
        if self.hf_secret_name:
            env["GEMMA3_HF_SECRET_NAME"] = self.hf_secret_name
        return env

    def generation_kwargs(self) -> dict:
        """Arguments for ``model.generate``: greedy unless sampling is enabled
        (temperature/top_p are only passed when they are used, which keeps
        transformers from warning about ignored flags)."""
        return generation_kwargs(self.max_new_tokens, self.do_sample, self.temperature, self.top_p)


@dataclasses.dataclass(frozen=True)
class StreamingVLMConfig:
    """Knobs of the legacy StreamingVLM app (``STREAMINGVLM_*``)."""

    model_id: str = "mit-han-lab/StreamingVLM"
    # The StreamingVLM checkpoint is a Qwen2.5-VL fine-tune; the processor
    # (tokenizer, chat template, image processor) comes from the base model.
    processor_id: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    gpu: str = "A100"
    app_name: str = "foresight-streamingvlm"
    max_frame_edge: int = 720
    max_frames_per_chunk: int = 4
    # Sliding text window: how many recent captions are carried into the next chunk.
    max_history_entries: int = 8
    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.05
    do_sample: bool = True
    default_prompt: str = DEFAULT_PROMPT
    hf_secret_name: Optional[str] = None
    max_sessions: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "StreamingVLMConfig":
        """Build the config from a mapping such as ``os.environ`` (pure function)."""
        d = cls()
        return cls(
            model_id=env_str(env, "STREAMINGVLM_MODEL_ID", d.model_id),
            processor_id=env_str(env, "STREAMINGVLM_PROCESSOR_ID", d.processor_id),
            gpu=env_str(env, "STREAMINGVLM_GPU", d.gpu),
            app_name=env_str(env, "STREAMINGVLM_MODAL_APP_NAME", d.app_name),
            max_frame_edge=env_int(env, "STREAMINGVLM_MAX_FRAME_EDGE", d.max_frame_edge, 1),
            max_frames_per_chunk=env_int(env, "STREAMINGVLM_MAX_FRAMES_PER_CHUNK", d.max_frames_per_chunk, 1),
            max_history_entries=env_int(env, "STREAMINGVLM_MAX_HISTORY_ENTRIES", d.max_history_entries, 0),
            max_new_tokens=env_int(env, "STREAMINGVLM_MAX_NEW_TOKENS", d.max_new_tokens, 1),
            temperature=env_float(env, "STREAMINGVLM_TEMPERATURE", d.temperature, 0.0),
            top_p=env_float(env, "STREAMINGVLM_TOP_P", d.top_p, 0.0, 1.0),
            repetition_penalty=env_float(env, "STREAMINGVLM_REPETITION_PENALTY", d.repetition_penalty, 0.0),
            do_sample=env_bool(env, "STREAMINGVLM_DO_SAMPLE", d.do_sample),
            default_prompt=env_str(env, "STREAMINGVLM_DEFAULT_PROMPT", d.default_prompt),
            hf_secret_name=env_opt_str(env, "STREAMINGVLM_HF_SECRET_NAME"),
            max_sessions=env_int(env, "STREAMINGVLM_MAX_SESSIONS", d.max_sessions, 1),
        )

    def to_env(self) -> dict:
        """The knobs as env vars, baked into the image (see Gemma3Config.to_env)."""
        env = {
            "STREAMINGVLM_MODEL_ID": self.model_id,
            "STREAMINGVLM_PROCESSOR_ID": self.processor_id,
            "STREAMINGVLM_GPU": self.gpu,
            "STREAMINGVLM_MODAL_APP_NAME": self.app_name,
            "STREAMINGVLM_MAX_FRAME_EDGE": str(self.max_frame_edge),
            "STREAMINGVLM_MAX_FRAMES_PER_CHUNK": str(self.max_frames_per_chunk),
            "STREAMINGVLM_MAX_HISTORY_ENTRIES": str(self.max_history_entries),
            "STREAMINGVLM_MAX_NEW_TOKENS": str(self.max_new_tokens),
            "STREAMINGVLM_TEMPERATURE": repr(self.temperature),
            "STREAMINGVLM_TOP_P": repr(self.top_p),
            "STREAMINGVLM_REPETITION_PENALTY": repr(self.repetition_penalty),
            "STREAMINGVLM_DO_SAMPLE": "true" if self.do_sample else "false",
            "STREAMINGVLM_DEFAULT_PROMPT": self.default_prompt,
            "STREAMINGVLM_MAX_SESSIONS": str(self.max_sessions),
        }
        if self.hf_secret_name:
            env["STREAMINGVLM_HF_SECRET_NAME"] = self.hf_secret_name
        return env

    def generation_kwargs(self) -> dict:
        """Arguments for ``model.generate`` (sampling with repetition penalty by default)."""
        kwargs = generation_kwargs(self.max_new_tokens, self.do_sample, self.temperature, self.top_p)
        kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs


def generation_kwargs(max_new_tokens: int, do_sample: bool, temperature: float, top_p: float) -> dict:
    """Greedy decoding unless ``do_sample``; a zero temperature also means greedy
    because transformers rejects sampling at temperature 0."""
    if do_sample and temperature > 0:
        return {
            "max_new_tokens": max_new_tokens,
            "do_sample": True,
            "temperature": temperature,
            "top_p": top_p,
        }
    return {"max_new_tokens": max_new_tokens, "do_sample": False}


# --------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------


def collapse_whitespace(text: Optional[str]) -> str:
    """Collapse every run of whitespace (newlines included) to one space and trim."""
    if not text:
        return ""
    return " ".join(str(text).split())


def format_seconds(value: float) -> str:
    """Seconds with one decimal, as in ``S.S`` of the protocol."""
    return f"{float(value):.1f}"


def format_history_entry(start_s: float, end_s: float, caption: str) -> str:
    """``S.S-E.Es: <caption>``."""
    return f"{format_seconds(start_s)}-{format_seconds(end_s)}s: {caption}"


def resolve_task(prompt: Optional[str], default_prompt: str) -> str:
    """The call's prompt, or the default when it is missing or blank."""
    if isinstance(prompt, str) and prompt.strip():
        return prompt.strip()
    return default_prompt


def build_prompt(start_s: float, end_s: float, history: Sequence[str], task: str) -> str:
    """The text part of the single user turn (images follow it).

    Lines: the chunk window, then (only with history) the header and one ``- ``
    bullet per entry, then the instruction, then ``Task: <task>``.
    """
    lines = [f"Chunk time window: {format_seconds(start_s)}s to {format_seconds(end_s)}s."]
    if history:
        lines.append(HISTORY_HEADER)
        lines.extend(f"- {entry}" for entry in history)
    lines.append(INSTRUCTION)
    lines.append(f"Task: {task}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------


def sample_indices(count: int, max_count: int) -> list:
    """Pick at most ``max_count`` of ``count`` indices evenly (linspace over the
    indices, first and last included; numpy's ``linspace(...).round()``)."""
    if count <= 0 or max_count <= 0:
        return []
    if count <= max_count:
        return list(range(count))
    if max_count == 1:
        return [0]
    step = (count - 1) / (max_count - 1)
    picked = []
    for i in range(max_count):
        idx = int(round(i * step))
        if not picked or idx != picked[-1]:
            picked.append(idx)
    picked[-1] = count - 1
    return picked


def fit_within(width: int, height: int, max_edge: int) -> tuple:
    """Size that keeps the aspect ratio with the longest edge at most ``max_edge``
    (never upscales, never returns a zero edge)."""
    longest = max(width, height)
    if longest <= max_edge or longest <= 0:
        return (width, height)
    scale = max_edge / longest
    return (max(1, int(round(width * scale))), max(1, int(round(height * scale))))


class NoDecodableFramesError(ValueError):
    """Raised when a non-empty chunk holds no frame that decodes as an image."""


def select_frames(
    frames: Sequence[Any],
    max_count: int,
    open_frame: Callable[[Any], Any],
    finish_frame: Callable[[Any], Any],
) -> list:
    """Decode, sample and prepare the frames of a chunk.

    ``open_frame`` does the cheap part (parse the header; raise if the bytes are
    not an image), ``finish_frame`` the expensive part (full decode, RGB, resize).
    Sampling happens over the frames that opened, so undecodable frames are
    skipped as in the original, but only the picked frames are fully decoded
    (a chunk may hold 120 frames and we keep 6). A picked frame that fails its
    full decode is dropped. Raises NoDecodableFramesError if nothing is left.
    """
    opened = []
    for frame in frames:
        if not isinstance(frame, (bytes, bytearray, memoryview)):
            continue
        try:
            opened.append(open_frame(bytes(frame)))
        except Exception:  # noqa: BLE001 - any decoder error means "skip this frame"
            continue
    images = []
    for idx in sample_indices(len(opened), max_count):
        try:
            images.append(finish_frame(opened[idx]))
        except Exception:  # noqa: BLE001
            continue
    if not images:
        raise NoDecodableFramesError(f"none of the {len(frames)} frames in the chunk could be decoded as an image")
    return images


# --------------------------------------------------------------------------
# History and per-stream sessions
# --------------------------------------------------------------------------


class HistoryWindow:
    """The last ``max_entries`` captions as ``S.S-E.Es: <caption>`` strings."""

    def __init__(self, max_entries: int):
        self._entries = collections.deque(maxlen=max(0, int(max_entries)))

    def append(self, start_s: float, end_s: float, caption: str) -> None:
        """Record a caption; empty captions are not history."""
        caption = collapse_whitespace(caption)
        if caption:
            self._entries.append(format_history_entry(start_s, end_s, caption))

    def entries(self) -> list:
        """Oldest first."""
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def normalize_session_id(session_id: Any) -> Optional[str]:
    """None or blank means the shared (original) session; other ids are trimmed strings."""
    if session_id is None:
        return None
    if not isinstance(session_id, str):
        raise TypeError(f"session_id must be a string or None, not {type(session_id).__name__}")
    session_id = session_id.strip()
    if not session_id:
        return None
    if len(session_id) > MAX_SESSION_ID_LEN:
        raise ValueError(f"session_id longer than {MAX_SESSION_ID_LEN} characters")
    return session_id


class SessionStore(Generic[T]):
    """Per-stream state, keyed by ``session_id``, with a bounded number kept.

    ``None`` is the shared, container-wide state the original used for every
    call; it is never evicted. Named sessions are kept in LRU order and the least
    recently used one is dropped when more than ``max_sessions`` exist, so a
    container that outlives many streams (or streams that never call close)
    cannot grow without bound. An evicted stream simply starts a fresh history.
    """

    def __init__(self, factory: Callable[[], T], max_sessions: int = 256):
        if max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        self._factory = factory
        self._max = max_sessions
        self._shared = factory()
        self._sessions: "collections.OrderedDict[str, T]" = collections.OrderedDict()
        # Modal runs one input at a time per container by default; the lock keeps
        # the store correct should concurrent inputs ever be enabled.
        self._lock = threading.Lock()

    def get(self, session_id: Any = None) -> T:
        """The state of ``session_id`` (created on first use, marked most recent)."""
        key = normalize_session_id(session_id)
        with self._lock:
            if key is None:
                return self._shared
            state = self._sessions.get(key)
            if state is None:
                state = self._factory()
                self._sessions[key] = state
                while len(self._sessions) > self._max:
                    self._sessions.popitem(last=False)
            else:
                self._sessions.move_to_end(key)
            return state

    def close(self, session_id: Any = None) -> bool:
        """Forget one session; ``None`` resets the shared one (as the original's
        ``close()``). Returns whether there was state to drop."""
        key = normalize_session_id(session_id)
        with self._lock:
            if key is None:
                self._shared = self._factory()
                return True
            return self._sessions.pop(key, None) is not None

    def __contains__(self, session_id: Hashable) -> bool:
        key = normalize_session_id(session_id)
        with self._lock:
            return key is None or key in self._sessions

    def __len__(self) -> int:
        """Number of named sessions kept (the shared one is not counted)."""
        with self._lock:
            return len(self._sessions)

    def session_ids(self) -> list:
        """Named session ids, least recently used first."""
        with self._lock:
            return list(self._sessions.keys())


# --------------------------------------------------------------------------
# One chunk, end to end
# --------------------------------------------------------------------------


def make_reply(caption: str, start_s: float, end_s: float, latency_ms: int, tokens_generated: int) -> dict:
    """The reply shape both apps return."""
    return {
        "caption": caption,
        "chunk_start_s": float(start_s),
        "chunk_end_s": float(end_s),
        "latency_ms": int(latency_ms),
        "tokens_generated": int(tokens_generated),
    }


def run_chunk(
    *,
    frames: Optional[Iterable[Any]],
    start_s: Any,
    end_s: Any,
    prompt: Optional[str],
    history: HistoryWindow,
    max_frames: int,
    default_prompt: str,
    open_frame: Callable[[Any], Any],
    finish_frame: Callable[[Any], Any],
    generate: Callable[[str, list], tuple],
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Caption one chunk against one session's history.

    ``generate(prompt_text, images) -> (raw_text, tokens_generated)`` runs the
    model. An empty chunk returns caption "" and 0 tokens without touching the
    decoder or the model. A non-empty caption is appended to ``history``.
    """
    started = clock()
    start_s = float(start_s)
    end_s = float(end_s)
    frames = list(frames or [])
    if not frames:
        return make_reply("", start_s, end_s, _elapsed_ms(clock, started), 0)
    images = select_frames(frames, max_frames, open_frame, finish_frame)
    text = build_prompt(start_s, end_s, history.entries(), resolve_task(prompt, default_prompt))
    raw, tokens = generate(text, images)
    caption = collapse_whitespace(raw)
    history.append(start_s, end_s, caption)
    return make_reply(caption, start_s, end_s, _elapsed_ms(clock, started), tokens)


def _elapsed_ms(clock: Callable[[], float], started: float) -> int:
    return max(0, int(round((clock() - started) * 1000)))

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


def _env_number(env, key, default, parse, what, minimum, maximum=None):
    value = _raw(env, key)
    if value is None:
        return default
    try:
        parsed = parse(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r}: not {what}") from None
    # parsed != parsed catches NaN.
    if parsed != parsed or parsed < minimum or (maximum is not None and parsed > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{key}={value}: must be {bound}")
    return parsed


def env_int(env: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    """Parse an integer knob; reject garbage and values below ``minimum``."""
    return _env_number(env, key, default, int, "an integer", minimum)


def env_float(env: Mapping[str, str], key: str, default: float, minimum: float, maximum: Optional[float] = None) -> float:
    """Parse a float knob within [minimum, maximum]."""
    return _env_number(env, key, default, float, "a number", minimum, maximum)


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


# A knob: dataclass field, env key, kind ("str", "opt_str", "int", "float",
# "bool") and bounds. One table per app drives both from_env and to_env, so the
# two directions cannot drift apart.
_Knob = collections.namedtuple("_Knob", "field key kind minimum maximum")


def _knob(field: str, key: str, kind: str, minimum: Any = None, maximum: Any = None) -> "_Knob":
    return _Knob(field, key, kind, minimum, maximum)


class _EnvConfig:
    """from_env/to_env over the subclass's ``_KNOBS`` table (frozen dataclasses)."""

    _KNOBS: tuple = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]):
        """Build the config from a mapping such as ``os.environ`` (pure function)."""
        defaults = cls()
        values = {}
        for k in cls._KNOBS:
            default = getattr(defaults, k.field)
            if k.kind == "str":
                values[k.field] = env_str(env, k.key, default)
            elif k.kind == "opt_str":
                values[k.field] = env_opt_str(env, k.key)
            elif k.kind == "int":
                values[k.field] = env_int(env, k.key, default, k.minimum)
            elif k.kind == "float":
                values[k.field] = env_float(env, k.key, default, k.minimum, k.maximum)
            elif k.kind == "bool":
                values[k.field] = env_bool(env, k.key, default)
            else:  # pragma: no cover - table typo
                raise AssertionError(f"unknown knob kind {k.kind!r}")
        return cls(**values)

    def to_env(self) -> dict:
        """The knobs as env vars, baked into the image so the container parses
        the same values the deploying machine saw. Unset optional knobs are left out."""
        env = {}
        for k in self._KNOBS:
            value = getattr(self, k.field)
            if k.kind == "opt_str":
                if value:
                    env[k.key] = value
            elif k.kind == "bool":
                env[k.key] = "true" if value else "false"
            elif k.kind == "float":
                env[k.key] = repr(value)
            else:
                env[k.key] = str(value)
        return env


def _common_knobs(prefix: str, app_name_key: str) -> tuple:
    """Knobs both apps have, under their own prefix."""
    return (
        _knob("model_id", f"{prefix}_MODEL_ID", "str"),
        _knob("gpu", f"{prefix}_GPU", "str"),
        _knob("app_name", app_name_key, "str"),
        _knob("max_frame_edge", f"{prefix}_MAX_FRAME_EDGE", "int", 1),
        _knob("max_frames_per_chunk", f"{prefix}_MAX_FRAMES_PER_CHUNK", "int", 1),
        _knob("max_new_tokens", f"{prefix}_MAX_NEW_TOKENS", "int", 1),
        _knob("temperature", f"{prefix}_TEMPERATURE", "float", 0.0),
        _knob("top_p", f"{prefix}_TOP_P", "float", 0.0, 1.0),
        _knob("do_sample", f"{prefix}_DO_SAMPLE", "bool"),
        _knob("default_prompt", f"{prefix}_DEFAULT_PROMPT", "str"),
        _knob("hf_secret_name", f"{prefix}_HF_SECRET_NAME", "opt_str"),
        _knob("max_sessions", f"{prefix}_MAX_SESSIONS", "int", 1),
    )


@dataclasses.dataclass(frozen=True)
class _VLMConfig(_EnvConfig):
    """Fields both apps have (see _common_knobs); each app sets its own defaults
    for the ones that differ by redeclaring them."""

    model_id: str = ""
    gpu: str = ""
    app_name: str = ""
    max_frame_edge: int = 720
    max_frames_per_chunk: int = 6
    max_new_tokens: int = 64
    temperature: float = 0.2
    top_p: float = 0.9
    do_sample: bool = False
    default_prompt: str = DEFAULT_PROMPT
    hf_secret_name: Optional[str] = None
    max_sessions: int = 256


@dataclasses.dataclass(frozen=True)
class Gemma3Config(_VLMConfig):
    """Knobs of the Gemma 3 app; defaults are the original's (GEMMA3_MAX_SESSIONS,
    the bound on per-stream histories kept by one container, is new)."""

    model_id: str = "google/gemma-3-4b-it"
    gpu: str = "L40S"
    app_name: str = "foresight-gemma3-vlm"
    max_history_entries: int = 6

    _KNOBS = _common_knobs("GEMMA3", "GEMMA3_VLM_MODAL_APP_NAME") + (
        _knob("max_history_entries", "GEMMA3_MAX_HISTORY_ENTRIES", "int", 0),
    )

    def generation_kwargs(self) -> dict:
        """Arguments for ``model.generate``: greedy unless sampling is enabled
        (temperature/top_p are only passed when they are used, which keeps
        transformers from warning about ignored flags)."""
        kwargs = generation_kwargs(self.max_new_tokens, self.do_sample, self.temperature, self.top_p)
        # Gemma 3's generation config asks for a compileable (static/hybrid)
        # cache, so generate() would torch.compile the decode step on the first
        # call and again whenever the cache grows. One compile can take longer
        # than the server's 30 s call timeout, and a call cancelled half-way
        # wastes it; eager decoding of a few dozen tokens costs far less.
        kwargs["disable_compile"] = True
        return kwargs


@dataclasses.dataclass(frozen=True)
class StreamingVLMConfig(_VLMConfig):
    """Knobs of the legacy StreamingVLM app (``STREAMINGVLM_*``).

    Sampling and window defaults are the streaming-vlm project's inference
    defaults (temperature 0.9, repetition penalty 1.05, text sink 512 tokens,
    text sliding window 512 tokens); see KVWindowPolicy for the window knobs.
    """

    model_id: str = "mit-han-lab/StreamingVLM"
    # The StreamingVLM checkpoint is a Qwen2.5-VL fine-tune; the processor
    # (tokenizer, chat template, image processor) comes from the base model.
    processor_id: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    gpu: str = "A100"
    app_name: str = "foresight-streamingvlm"
    max_frames_per_chunk: int = 4
    temperature: float = 0.9
    repetition_penalty: float = 1.05
    do_sample: bool = True
    # Each session holds a KV cache on the GPU (hundreds of MB), so far fewer
    # sessions fit than the Gemma 3 app's caption histories.
    max_sessions: int = 16
    # KV cache window (see KVWindowPolicy).
    text_sink_tokens: int = 512
    text_window_tokens: int = 512
    vision_window_chunks: int = 4
    max_position: int = 100_000

    _KNOBS = _common_knobs("STREAMINGVLM", "STREAMINGVLM_MODAL_APP_NAME") + (
        _knob("processor_id", "STREAMINGVLM_PROCESSOR_ID", "str"),
        _knob("repetition_penalty", "STREAMINGVLM_REPETITION_PENALTY", "float", 0.0),
        _knob("text_sink_tokens", "STREAMINGVLM_TEXT_SINK_TOKENS", "int", 0),
        _knob("text_window_tokens", "STREAMINGVLM_TEXT_WINDOW_TOKENS", "int", 0),
        _knob("vision_window_chunks", "STREAMINGVLM_VISION_WINDOW_CHUNKS", "int", 1),
        _knob("max_position", "STREAMINGVLM_MAX_POSITION", "int", 1024),
    )

    def policy(self) -> "KVWindowPolicy":
        """The KV cache window these knobs describe."""
        return KVWindowPolicy(
            sink_tokens=self.text_sink_tokens,
            text_window_tokens=self.text_window_tokens,
            vision_window_chunks=self.vision_window_chunks,
            max_position=self.max_position,
        )

    def sampling(self) -> dict:
        """Sampling settings of the hand-written decode loop (the app maps them
        onto transformers' logits processors)."""
        sample = self.do_sample and self.temperature > 0
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": sample,
            "temperature": self.temperature if sample else None,
            "top_p": self.top_p if sample else None,
            "repetition_penalty": self.repetition_penalty,
        }


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
    start_s, end_s, images = _chunk_images(frames, start_s, end_s, max_frames, open_frame, finish_frame)
    if not images:
        return make_reply("", start_s, end_s, _elapsed_ms(clock, started), 0)
    text = build_prompt(start_s, end_s, history.entries(), resolve_task(prompt, default_prompt))
    raw, tokens = generate(text, images)
    caption = collapse_whitespace(raw)
    history.append(start_s, end_s, caption)
    return make_reply(caption, start_s, end_s, _elapsed_ms(clock, started), tokens)


def _chunk_images(frames, start_s, end_s, max_frames, open_frame, finish_frame) -> tuple:
    """Chunk times as floats and the picked, prepared frames; no frames for an
    empty chunk (which skips the model), NoDecodableFramesError if none decodes."""
    frames = list(frames or [])
    images = select_frames(frames, max_frames, open_frame, finish_frame) if frames else []
    return float(start_s), float(end_s), images


def _elapsed_ms(clock: Callable[[], float], started: float) -> int:
    return max(0, int(round((clock() - started) * 1000)))


# --------------------------------------------------------------------------
# Modal wiring shared by both app files
# --------------------------------------------------------------------------

HF_CACHE_DIR = "/root/.cache/huggingface"
TIMEOUT_S = 1200
SCALEDOWN_WINDOW_S = 300
MIN_CONTAINERS = 1
PIP_PACKAGES = (
    # modal-go sends arguments and expects results CBOR-encoded; Modal's Python
    # SDK decodes them with cbor2, which it imports only when needed and which
    # images built before image builder 2025.06 do not carry.
    "cbor2==5.6.5",
    "torch==2.7.1",
    "torchvision==0.22.1",
    "transformers==4.56.2",
    "accelerate==1.10.1",
    "pillow==11.3.0",
)


class ModalDeployment:
    """Image, volume, secret, app and ``app.cls`` arguments of one app file.

    ``modal`` is passed in (not imported) so this module stays standard-library
    only; the app files pass the real SDK, the tests a stand-in.
    """

    def __init__(self, modal: Any, cfg: Any, volume_name: str, pip_packages: Sequence[str] = PIP_PACKAGES):
        self.image = (
            modal.Image.debian_slim(python_version="3.12")
            .pip_install(*pip_packages)
            .env({"HF_HOME": HF_CACHE_DIR, **cfg.to_env()})
            # Must stay last: local files are added at container start, not built in.
            .add_local_python_source("vlm_logic", "vlm_models")
        )
        self.volume = modal.Volume.from_name(volume_name, create_if_missing=True)
        self.secrets = [modal.Secret.from_name(cfg.hf_secret_name)] if cfg.hf_secret_name else []
        self.app = modal.App(cfg.app_name)
        self.cls_kwargs = {
            "image": self.image,
            "gpu": cfg.gpu,
            "timeout": TIMEOUT_S,
            "scaledown_window": SCALEDOWN_WINDOW_S,
            "min_containers": MIN_CONTAINERS,
            "volumes": {HF_CACHE_DIR: self.volume},
            "secrets": self.secrets,
        }


def pil_open_frame(data: bytes) -> Any:
    """Parse the image header only (cheap); raises if the bytes are no image.
    PIL is imported here, inside the container, not at module load."""
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data))


def pil_finish_frame(img: Any, max_edge: int) -> Any:
    """Full decode, RGB, shrink so the longest edge is at most ``max_edge``."""
    from PIL import Image

    img.load()
    img = img.convert("RGB")
    size = fit_within(img.width, img.height, max_edge)
    if size != (img.width, img.height):
        img = img.resize(size, Image.Resampling.BICUBIC)
    return img


def free_gpu_cache(torch: Any) -> None:
    """Return cached GPU memory to the driver (no-op before load or without CUDA)."""
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------
# Legacy StreamingVLM: KV cache kept across chunks, sink + sliding windows
# --------------------------------------------------------------------------
#
# The streaming-vlm project's inference loop keeps the model's KV cache from
# chunk to chunk and, before each chunk, cuts it down: the first tokens of the
# text ("text sink") and the most recent text stay, older text in between is
# dropped, and only the vision tokens of the last few chunks stay. The parts
# below are the bookkeeping of that policy over token index ranges, free of
# torch: the app applies the ranges to the tensors (index_select per layer).

TEXT = "text"
VISION = "vision"


@dataclasses.dataclass(frozen=True)
class KVWindowPolicy:
    """What a session's KV cache keeps between chunks.

    - ``sink_tokens``: the first N text tokens ever cached (the system turn and
      the earliest turns) are never dropped: the attention sink.
    - ``text_window_tokens``: besides the sink, the most recent text turns whose
      total length fits in N tokens are kept (whole turns, newest first).
    - ``vision_window_chunks``: vision tokens of the last N chunks, the incoming
      one included, are kept; older chunks' vision tokens are dropped whole.
    - ``max_position``: RoPE positions are not compacted after a drop, so they
      grow with every chunk; once the next position reaches this, the session
      starts over (fresh cache, system turn again) before the chunk.
    """

    sink_tokens: int = 512
    text_window_tokens: int = 512
    vision_window_chunks: int = 4
    max_position: int = 100_000

    def __post_init__(self):
        if self.sink_tokens < 0 or self.text_window_tokens < 0:
            raise ValueError("sink_tokens and text_window_tokens must be >= 0")
        if self.vision_window_chunks < 1:
            raise ValueError("vision_window_chunks must be >= 1 (the incoming chunk's frames)")
        if self.max_position < 1:
            raise ValueError("max_position must be >= 1")

    def cache_bound(self, max_vision_tokens_per_chunk: int) -> int:
        """Most tokens a session keeps between chunks: sink + text window (a
        turn is kept only if it fits) + the vision of the last N-1 chunks."""
        return self.sink_tokens + self.text_window_tokens + (self.vision_window_chunks - 1) * max_vision_tokens_per_chunk


@dataclasses.dataclass(frozen=True)
class Span:
    """A run of cached tokens of one kind from one chunk, in cache order."""

    kind: str  # TEXT or VISION
    chunk: int
    length: int


def split_segment(token_ids: Sequence[int], vision_start_id: int, vision_end_id: int, chunk: int) -> list:
    """Cut the token ids fed for one chunk into text and vision spans.

    A vision span runs from a vision-start token to its vision-end token, both
    included (as the streaming-vlm project's range finder does); everything else
    is text. Empty spans are not produced.
    """
    spans = []
    run_kind, run_len = TEXT, 0
    for tok in token_ids:
        if tok == vision_start_id and run_kind == TEXT:
            if run_len:
                spans.append(Span(TEXT, chunk, run_len))
            run_kind, run_len = VISION, 0
        run_len += 1
        if tok == vision_end_id and run_kind == VISION:
            spans.append(Span(VISION, chunk, run_len))
            run_kind, run_len = TEXT, 0
    if run_len:
        spans.append(Span(run_kind, chunk, run_len))
    return spans


def plan_eviction(spans: Sequence[Span], policy: KVWindowPolicy, next_chunk: int) -> list:
    """Half-open ``[start, end)`` cache index ranges to drop before ``next_chunk``.

    Vision spans of chunks older than the last ``vision_window_chunks`` (counting
    ``next_chunk``) go whole. Of the text, the first ``sink_tokens`` tokens stay
    (a turn may be cut at the sink's edge), and so do the newest whole text spans
    that together fit in ``text_window_tokens``; the rest goes. Ranges are
    sorted and merged.
    """
    oldest_vision = next_chunk - policy.vision_window_chunks + 1
    # Newest text spans that fit in the window, walking back from the end.
    window = set()
    budget = policy.text_window_tokens
    for idx in range(len(spans) - 1, -1, -1):
        span = spans[idx]
        if span.kind != TEXT:
            continue
        if span.length > budget:
            break
        budget -= span.length
        window.add(idx)
    drops = []
    offset = 0
    sink_left = policy.sink_tokens
    for idx, span in enumerate(spans):
        start, end = offset, offset + span.length
        offset = end
        if span.kind == VISION:
            if span.chunk < oldest_vision:
                drops.append((start, end))
            continue
        in_sink = min(sink_left, span.length)
        sink_left -= in_sink
        if idx in window or in_sink == span.length:
            continue
        drops.append((start + in_sink, end))
    return merge_ranges(drops)


def merge_ranges(ranges: Iterable[tuple]) -> list:
    """Sort half-open ranges and merge the ones that touch or overlap; drop empty ones."""
    merged = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def kept_indices(length: int, drops: Sequence[tuple]) -> list:
    """Cache indices that survive dropping ``drops`` from ``range(length)``."""
    keep = []
    pos = 0
    for start, end in merge_ranges(drops):
        keep.extend(range(pos, min(start, length)))
        pos = max(pos, end)
    keep.extend(range(pos, length))
    return keep


def apply_drops(spans: Sequence[Span], drops: Sequence[tuple]) -> list:
    """The spans left after dropping ``drops`` (a partly dropped span shrinks)."""
    drops = merge_ranges(drops)
    out = []
    offset = 0
    for span in spans:
        start, end = offset, offset + span.length
        offset = end
        gone = sum(max(0, min(end, d_end) - max(start, d_start)) for d_start, d_end in drops)
        if span.length - gone > 0:
            out.append(Span(span.kind, span.chunk, span.length - gone))
    return out


class KVStreamState:
    """One stream's model state: the KV cache (opaque here), the token ids it
    holds (used for the repetition penalty and checked against the spans), the
    spans, the next RoPE position and the chunk counter."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Forget everything (what close() and the position bound do)."""
        self.cache: Any = None
        self.token_ids: list = []
        self.spans: list = []
        self.next_position = 0
        self.chunk_index = 0
        self.task: Optional[str] = None

    @property
    def empty(self) -> bool:
        return not self.token_ids

    def __len__(self) -> int:
        return len(self.token_ids)

    def plan(self, policy: KVWindowPolicy) -> list:
        """Index ranges the policy drops before the next chunk."""
        return plan_eviction(self.spans, policy, self.chunk_index)

    def drop(self, drops: Sequence[tuple]) -> list:
        """Apply ``drops`` to the bookkeeping; returns the kept indices the caller
        applies to the cache tensors."""
        keep = kept_indices(len(self.token_ids), drops)
        self.token_ids = [self.token_ids[i] for i in keep]
        self.spans = apply_drops(self.spans, drops)
        self._check()
        return keep

    def append(self, token_ids: Sequence[int], vision_start_id: int, vision_end_id: int, next_position: int) -> None:
        """Record the tokens fed to the model for this chunk (already in the cache)."""
        if next_position < self.next_position:
            raise ValueError("RoPE positions must not go backwards")
        token_ids = list(token_ids)
        self.token_ids.extend(token_ids)
        self.spans.extend(split_segment(token_ids, vision_start_id, vision_end_id, self.chunk_index))
        self.next_position = next_position
        self.chunk_index += 1
        self._check()

    def checkpoint(self) -> "KVCheckpoint":
        """What rollback() needs to put this state back as it is now, cache
        included (see snapshot_cache: no tensor is copied)."""
        return KVCheckpoint(
            cache=self.cache,
            cache_snapshot=snapshot_cache(self.cache),
            token_ids=list(self.token_ids),
            spans=list(self.spans),
            next_position=self.next_position,
            chunk_index=self.chunk_index,
            task=self.task,
        )

    def rollback(self, checkpoint: "KVCheckpoint") -> None:
        """Return to ``checkpoint``: cache and bookkeeping as they were."""
        self.cache = restore_cache(checkpoint.cache, checkpoint.cache_snapshot)
        self.token_ids = list(checkpoint.token_ids)
        self.spans = list(checkpoint.spans)
        self.next_position = checkpoint.next_position
        self.chunk_index = checkpoint.chunk_index
        self.task = checkpoint.task
        self._check()

    def _check(self) -> None:
        total = sum(s.length for s in self.spans)
        if total != len(self.token_ids):
            raise AssertionError(f"span bookkeeping out of step: {total} != {len(self.token_ids)}")


@dataclasses.dataclass(frozen=True)
class KVCheckpoint:
    """A KVStreamState as it was before a chunk (see KVStreamState.checkpoint)."""

    cache: Any
    cache_snapshot: Any
    token_ids: list
    spans: list
    next_position: int
    chunk_index: int
    task: Optional[str]


def _attributes(obj: Any) -> dict:
    # Lists are copied one level deep: caches append layers or tensors to them.
    return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(obj).items()}


def _set_attributes(obj: Any, attributes: dict) -> None:
    state = vars(obj)
    state.clear()
    state.update({k: (list(v) if isinstance(v, list) else v) for k, v in attributes.items()})


def snapshot_cache(cache: Any) -> Any:
    """Enough to put ``cache`` back as it is now, without copying a tensor.

    transformers' DynamicCache never writes into its tensors: appending new
    tokens (torch.cat) and our pruning (index_select) build new tensors and
    assign them to the cache's (or its layers') attributes, and lazily
    created layers are appended to a list. So keeping the attribute values of
    the cache and of each layer keeps the old tensors alive and unchanged;
    the price is that a chunk's call holds the previous cache in GPU memory
    until it ends. A value without attributes (None, a tuple) is its own
    snapshot.
    """
    if not hasattr(cache, "__dict__"):
        return None
    layers = [(layer, _attributes(layer)) for layer in (getattr(cache, "layers", None) or ()) if hasattr(layer, "__dict__")]
    return (_attributes(cache), layers)


def restore_cache(cache: Any, snapshot: Any) -> Any:
    """Put ``cache`` back to ``snapshot`` (from snapshot_cache) and return it."""
    if snapshot is None:
        return cache
    attributes, layers = snapshot
    for layer, layer_attributes in layers:
        _set_attributes(layer, layer_attributes)
    _set_attributes(cache, attributes)
    return cache


VISION_PLACEHOLDER = "<|vision_start|><|video_pad|><|vision_end|>"


def qwen_chunk_text(
    *, first: bool, system: str, start_s: float, end_s: float, task: Optional[str]
) -> str:
    """The text fed for one chunk in Qwen2.5-VL's chat format.

    The first chunk of a session opens with the system turn. Later chunks open
    with ``<|im_end|>\\n``, which closes the previous assistant turn (its last
    token is not fed during generation). The user turn is ``Time=S.S-E.Es``, the
    video placeholder (the processor expands it to the frames' tokens) and, when
    given, the task, as the streaming-vlm loop does; then the assistant header.
    """
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if first else "<|im_end|>\n"
    user = f"Time={format_seconds(start_s)}-{format_seconds(end_s)}s{VISION_PLACEHOLDER}"
    if task:
        user += task
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def run_kv_chunk(
    *,
    frames: Optional[Iterable[Any]],
    start_s: Any,
    end_s: Any,
    prompt: Optional[str],
    state: KVStreamState,
    policy: KVWindowPolicy,
    max_frames: int,
    default_prompt: str,
    system: str,
    open_frame: Callable[[Any], Any],
    finish_frame: Callable[[Any], Any],
    prune: Callable[[Any, list], Any],
    step: Callable[[KVStreamState, str, list], tuple],
    vision_ids: tuple,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Caption one chunk against one stream's KV cache.

    Order: decode frames; if the next RoPE position reached the bound, reset
    the session; otherwise drop what the policy evicts (``prune(cache, keep)``
    returns the pruned cache); build the chunk text (the task is sent on a
    session's first chunk and again only when it changes); run
    ``step(state, text, images) -> (raw_text, tokens_generated, fed_ids,
    next_position)``, which extends ``state.cache``; record the fed tokens.
    An empty chunk returns caption "" without touching the model or the state.
    If anything raises once the state is touched, the state (cache included)
    is rolled back to what it was before the call and the error re-raised.
    """
    started = clock()
    start_s, end_s, images = _chunk_images(frames, start_s, end_s, max_frames, open_frame, finish_frame)
    if not images:
        return make_reply("", start_s, end_s, _elapsed_ms(clock, started), 0)
    checkpoint = state.checkpoint()
    try:
        if state.next_position >= policy.max_position:
            state.reset()
        drops = state.plan(policy)
        if drops:
            keep = state.drop(drops)
            state.cache = prune(state.cache, keep)
        task = resolve_task(prompt, default_prompt)
        text = qwen_chunk_text(
            first=state.empty,
            system=system,
            start_s=start_s,
            end_s=end_s,
            task=task if (state.empty or task != state.task) else None,
        )
        state.task = task
        raw, tokens, fed_ids, next_position = step(state, text, images)
        state.append(fed_ids, vision_ids[0], vision_ids[1], next_position)
    except BaseException:
        # BaseException, not Exception: Modal cancels a call (our server's
        # timeout) by raising InputCancellation, a BaseException, wherever the
        # call is, e.g. half-way through feeding the chunk. The cache then holds
        # tokens the bookkeeping does not know; put both back as before the
        # call so the stream goes on from its last good chunk.
        state.rollback(checkpoint)
        raise
    # StreamingVLM was trained to end each commentary with " ..." (the
    # streaming-vlm loop strips it the same way); the ellipsis stays in the cache.
    caption = collapse_whitespace(raw).removesuffix(" ...")
    return make_reply(caption, start_s, end_s, _elapsed_ms(clock, started), tokens)

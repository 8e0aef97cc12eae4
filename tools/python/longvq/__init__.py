"""longvq: Python binding of the longvq inference engine (LongVQ models).

    import longvq
    model = longvq.load("models/austen-lm")
    for piece in model.generate("It is a truth", max_tokens=40, seed=7):
        print(piece, end="")
    model.perplexity(open("book.txt", "rb").read())["bits_per_byte"]

    clf = longvq.load("models/listops")
    logits = clf.classify(["[MAX 2 9 [MIN 4 7 ] 0 ]"])        # numpy float32 [B, C]

    session = model.session(max_batch=4)                       # step by step
    state = session.new_state(4)
    last = session.prefill(state, model.encode("Emma"), row=0)   # [V]
    logits = session.decode(state, [101, 32, 32, 32])            # [4, V]

Every call runs the engine's C++ code (the same as the ``longvq`` command line: a seed gives the
same text as ``longvq generate``, classify_jsonl the same lines as ``longvq classify``) with the
GIL released, so Python threads compute in parallel. Engine errors keep their messages: bad
arguments raise ValueError or TypeError, a model that cannot be loaded raises LoadError (an
OSError), a state file that does not fit raises StateError (a ValueError).
"""

from __future__ import annotations

import json as _json
import os as _os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from . import _longvq
from ._longvq import Generator, LoadError, Session, State, StateError, build_info

__all__ = ["load", "Model", "Generator", "Session", "State", "LoadError", "StateError", "build_info",
           "DEFAULT_SAMPLING", "__version__"]
__version__: str = _longvq.__version__
for _cls in (LoadError, StateError, Generator, Session, State):
    _cls.__module__ = "longvq"  # shown as longvq.LoadError, not longvq._longvq.LoadError

#: The sampler's defaults: the C++ engine's SamplerParams, which ``longvq generate`` uses too.
DEFAULT_SAMPLING: Dict[str, float] = dict(_longvq._default_sampling())
_D = DEFAULT_SAMPLING


def load(path: Union[str, "_os.PathLike[str]", None] = None, backend: str = "auto", threads: int = 0,
         mmap: bool = True) -> "Model":
    """Loads a model directory (``config.json`` + ``model.safetensors``).

    path: the directory; None means ``$LONGVQ_MODEL``, else the default model (as ``longvq -m``).
    backend: ``"auto"`` (CUDA when a GPU is there), ``"cpu"`` or ``"cuda"``.
    threads: CPU threads of every session the model makes (0 = all cores); each call may override it.
    mmap: map the weight file (False: read it).

    Raises LoadError (an OSError; ``.kind``, ``.file``, ``.tensor``) with the loader's message, and
    ValueError for a bad backend or thread count.
    """
    return Model(_longvq.load(path, backend, threads, mmap))


class Model:
    """A loaded model. Immutable: share one between threads; each call makes its own session."""

    def __init__(self, handle: "_longvq.Model") -> None:
        if not isinstance(handle, _longvq.Model):
            raise TypeError("use longvq.load(path) to load a model")
        self._h = handle
        self._config: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        i = self.info()
        return f"<longvq.Model {self.path!r} task={i['task']} parameters={i['parameters']} backend={i['backend']}>"

    @property
    def path(self) -> str:
        """The model directory."""
        return self._h.path

    @property
    def config(self) -> Dict[str, Any]:
        """The model's config.json, as a dict (a copy: changing it changes nothing)."""
        if self._config is None:
            self._config = _json.loads(self._h.config_json)
        return _json.loads(_json.dumps(self._config))

    def info(self) -> Dict[str, Any]:
        """What the model is: task ('lm' | 'classify'), parameters, vocab_size, num_classes (None for an
        LM), state_bytes_per_row (None for a classifier), tokenizer, embedding, n_layers, d_model,
        backend, dtype ('f32' | 'bf16' | 'q8_0'), weight_bytes, prepared_bytes, mmap, threads, fingerprint, path."""
        return dict(self._h.info())

    # --- tokenizer -------------------------------------------------------------------------
    def encode(self, text: str) -> List[int]:
        """The token ids of a text (bytes or vocab tokenizer; no <bos> added)."""
        return self._h.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """The text token ids stand for (invalid UTF-8 replaced by U+FFFD)."""
        return self._h.decode(ids).decode("utf-8", errors="replace")

    def special_id(self, name: str) -> Optional[int]:
        """The id of a special token such as ``"<bos>"`` or ``"<eos>"``; None when the model has none."""
        return self._h.special_id(name)

    # --- classifiers -----------------------------------------------------------------------
    def classify(self, inputs: Any, lengths: Optional[Sequence[int]] = None, batch: int = 16,
                 threads: Optional[int] = None) -> "Any":
        """Class logits of every input: a numpy float32 array [B, C], in the inputs' order.

        inputs: a list of texts (str, encoded by the model's tokenizer), of token lists or 1-D
        integer arrays (token models), of pixel lists/arrays (pixel models: integers 0..255,
        normalized by the model's tokenizer as ``longvq classify`` does), or a padded 2-D numpy
        array [B, n] with ``lengths`` (each row's length; None = n). An int32 C-contiguous array is
        read in place; the logits are written straight into the returned array.
        batch: sequences per forward pass (the logits do not depend on it).
        threads: CPU threads (None = load()'s).

        Raises ValueError naming the input for an empty or too long input, a token id outside the
        vocabulary or a pixel outside 0..255, TypeError for inputs of the wrong kind.
        """
        return self._h.classify(inputs, lengths, batch, threads)

    def classify_jsonl(self, lines: Iterable[str], source: str = "<input>", first_line: int = 1,
                       first_index: int = 0, batch: int = 16, logits: bool = False,
                       threads: Optional[int] = None) -> List[str]:
        """``longvq classify``'s output lines (JSON text, no newline) for JSONL input lines.

        lines: consecutive lines of ``source`` starting at line ``first_line`` (1-based; messages
        name ``source:line``); ``first_index`` is the "index" of their first example (blank lines
        are skipped and not counted). logits: also write each input's raw logits (``--logits``).
        A bad line raises ValueError with the CLI's message.
        """
        return self._h.classify_jsonl(list(lines), source, first_line, first_index, batch, logits, threads)

    # --- language models -------------------------------------------------------------------
    def generate(self, prompt: Union[str, bytes, Sequence[int]], max_tokens: int = 16,
                 temperature: float = _D["temperature"], top_k: int = int(_D["top_k"]),
                 top_p: float = _D["top_p"], min_p: float = _D["min_p"],
                 repeat_penalty: float = _D["repeat_penalty"], repeat_last_n: int = int(_D["repeat_last_n"]),
                 seed: Optional[int] = None, stop: Union[str, Sequence[str], None] = None,
                 logprobs: Optional[int] = None, ignore_eos: bool = False, no_bos: bool = False,
                 threads: Optional[int] = None, chunk: int = 512) -> Generator:
        """Generates text after ``prompt``: returns a Generator, an iterator of text pieces (str).

        The same as ``longvq generate -p PROMPT -n MAX_TOKENS --seed SEED ...`` (the same sampler,
        stop strings and defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
        repeat_penalty 1 over the last 64 tokens; temperature 0 = greedy): ``prompt + text`` is what
        the CLI prints. A new context starts with <bos> when the model has one (``no_bos``: not
        unless the prompt is empty). The prefill runs at the first ``next()``.

        prompt: a str (or bytes) encoded by the tokenizer, or token ids.
        seed: None draws one at random (``.seed`` tells which).
        stop: a stop string or a list of them (the text before the first is kept).
        logprobs: None, or K in 0..20: each token's log-probability (``.logprobs``) and the K most
        likely alternatives (``.top_logprobs``).
        ignore_eos: do not stop at the model's <eos>.

        While or after iterating: ``.text`` (str), ``.data`` (bytes), ``.tokens`` (ids),
        ``.logprobs``, ``.finish_reason`` ('stop', 'length'; None until finished), ``.seed``.
        """
        return _longvq._generate(self._h, prompt, max_tokens, temperature, top_k, top_p, min_p, repeat_penalty,
                                 repeat_last_n, seed, stop, logprobs, ignore_eos, no_bos, threads, chunk)

    def perplexity(self, text: Union[str, bytes], chunk: int = 512, threads: Optional[int] = None,
                   per_byte: bool = False) -> Dict[str, Any]:
        """Bits per byte of a text, as ``longvq perplexity`` scores it (one sequence <bos> + bytes).

        text: str (scored as its UTF-8 bytes) or bytes. Returns a dict: bits_per_byte,
        perplexity_per_byte, nats_per_byte, bytes, tokens, chunk, seconds, tokens_per_second,
        threads, and with per_byte=True ``logprobs``: each byte's log-probability (float32 [bytes]).
        """
        return dict(self._h.perplexity(text, chunk, threads, per_byte))

    def session(self, max_batch: int = 1, max_chunk: int = 512, threads: Optional[int] = None) -> Session:
        """A Session for step-by-step decoding (causal LMs): ``new_state``, ``prefill``, ``decode``.

        max_batch: rows that step together in one call; max_chunk: prefill tokens per graph run;
        threads: CPU threads (None = load()'s). Use a session from one thread at a time (calls from
        several threads take turns); make one per thread to run in parallel.

        Logits come back as new float32 arrays (one copy of [rows, V] per call: the engine replaces
        its own buffer at the next prefill, so a view could dangle), or in place with ``out=``.
        ``State.tensor`` returns views of the state's memory without a copy.
        """
        return _longvq._session(self._h, max_batch, max_chunk, threads)

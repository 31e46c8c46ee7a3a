"""Entity names as text, and matching user-supplied keys (texts file, image folders) to entity ids.

What the shared benchmarks hold in ``entity2id.txt``:

============  ==========================================  =========================================
benchmark     raw name                                    cleaned text
============  ==========================================  =========================================
MKG-Y         ``Steve_Adams_(footballer,_born_1980)``     ``Steve Adams (footballer, born 1980)``
MKG-Y         ``Rivière-Koksoak,_Quebec``                 ``Rivière-Koksoak, Quebec``
TIVA          ``sulfacetic acid``, ``find food to \\eat``  ``sulfacetic acid``, ``find food to eat``
KVC16K        ``约瑟夫·维萨里奥诺维奇·斯大林``              unchanged (Chinese names)
MKG-W         ``http://www.wikidata.org/entity/Q370252``  ``Q370252`` -- an id, not a name
============  ==========================================  =========================================

:func:`clean_entity_name` applies, in order:

1. surrounding whitespace and N-Triples angle brackets go: ``<http://x.org/A>`` -> ``http://x.org/A``;
2. a URI (``scheme://...``) keeps its last path segment or fragment:
   ``http://yago-knowledge.org/resource/Albert_Einstein`` -> ``Albert_Einstein``;
3. percent-escapes are decoded when they spell valid UTF-8: ``Beyonc%C3%A9`` -> ``Beyoncé``
   (``100%_Pure`` has no escape and stays);
4. underscores become spaces (Wikipedia / YAGO / DBpedia titles); a disambiguation in parentheses
   is kept, since it tells the encoder what kind of thing the entity is;
5. backslashes are dropped (escape debris: TIVA's ``find food to \\eat``);
6. runs of whitespace become one space.

Case, accents, punctuation and non-Latin scripts are left alone: the tokenizer of the encoder
decides what to do with them (an uncased English model lower-cases, and maps most Chinese
characters to ``[UNK]``, so KVC16K needs a multilingual encoder to get useful name features).

:func:`looks_like_id` flags texts that are identifiers rather than names (Wikidata ``Q42`` /
``P31``, Freebase ``/m/0abc``, bare numbers); an encoder fed those learns nothing about the
entity, so the text extractor warns when most texts are ids (MKG-W).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from afme_lib.data.benchmarks import find_entry, resolve_dataset
from afme_lib.data.dataset import KGDataset
from afme_lib.data.openke import read_id_map

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_ID = re.compile(r"^(?:[QPL]\d+|/[mg]/[0-9a-z_]+|\d+)$")


def uri_tail(name: str) -> str:
    """The last path segment or fragment of a URI (``.../entity/Q42`` -> ``Q42``); other names unchanged."""
    name = name.strip()
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1].strip()
    if _URI.match(name):
        name = re.split(r"[/#]", name.rstrip("/#"))[-1]
    return name


def clean_entity_name(name: str) -> str:
    """Readable text for an entity name (rules and examples in the module docstring)."""
    text = uri_tail(name)
    if _PERCENT.search(text):
        try:
            text = unquote(text, errors="strict")
        except UnicodeDecodeError:  # "%E9" alone is Latin-1, not UTF-8: keep the name as written
            pass
    text = text.replace("_", " ").replace("\\", "")
    return " ".join(text.split())


def looks_like_id(text: str) -> bool:
    """True for an identifier rather than a name: ``Q42``, ``P31``, ``/m/0abc``, ``12345``."""
    return bool(_ID.match(text.strip()))


def id_fraction(texts: list[str | None]) -> float:
    """Share of the non-empty texts that :func:`looks_like_id` (0.0 when there is no text)."""
    given = [t for t in texts if t]
    return sum(map(looks_like_id, given)) / len(given) if given else 0.0


def entity_key_index(entity_names: list[str]) -> dict[str, int]:
    """Map every spelling a user file may use for an entity to its id.

    Exact names always win. Besides them an entity answers to its URI tail (``Q370252`` for
    ``http://www.wikidata.org/entity/Q370252``), its cleaned text, and its cleaned text with
    spaces as underscores (``a_Great_Dane`` for TIVA's ``a Great Dane``): the spellings under which
    image folders and description files are commonly keyed. An alternate spelling shared by two
    entities is dropped rather than guessed.
    """
    index = {name: i for i, name in enumerate(entity_names)}
    alternates: dict[str, int] = {}
    ambiguous: set[str] = set()
    for i, name in enumerate(entity_names):
        clean = clean_entity_name(name)
        for key in {uri_tail(name), clean, clean.replace(" ", "_")}:
            if not key or key in index:
                continue
            if key in alternates and alternates[key] != i:
                ambiguous.add(key)
            alternates[key] = i
    for key in ambiguous:
        del alternates[key]
    return {**alternates, **index}


def resolve_key(key: str, index: dict[str, int], num_entities: int) -> int | None:
    """Entity id for ``key``: a name or alternate spelling (see :func:`entity_key_index`), else an
    integer id in range, else None."""
    if key in index:
        return index[key]
    key = key.strip()
    if key in index:
        return index[key]
    if key.isascii() and key.isdigit() and int(key) < num_entities:
        return int(key)
    return None


def dataset_entities(dataset, data_dir: str | Path | None = None) -> tuple[str, list[str]]:
    """``(dataset name, entity names by id)`` for a registered name, an OpenKE folder or a loaded
    :class:`~afme_lib.data.dataset.KGDataset`.

    Only ``entity2id.txt`` is read (extraction needs no triples); the name follows
    :func:`~afme_lib.data.benchmarks.load_benchmark` (the registry's canonical name, else the folder's).
    """
    if isinstance(dataset, KGDataset):
        return dataset.name, list(dataset.entity_names)
    path = resolve_dataset(dataset, data_dir)
    entry = find_entry(str(dataset)) if not Path(dataset).expanduser().is_dir() else None
    entry = entry or find_entry(path.resolve().name)
    return (entry.name if entry else path.resolve().name), read_id_map(path / "entity2id.txt")

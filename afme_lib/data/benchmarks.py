"""Registered benchmarks: names, pinned release files, and where to find them on disk.

The public release of the triples is the GitHub repository ``zjukg/NATIVE`` (folder
``benchmarks/<folder>/``), pinned at commit :data:`RELEASE_COMMIT`. Every file of MKG-W, MKG-Y,
TIVA and KVC16K is pinned by sha256 and size, so a download is verified byte for byte.

DB15K is registered but **unpinned**: its files were not available when the pins were taken, so
each of its :class:`ReleaseFile` entries has ``sha256=None``. ``download_dataset('DB15K')`` refuses
unless ``allow_unpinned=True`` (CLI: ``--allow-unpinned``); it then prints the hashes it computed,
in the ``folder file sha256 size`` form used here, so they can be pinned in :data:`_PINS`.
Its counts come from the count lines of the release files, not from a verified copy.

Name lookup is case-insensitive and accepts aliases (``Kuai16K`` is ``KVC16K``, ``TIVA-KG`` is
``TIVA``). :func:`resolve_dataset` turns a name or a folder into a path: an existing folder is
used as is (any OpenKE-format folder loads, registered or not); a registered name is looked up as
``<root>/<folder>/`` in, in order, the ``data_dir`` argument, ``$AFME_DATA_DIR`` and the cache
(``$XDG_CACHE_HOME/afme-workbench/datasets``, else ``~/.cache/afme-workbench/datasets``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from afme_lib.core.errors import AfmeError, did_you_mean
from afme_lib.data.dataset import KGDataset, load_dataset
from afme_lib.data.openke import read_count

RELEASE_REPO = "zjukg/NATIVE"
RELEASE_COMMIT = "c72291c3d571b36c754897935d21718aa4568fe7"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{RELEASE_REPO}/{RELEASE_COMMIT}/benchmarks"
BASE_URL_ENV = "AFME_DATASET_BASE_URL"
DATA_DIR_ENV = "AFME_DATA_DIR"

# The files a folder must hold to load (load_dataset reads exactly these; the rest is optional).
REQUIRED_FILES = ("entity2id.txt", "relation2id.txt", "train2id.txt", "valid2id.txt", "test2id.txt")


class DatasetNotFoundError(AfmeError, LookupError):
    """A registered benchmark is not on disk in any of the places searched."""


class UnknownDatasetError(DatasetNotFoundError):
    """The name is neither an existing folder nor a registered benchmark."""


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release: its name in the release folder, sha256 (hex) and size in bytes.

    ``sha256`` and ``size`` are ``None`` for files that are not pinned yet.
    """

    name: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetEntry:
    """A registered benchmark.

    ``folder`` is the folder name in the release and on disk (``Kuai16K`` for KVC16K); ``counts``
    holds entities / relations / train / valid / test.
    """

    name: str
    folder: str
    files: tuple[ReleaseFile, ...]
    counts: Mapping[str, int] = field(hash=False)
    description: str
    aliases: tuple[str, ...] = ()
    keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Every spelling the entry answers to, lower-cased: canonical name, aliases, folder.
        names = {self.name, self.folder, *self.aliases}
        object.__setattr__(self, "keys", frozenset(n.casefold() for n in names))

    @property
    def pinned(self) -> bool:
        """True when every release file has a sha256 to verify against."""
        return all(f.sha256 is not None for f in self.files)

    def url(self, filename: str, base_url: str | None = None) -> str:
        """URL of one release file: ``<base_url>/<folder>/<filename>``."""
        return f"{resolve_base_url(base_url)}/{self.folder}/{filename}"


def resolve_base_url(base_url: str | None = None) -> str:
    """The release base URL: the argument, else ``$AFME_DATASET_BASE_URL``, else the pinned GitHub one."""
    url = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return url.rstrip("/")


# sha256 and size of each release file, as "folder": {"file": (sha256, size)}.
_PINS: dict[str, dict[str, tuple[str, int]]] = {
    "MKG-W": {
        "1-1.txt": ("df013f351c0f3f09ffd5b75c8b8a6cd591ad49fa17d4497610501d74b0ba2a66", 3319),
        "1-n.txt": ("387d7a49e92f6b552ff74ded7c3ff39aa5f544e754b978fee74ec46b876db795", 241),
        "entity2id.txt": ("d94b546efcb535d8253821626dd32f3ee876b2f263b727a4a446bc74697785df", 672264),
        "n-1.txt": ("c5670686830d7f8ac1baf32886c8867cc07000e6a3391b00885c249b1e4071b0", 36771),
        "n-n.txt": ("87323279130bd66e4366b13d08ea97a0036458d12a30b413b780d294d6805f9f", 12435),
        "relation2id.txt": ("204203e03a92d4f973ee815449695bcfaae1b6917fcb08b65f3b0fb071a47f61", 6656),
        "test2id.txt": ("0e1294b1f95c8ef80ad422aeefafea321d16c1d127570e6bb566882b2e053989", 52754),
        "test2id_all.txt": ("318b63ec8f49f269b252ebe5b63c3fc6cbecc211fcf65e788dede835d9cb918f", 61302),
        "train2id.txt": ("a9f316506a20a7b5bef7de3ceaaa1e82de554b8e92e6aa26e7cb54bcd8ada53d", 416832),
        "type_constrain.txt": ("1cee62e538acc9a3469b1d0f03b8204c9fe61fe83262719089cd241cd841d8b8", 228272),
        "valid2id.txt": ("34dd556893b8e4832600298864dbd18012529a1f172793c21e45ad7bdee9d189", 52959),
    },
    "MKG-Y": {
        "1-1.txt": ("10a8f314e2ccd6f7e3e609c8c0d8fd3bdc9e600c7a6388baae5f2c733b467b26", 1195),
        "1-n.txt": ("2bad559e7e2fbaf18276f05eae801eaea3c4eb7ec3461b1cb311e8e9a95b4ecf", 6001),
        "entity2id.txt": ("416f6f77c13d0cf0c5cae9625a62b9f7d26320c27ae408f5ce4e7eae3206b8d9", 348207),
        "n-1.txt": ("501d690a684f98b15490937c5462806418425218a2e1352154c7da6e3a04528f", 3116),
        "n-n.txt": ("0895a8ce231ff3ef6e591799751157331693d8a5d325331a76c01d23097add74", 22999),
        "relation2id.txt": ("78d468edc02688f742c9b5a1030a071789ab24784dd2e48897643fe108ff4e4d", 391),
        "test2id.txt": ("8602cbbe7e3aef2c857df66eec5f7e4a2d6b02b19f58feff085688fb28980158", 33300),
        "test2id_all.txt": ("b839fbfbd666631ce09d6ff92501ff50e5aac6c85c81d1d52f7fa029ef125860", 38626),
        "train2id.txt": ("71310c2c274e5ba2ce550433ef5c8496920bd03f50fd6057e64fc9c34e1e1aac", 259293),
        "type_constrain.txt": ("5d305df6c8166170f41eedba58f1dbee3f9f525869f17d411af3f59391a22eaf", 135691),
        "valid2id.txt": ("6c82db2d2b809aabf72f94bc19be3080b53ffba1caec12b81510354a7fe3470e", 33252),
    },
    "TIVA": {
        # TIVA has no 1-1 / 1-N / N-1 relations: those three files hold only the count line "0".
        "1-1.txt": ("9a271f2a916b0b6ee6cecb2426f0b3206ef074578be55d9bc94f6f3fe3ab86aa", 2),
        "1-n.txt": ("9a271f2a916b0b6ee6cecb2426f0b3206ef074578be55d9bc94f6f3fe3ab86aa", 2),
        "entity2id.txt": ("c8c8fb60629c05fef41689d96eefec0899e52f81c702c0ac63b32bfdca1c5cf0", 193522),
        "n-1.txt": ("9a271f2a916b0b6ee6cecb2426f0b3206ef074578be55d9bc94f6f3fe3ab86aa", 2),
        "n-n.txt": ("b656c7080fcceaf09fcd338e94a5c62a8dd05bbd9f28ee47b129ce78d14a2ee5", 18944),
        "relation2id.txt": ("b53b33fa69a4a9e1c576e4d0967a36f44f5674e2ce3212f91afaac6fbe0e40de", 79),
        "test2id.txt": ("b656c7080fcceaf09fcd338e94a5c62a8dd05bbd9f28ee47b129ce78d14a2ee5", 18944),
        "test2id_all.txt": ("9d58bf453d100663e01cb5577fdcb0cc17bac3d892c0721a4e251e99110bf5f7", 22944),
        "train2id.txt": ("af1a3772d3bb33f792c9f8f17a841c40f20311ab7c085de2dd3cd04c09abd6bd", 183591),
        "type_constrain.txt": ("f441bb1e9d1e2d2abcf8460f0bea4baad83479a5e76c47db8df0391b26e9a48b", 60760),
        "valid2id.txt": ("04c769b2adbad63e1b83da1654b59524b6098262bb32e31c331b7bfd2432fc44", 18955),
    },
    "Kuai16K": {
        "1-1.txt": ("979a6af8ff8eeb9701625298973362ac65dc87c1a920f8c03f14c93033c87401", 623),
        "1-n.txt": ("9a271f2a916b0b6ee6cecb2426f0b3206ef074578be55d9bc94f6f3fe3ab86aa", 2),
        "entity2id.txt": ("dc68dc81c099fd88d966c42d84fe4d30b9cd91700075ca8f4c31c3e4a2006813", 247085),
        "n-1.txt": ("80edd38bb93c2e990032aae4ab8c5ce650d056e13cf0a89ffd4ad3a318d6966b", 3117),
        "n-n.txt": ("d1f6021affea703ef4fe7018a0e0caebed56f946cf7a9a5bd43bc4b529f5362b", 279576),
        "relation2id.txt": ("1dade5e1aca65a0c0004c7ad240936791d745631a75bb0b69f278e28f8fa8ca2", 18),
        "test2id.txt": ("cfca850a7276a240f01a86d4fc5f1c6136fa13ab92cc840aee546d539b8175ef", 283309),
        "test2id_all.txt": ("46ca866d06ebfea86a921bee50c06ddbaede375f81ae6d6f47125dba93350b27", 328359),
        "train2id.txt": ("9d9e180ec9c91c12260094f6ef0f32cc13763493c4943e400faeaa36e9c94d50", 2267524),
        "type_constrain.txt": ("2a53e8ceae027d61ae2fe9b94e47428f99799cdca475b3183553afa730ac6d32", 206393),
        "valid2id.txt": ("14c9222252c01a48567c75a5967efbab7d66c6f55259f70af9b417aa135141fd", 283569),
    },
}


def _pinned_files(folder: str) -> tuple[ReleaseFile, ...]:
    return tuple(ReleaseFile(name, sha, size) for name, (sha, size) in sorted(_PINS[folder].items()))


def _counts(entities: int, relations: int, train: int, valid: int, test: int) -> dict[str, int]:
    return {"entities": entities, "relations": relations, "train": train, "valid": valid, "test": test}


def _build_registry(entries: list[DatasetEntry]) -> dict[str, DatasetEntry]:
    registry: dict[str, DatasetEntry] = {}
    seen: dict[str, str] = {}
    for entry in entries:
        for key in entry.keys:
            if key in seen:  # a spelling shared by two entries would make lookups ambiguous
                raise ValueError(f"dataset name {key!r} is used by both {seen[key]} and {entry.name}")
            seen[key] = entry.name
        registry[entry.name] = entry
    return registry


REGISTRY: dict[str, DatasetEntry] = _build_registry(
    [
        DatasetEntry(
            name="MKG-W",
            folder="MKG-W",
            files=_pinned_files("MKG-W"),
            counts=_counts(15_000, 169, 34_196, 4_276, 4_274),
            description="Wikidata subgraph with entity images and text (entity names are Wikidata ids)",
        ),
        DatasetEntry(
            name="MKG-Y",
            folder="MKG-Y",
            files=_pinned_files("MKG-Y"),
            counts=_counts(15_000, 28, 21_310, 2_665, 2_663),
            description="YAGO subgraph with entity images and text",
        ),
        DatasetEntry(
            name="TIVA",
            aliases=("TIVA-KG",),
            folder="TIVA",
            files=_pinned_files("TIVA"),
            counts=_counts(11_858, 16, 20_071, 2_000, 2_000),
            description="TIVA-KG concept graph with text, image, video and audio modalities",
        ),
        DatasetEntry(
            name="KVC16K",
            aliases=("Kuai16K",),
            folder="Kuai16K",
            files=_pinned_files("Kuai16K"),
            counts=_counts(16_015, 4, 180_190, 22_523, 22_525),
            description="Kuaishou short-video graph (release folder Kuai16K), Chinese entity names",
        ),
        DatasetEntry(
            name="DB15K",
            folder="DB15K",
            # Not pinned yet: download with allow_unpinned=True, which prints the hashes to pin.
            files=tuple(ReleaseFile(name) for name in REQUIRED_FILES),
            counts=_counts(12_842, 279, 79_222, 9_904, 9_902),
            description="DBpedia subgraph with entity images and text (files not pinned by sha256)",
        ),
    ]
)


def _registry(registry: Mapping[str, DatasetEntry] | None) -> Mapping[str, DatasetEntry]:
    return REGISTRY if registry is None else registry


def _known_names(registry: Mapping[str, DatasetEntry]) -> str:
    parts = []
    for entry in registry.values():
        parts.append(f"{entry.name} ({', '.join(entry.aliases)})" if entry.aliases else entry.name)
    return ", ".join(parts)


def find_entry(name: str, registry: Mapping[str, DatasetEntry] | None = None) -> DatasetEntry | None:
    """The entry answering to ``name`` (canonical name, alias or folder; any case), or None."""
    key = str(name).strip().casefold()
    for entry in _registry(registry).values():
        if key in entry.keys:
            return entry
    return None


def get_entry(name: str, registry: Mapping[str, DatasetEntry] | None = None) -> DatasetEntry:
    """Like :func:`find_entry`, but an unknown name raises :class:`UnknownDatasetError`."""
    entry = find_entry(name, registry)
    if entry is None:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}{_closest(name, registry)}; registered benchmarks: "
            f"{_known_names(_registry(registry))}"
        )
    return entry


def _closest(name: str, registry: Mapping[str, DatasetEntry] | None) -> str:
    """ " (did you mean 'MKG-W'?)" for a near miss of a registered name or alias; else ""."""
    return did_you_mean(
        name, {n: entry.name for entry in _registry(registry).values() for n in (entry.name, *entry.aliases)}
    )


def registry_table(registry: Mapping[str, DatasetEntry] | None = None) -> list[dict]:
    """One row per registered benchmark, for ``afme data list``."""
    rows = []
    for entry in _registry(registry).values():
        sizes = [f.size for f in entry.files]
        rows.append(
            {
                "name": entry.name,
                "aliases": list(entry.aliases),
                "folder": entry.folder,
                **dict(entry.counts),
                "files": len(entry.files),
                "bytes": sum(sizes) if None not in sizes else None,
                "pinned": entry.pinned,
                "description": entry.description,
            }
        )
    return rows


def cache_dir() -> Path:
    """Default download folder: ``$XDG_CACHE_HOME/afme-workbench/datasets`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "afme-workbench" / "datasets"


def search_roots(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """The roots searched for ``<folder>/``, in order, each with a label for messages."""
    roots = []
    if data_dir is not None:
        roots.append(("data_dir argument", Path(data_dir).expanduser()))
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        roots.append((f"${DATA_DIR_ENV}", Path(env).expanduser()))
    roots.append(("cache", cache_dir()))
    return roots


def _missing_files(folder: Path) -> list[str]:
    return [name for name in REQUIRED_FILES if not (folder / name).is_file()]


def resolve_dataset(
    name_or_dir: str | Path,
    data_dir: str | Path | None = None,
    registry: Mapping[str, DatasetEntry] | None = None,
) -> Path:
    """Path of the dataset folder for a folder path or a registered name.

    An existing folder is returned as is. A registered name (any case, or an alias) is looked up
    as ``<root>/<folder>/`` under each of :func:`search_roots`; the first folder holding all of
    :data:`REQUIRED_FILES` wins (an incomplete one, e.g. from an interrupted download, is passed
    over and named in the error). Raises :class:`UnknownDatasetError` for an unknown name and
    :class:`DatasetNotFoundError` when a registered one is nowhere; both say where it looked.
    """
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    entry = find_entry(str(name_or_dir), registry)
    if entry is None:
        raise UnknownDatasetError(
            f"unknown dataset {str(name_or_dir)!r}{_closest(str(name_or_dir), registry)}: no folder at "
            f"{path.resolve()} and not a registered "
            f"benchmark (registered: {_known_names(_registry(registry))}); to fetch a registered one "
            "run `afme data download NAME`"
        )
    looked = []
    for label, root in search_roots(data_dir):
        candidate = root / entry.folder
        if candidate.is_dir():
            missing = _missing_files(candidate)
            if not missing:
                return candidate
            looked.append(f"  - {label}: {candidate} (incomplete: missing {', '.join(missing)})")
        else:
            looked.append(f"  - {label}: {candidate} (not found)")
    raise DatasetNotFoundError(
        f"dataset {entry.name} (folder {entry.folder!r}) not found; looked in:\n"
        + "\n".join(looked)
        + f"\nrun `afme data download {entry.name}` to fetch it, set ${DATA_DIR_ENV}, "
        "or pass the folder path"
    )


def load_benchmark(
    name_or_dir: str | Path,
    data_dir: str | Path | None = None,
    registry: Mapping[str, DatasetEntry] | None = None,
) -> KGDataset:
    """Resolve (see :func:`resolve_dataset`) and load a dataset.

    The dataset is named by the registry's canonical name when the name, or the folder's name,
    is a registered one (``Kuai16K/`` loads as ``KVC16K``); otherwise by its folder name.
    """
    path = resolve_dataset(name_or_dir, data_dir, registry)
    entry = find_entry(str(name_or_dir), registry) if not Path(name_or_dir).expanduser().is_dir() else None
    entry = entry or find_entry(path.resolve().name, registry)
    return load_dataset(path, name=entry.name if entry else None)


def graph_counts(
    name_or_dir: str | Path, data_dir: str | Path | None = None, registry: Mapping[str, DatasetEntry] | None = None
) -> tuple[int, int]:
    """(entities, relations) of a dataset folder or registered name, from the id files' count
    lines; a registered benchmark that is not on disk uses its registered counts."""
    try:
        folder = resolve_dataset(name_or_dir, data_dir, registry)
    except DatasetNotFoundError:
        entry = find_entry(str(name_or_dir), registry)
        if entry is None:
            raise
        return int(entry.counts["entities"]), int(entry.counts["relations"])
    return read_count(folder / "entity2id.txt"), read_count(folder / "relation2id.txt")

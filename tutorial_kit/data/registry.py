"""The data registry: every course file with its URLs, hash and size; a cache, a mirror, the network.

Taught in ``notebooks/00_setup_check`` (the data cache), used by every loader.

:func:`fetch` looks for a file in three places, in this order:

1. **the cache** (``TUTORIAL_KIT_CACHE``, else the user cache folder, e.g.
   ``~/.cache/tutorial_kit``). A cached file is checked against its hash (once per process;
   the result is remembered per path, size and modification time). A corrupt or partial
   cached file is reported with a :class:`CorruptFileWarning`, removed and fetched again.
2. **the mirror** (``TUTORIAL_KIT_MIRROR``): a folder with the same relative layout as the
   cache, e.g. ``../shared/data`` in CI, or an instructor's USB stick at a workshop with bad
   Wi-Fi. Mirror files are checked against the same hashes and used in place (read-only,
   never copied by :func:`fetch`, never written to).
3. **the network**: the entry's URLs in order (the first is the primary, the others are
   fallbacks), downloaded with pooch into a temporary file beside the final path, checked
   (size, then hash) and only then moved into place with ``os.replace``. A failed or
   wrong download is deleted and the next URL is tried, so a half-written file never sits
   at the final path. ``TUTORIAL_KIT_OFFLINE=1`` switches the network off.

When every source fails, :class:`DataUnavailableError` names the file, every place and URL
tried with the reason each failed, and exactly where to put the file by hand.

Policies:

* **A mirror file with the wrong size or hash is an error**, not a silent fall-through to
  the network. A mirror is set up on purpose (CI, a USB stick for a whole room); a bad copy
  there is something the instructor must fix (re-copy it, e.g. with
  ``python -m tutorial_kit.data fill --dest``), and quietly downloading instead would hide
  it and, at a workshop, send thirty laptops to a slow network at once.
* **Files without a published hash** (some workshop-tier files) are refused unless
  ``allow_unverified=True`` is passed. Then the download is accepted with an
  :class:`UnverifiedDataWarning` that prints its sha256 (for an instructor to pin in this
  table) and the hash is recorded in a sidecar file ``<file>.sha256`` beside it (the
  ``sha256sum`` format). From then on the file is checked against the sidecar: later
  corruption is detected and a re-download must match it (trust on first use), without
  ``allow_unverified`` again. Delete the sidecar to accept a new upstream version.
* **fill_cache does not stop at a failure**: it fetches every requested file, returns a
  report with failures in its ``status`` column (``'failed: <reason>'``) and then issues one
  :class:`UserWarning` naming every failed file. The command line
  (``python -m tutorial_kit.data fill``) exits with status 1 when any file failed.

Environment variables:
    ``TUTORIAL_KIT_CACHE``: the cache folder.
    ``TUTORIAL_KIT_MIRROR``: a mirror folder (must exist when set).
    ``TUTORIAL_KIT_OFFLINE``: ``1`` forbids network access (cache and mirror only).

Example:
    >>> from tutorial_kit.data.registry import REGISTRY
    >>> REGISTRY["kang2018_scgen_valid.h5ad"].tier
    'ci'
    >>> REGISTRY["kang2018_scgen_valid.h5ad"].known_hash[:14]
    'sha256:83f89f5'
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, NamedTuple

from tutorial_kit._tiers import TIERS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "REGISTRY",
    "CorruptFileWarning",
    "DataUnavailableError",
    "Entry",
    "UnverifiedDataWarning",
    "cache_dir",
    "fetch",
    "file_hash",
    "fill_cache",
    "lookup",
    "mirror_dir",
    "register",
    "register_file",
    "registered",
    "resolve",
    "status",
    "unregister",
]

CHUNK = 1 << 20
"""Bytes read (hashing) and downloaded per step: 1 MiB."""

TIMEOUT_S = (20, 120)
"""Network timeouts in seconds: (connect, between two received chunks)."""

_HASH_RE = re.compile(r"^(sha256|sha1|sha512|md5):([0-9a-f]+)$")
_HEX_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}


class DataUnavailableError(RuntimeError):
    """A course file could not be obtained as a verified copy.

    Attributes:
        name: the registry name of the file.
        attempts: ``(place, reason)`` pairs: every cache path, mirror path and URL tried.
        summary: a one-line reason (used in :func:`fill_cache` reports).
    """

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        attempts: Iterable[tuple[str, str]] = (),
        summary: str | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.attempts = list(attempts)
        self.summary = summary or message.splitlines()[0]


class UnverifiedDataWarning(UserWarning):
    """A file without a published hash was accepted on trust (``allow_unverified=True``)."""


class CorruptFileWarning(UserWarning):
    """A cached copy had the wrong size or hash; it was removed and is fetched again."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One file of the course data.

    Attributes:
        name: path relative to the cache and to a mirror, e.g. ``'kang2018_scgen_valid.h5ad'``
            or ``'datlinger2021_scperturb/matrix.mtx'``.
        urls: download URLs; the first is the primary, the others are fallbacks.
        known_hash: ``'sha256:<hex>'`` or ``'md5:<hex>'`` (pooch style); ``None`` when no hash
            is published (then :func:`fetch` needs ``allow_unverified=True``).
        size: size in bytes, when known (a cheap first check).
        tier: ``'ci'`` (small real files, the CI mirror) or ``'workshop'`` (full datasets).
        description: what the file holds.
        source: where it comes from: ``repo@commit:path`` or a publication / archive record.
        hash_source: who published the hash (and whether tutorial_kit checked it).
        local: for a file registered with :func:`register` ``path=``: the local file, used in
            place (like a mirror file: checked, never written).
        stands_for: for a registered file: the built-in entry whose published layout it has;
            at the workshop tier its loader reads this file instead (see :func:`register`).

    Example:
        >>> entry = REGISTRY["kang2018_scgen_valid.h5ad"]
        >>> entry.tier, entry.size
        ('ci', 2321480)
        >>> entry.urls[0].startswith("https://raw.githubusercontent.com/theislab/scgen/")
        True
    """

    name: str
    urls: tuple[str, ...]
    known_hash: str | None
    size: int | None
    tier: str
    description: str = ""
    source: str = ""
    hash_source: str = ""
    local: str | None = None
    stands_for: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "urls", tuple(self.urls))
        if not self.urls and not self.local:
            raise ValueError(f"Entry {self.name!r} needs at least one URL (or a local path).")
        if self.tier not in TIERS:
            raise ValueError(f"Entry {self.name!r}: tier must be one of {TIERS}, got {self.tier!r}.")
        if not self.name or self.name.startswith("/") or ".." in self.name.split("/") or "\\" in self.name:
            raise ValueError(f"Entry name must be a relative path with '/' separators, got {self.name!r}.")
        if self.known_hash is not None:
            match = _HASH_RE.match(self.known_hash)
            if not match or len(match.group(2)) != _HEX_LENGTHS[match.group(1)]:
                raise ValueError(
                    f"Entry {self.name!r}: known_hash must look like 'sha256:<64 hex digits>' or "
                    f"'md5:<32 hex digits>', got {self.known_hash!r}."
                )
        if self.size is not None and self.size < 0:
            raise ValueError(f"Entry {self.name!r}: size must be >= 0, got {self.size}.")


# --------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------

_PINNED = ("sha256 of the file at the pinned commit, recorded by the course; every CI file is verified "
           "against the CI mirror by tests/test_registry.py")
_NO_HASH = "none published (pin here the sha256 that fetch(..., allow_unverified=True) prints)"


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


def _ci(name: str, size: int, sha256: str, repo_commit: tuple[str, str], path: str, description: str) -> Entry:
    repo, commit = repo_commit
    return Entry(
        name=name,
        urls=(_github(repo, commit, path),),
        known_hash=f"sha256:{sha256}",
        size=size,
        tier="ci",
        description=description,
        source=f"{repo}@{commit}:{path}",
        hash_source=_PINNED,
    )


_SCGEN = ("theislab/scgen", "dd7e178f9b42b9dfef9eb18d0da4b8e3caea4cf7")
_MUSCAT = ("HelenaLC/muscat", "017b290b414212c357e184d17edcca27f4302ace")
_SCPERTURB = ("sanderlab/scPerturb", "a02081b1480a8f57543184118454c024a39e99a3")
_PERTURBENCH = ("altoslabs/perturbench", "d357dfae3b50968e800e9f5f273ff145080ae67c")
_SCEPTRE = ("Katsevich-Lab/sceptre", "3ba046b86f33e99dee633fbb8704ee8defdb442d")
_SCMAGECK = ("weililab/scMAGeCK", "06b5e6f5ca320a1581f34c3675a9ee85fa07176a")
_NORMAN_GI = ("thomasmaxwellnorman/Perturbseq_GI", "3b25109aeb9c0c2026bd70abd50304a0ad4e5395")
_SCEPTREDATA = ("Katsevich-Lab/sceptredata", "ec722d5df90dfd34ace6cc9a5745ab6a5c2a6731")

_DATLINGER = "package_r/tests/testthat/testdata/"
_PARSE = "inst/extdata/parse_example/"
_DATLINGER_TXT = "Datlinger 2021 CROP-seq (Jurkat, TCR stimulation), scPerturb test subset, 7,500 cells x 2,000 HVGs"
_PARSE_TXT = "Parse Biosciences CRISPR Detect subset (CC BY 4.0), 5,000 cells"

# fmt: off
_CI_ENTRIES = [
    # name, bytes, sha256, repo@commit, path in repo, description
    _ci("kang2018_scgen_valid.h5ad", 2_321_480,
        "83f89f5356a4c01f65bbcee225eb45d8d8b13b6c962724431a26c1bf568ff09e", _SCGEN, "data/valid.h5ad",
        "Kang 2018 PBMC IFN-beta, scGen's validation split: 1,975 cells x 6,998 genes, log-normalized"),
    _ci("kang2018_muscat_example_sce.rda", 1_045_440,
        "f66811fa513a01a91dae01bad308e96ed5238277246b911d8e1cd5f4425c3ed9", _MUSCAT, "data/example_sce.rda",
        "Kang 2018 PBMC subset, R SingleCellExperiment: 1,556 cells x 1,267 genes, raw UMI counts"),
    _ci("datlinger2021_scperturb/matrix.mtx", 1_561_514,
        "9594bc3e13a9c093cfb1242c7257a3fe4ba2008a6fe24ea6e9ff43aebf109991", _SCPERTURB, _DATLINGER + "matrix.mtx",
        _DATLINGER_TXT + ": raw counts (MatrixMarket)"),
    _ci("datlinger2021_scperturb/barcodes.csv", 223_900,
        "5daa65f68319926dda9b9a83b530d37c12f8480aa2fa555d5745c13842535c35", _SCPERTURB, _DATLINGER + "barcodes.csv",
        _DATLINGER_TXT + ": cell barcodes"),
    _ci("datlinger2021_scperturb/genes.csv", 32_165,
        "62646cb0c566f604feccac6fd6ac6c869a05a9564b62d857276ae959fe4ac018", _SCPERTURB, _DATLINGER + "genes.csv",
        _DATLINGER_TXT + ": genes"),
    _ci("datlinger2021_scperturb/seurat_metadata.csv", 1_485_333,
        "8226d9f0ed89e1d2191a5de62397a0d479f16607fc0c997623d62bcd83efabf6", _SCPERTURB,
        _DATLINGER + "seurat_metadata.csv",
        _DATLINGER_TXT + ": cell metadata (perturbation, stimulation, well, QC)"),
    _ci("perturbench_devel.h5ad", 1_142_678,
        "220998f5630c813228c8661c86dd52244b9ac87127511289af90e0d900d8429b", _PERTURBENCH,
        "src/perturbench/data/resources/devel.h5ad",
        "PerturBench devel set: 5,961 cells x 500 HVGs, log-normalized (norman19 singles + doubles, mcfaline23)"),
    _ci("parse_sceptre_example/gene_mat.mtx", 216_386,
        "631d3cb0903fc582b36da920f8225d63b1cf4ca1b057996815c04b0166c7996f", _SCEPTRE, _PARSE + "gene_mat.mtx",
        _PARSE_TXT + ": gene UMI counts, 266 genes"),
    _ci("parse_sceptre_example/all_genes.csv", 7_655,
        "6ae186f9fa439073ac1144d043c4a3b01800149708919de0c9232658619f76af", _SCEPTRE, _PARSE + "all_genes.csv",
        _PARSE_TXT + ": gene names"),
    _ci("parse_sceptre_example/grna_mat.mtx", 47_609,
        "de399779df02a137db631897715b5a28011dcf49cc3a3236c4ac4ef1a5d1860a", _SCEPTRE, _PARSE + "grna_mat.mtx",
        _PARSE_TXT + ": guide UMI counts, 3 guides"),
    _ci("parse_sceptre_example/all_grnas.csv", 94,
        "b27aec33dbd9dd8edf8edf7987e46b7c1155296eec768740abcdc11eaf84bb48", _SCEPTRE, _PARSE + "all_grnas.csv",
        _PARSE_TXT + ": guide names"),
    _ci("parse_sceptre_example/README.md", 629,
        "ce20e71b3430ce93e7bd1dd899bc43187cb99b8d4d47bb99e30fc0b18112b328", _SCEPTRE, _PARSE + "README.md",
        _PARSE_TXT + ": the data's README (source and licence)"),
    _ci("scmageck_barcode_rec.txt", 546_365,
        "0d052ee60e681f250b9a42e682a329194706d7765ff945f74d23fe25a980113d", _SCMAGECK,
        "inst/extdata/barcode_rec.txt",
        "scMAGeCK guide-assignment table (tab-separated), 8,425 rows, cells with several guides"),
    _ci("norman2019_gi/regr_fits_final.csv", 127_987,
        "664331b7374e1dd22dd42c8a7b3f97aecf01dfb034701818101574fca4441ff3", _NORMAN_GI,
        "data_sharing/regr_fits_final.csv",
        "Norman 2019 genetic-interaction fits, one row per double"),
    _ci("norman2019_gi/optimal_umap_layout.csv", 12_855,
        "e467ca963f2442d6986431ddd05e0f5189661fcb79d1af4fd30d19fafd33ccf3", _NORMAN_GI,
        "data_sharing/optimal_umap_layout.csv",
        "Norman 2019 perturbation UMAP layout with functional program labels"),
    _ci("norman2019_gi/20180821_guides_chosen_for_perturbseq.csv", 5_484,
        "2f257bf88c65f89587f86d364e37d26d4dde2ebadc1d9497c78118a8f9365668", _NORMAN_GI,
        "final_emaps/20180821_guides_chosen_for_perturbseq.csv",
        "Guides used in the Norman 2019 Perturb-seq screen"),
    _ci("papalexi2021_sceptre/lowmoi_example_data.rda", 1_358_267,
        "e3f8ad09bb4b1d0deeeec2850a2d96f8f5062fef31a9ab1cc080e60560421b6a", _SCEPTREDATA,
        "data/lowmoi_example_data.rda",
        "Papalexi 2021 ECCITE-seq knockout screen (THP-1 cells, IFN-gamma), the low-MOI example of the sceptredata "
        "R package (MIT): R list of raw UMI counts, 299 genes and 110 guides x 20,729 cells"),
]
# fmt: on

_ZENODO_SCPERTURB = "https://zenodo.org/records/13350497/files/{}?download=1"
_SCPERTURB_RECORD = "scPerturb, Zenodo record 13350497"
_ZENODO_MD5 = ("md5 that Zenodo publishes for record 13350497, as quoted beside the file size by an independent "
               "download script; NOT verified by tutorial_kit (the course's build machines cannot reach Zenodo)")


def _scperturb(name: str, size: int | None, known_hash: str | None, description: str,
               extra_urls: tuple[str, ...] = ()) -> Entry:
    return Entry(
        name=name,
        urls=(_ZENODO_SCPERTURB.format(name), *extra_urls),
        known_hash=known_hash,
        size=size,
        tier="workshop",
        description=description,
        source=_SCPERTURB_RECORD + (" (also served by pertpy, a copy of scPerturb's file)" if extra_urls else ""),
        hash_source=_ZENODO_MD5 if known_hash else _NO_HASH,
    )

_WORKSHOP_ENTRIES = [
    Entry(
        name="kang_2018.h5ad",
        urls=(
            "https://exampledata.scverse.org/pertpy/kang_2018.h5ad",
            "https://scverse-exampledata.s3.eu-west-1.amazonaws.com/pertpy/kang_2018.h5ad",
            "https://api.figshare.com/v2/file/download/34464122",
        ),
        known_hash="sha256:e6a5adac64dcdeb36eaba27db49b63e0c64bb0ed4a64c6705971506b41c39830",
        size=38_356_412,
        tier="workshop",
        description="Kang 2018 PBMC IFN-beta (pertpy kang_2018): 24,673 cells x 15,706 genes, raw counts; "
        "obs label (ctrl/stim), cell_type, replicate",
        source="pertpy datasets.kang_2018 (scverse example data; formerly figshare file 34464122)",
        hash_source="pertpy / two independent projects that pin this file; NOT verified by tutorial_kit "
        "(the course's build machines cannot download it); size as recorded beside the hash by one of them",
    ),
    Entry(
        name="scgen_train_pbmc.h5ad",
        urls=("https://www.dropbox.com/s/wk5zewf2g1oat69/train_pbmc.h5ad?dl=1",),
        known_hash=None,
        size=None,
        tier="workshop",
        description="Kang 2018 PBMC, scGen's training split: 16,893 cells x 6,998 genes, log-normalized",
        source="scGen tutorials (Lotfollahi et al. 2019), Dropbox",
        hash_source=_NO_HASH,
    ),
    Entry(
        name="scgen_valid_pbmc.h5ad",
        urls=("https://www.dropbox.com/s/nqi971n0tk4nbfj/valid_pbmc.h5ad?dl=1",),
        known_hash=None,
        size=None,
        tier="workshop",
        description="Kang 2018 PBMC, scGen's validation split as distributed with the scGen tutorials",
        source="scGen tutorials (Lotfollahi et al. 2019), Dropbox",
        hash_source=_NO_HASH,
    ),
    _scperturb(
        "NormanWeissman2019_filtered.h5ad", 698_680_199, "md5:c870e6967d91c017d9da827bab183cd6",
        "Norman 2019 K562 CRISPRa singles and pairs, scPerturb: 111,445 cells x 33,694 genes, raw counts",
    ),
    _scperturb(
        "ReplogleWeissman2022_K562_essential.h5ad", None, None,
        "Replogle 2022 K562 CRISPRi, essential genes, scPerturb: 310,385 cells x 8,563 genes, raw counts "
        "(dense, about 3.5 GB)",
        extra_urls=("https://exampledata.scverse.org/pertpy/replogle_2022_k562_essential.h5ad",),
    ),
    _scperturb(
        "AdamsonWeissman2016_GSM2406681_10X010.h5ad", 471_286_951, "md5:2fa44ea61a8dd35742af618638ec65fc",
        "Adamson 2016 K562 CRISPRi (UPR Perturb-seq, 10X010), scPerturb: 65,337 cells x 32,738 genes, raw counts",
        extra_urls=("https://exampledata.scverse.org/pertpy/adamson_2016_upr_perturb_seq.h5ad",),
    ),
    _scperturb(
        "DixitRegev2016_K562_TFs_7_days.h5ad", None, None,
        "Dixit 2016 Perturb-seq of transcription factors in K562 (7 days), scPerturb: 33,013 cells x 23,111 genes",
    ),
    _scperturb(
        "PapalexiSatija2021_eccite_RNA.h5ad", 147_215_278, "md5:d9e8bfe20b0e7b0919be042e8fcf6d03",
        "Papalexi 2021 ECCITE-seq CRISPR knockout in THP-1 (RNA), scPerturb: 20,729 cells x 18,649 genes, raw counts",
    ),
    _scperturb(
        "DatlingerBock2021.h5ad", None, None,
        "Datlinger 2021 CROP-seq in Jurkat cells with and without TCR stimulation, scPerturb: the full screen "
        "behind the CI subset (datlinger2021_scperturb), raw counts",
    ),
    _scperturb(
        "SrivatsanTrapnell2020_sciplex3.h5ad", 2_526_631_614, "md5:c9e70629505d98c7ca1a837f62b14e89",
        "sci-Plex 3 (Srivatsan 2020): 188 compounds x 4 doses in A549, K562, MCF7, scPerturb: 799,317 cells",
        extra_urls=("https://exampledata.scverse.org/pertpy/srivatsan_2020_sciplex3.h5ad",),
    ),
    Entry(
        name="gears_norman.zip",
        urls=("https://dataverse.harvard.edu/api/access/datafile/6154020",),
        known_hash=None,
        size=None,
        tier="workshop",
        description="GEARS `norman` dataset: zip archive with norman/perturb_processed.h5ad "
        "(91,205 cells x 5,045 genes, log-normalized)",
        source="GEARS (Roohani et al. 2023), Harvard Dataverse datafile 6154020",
        hash_source=_NO_HASH,
    ),
    Entry(
        name="norman_2019_adata.h5ad",
        urls=("https://exampledata.scverse.org/scvi-tools/norman_2019_adata.h5ad",),
        known_hash=None,
        size=None,
        tier="workshop",
        description="Norman 2019 as used by the scvi-tools contrastiveVI tutorial (about 3.9 GB)",
        source="scvi-tools contrastiveVI tutorial, scverse example data",
        hash_source=_NO_HASH,
    ),
]

REGISTRY: dict[str, Entry] = {entry.name: entry for entry in (*_CI_ENTRIES, *_WORKSHOP_ENTRIES)}
"""Every course file by name; the CI entries are exactly the files of the CI mirror (``../shared/data``)."""


# --------------------------------------------------------------------------------------
# Your own files: register a local file or a URL with its sha256
# --------------------------------------------------------------------------------------

_USER: dict[str, Entry] = {}
"""Files registered in this process with :func:`register` / :func:`register_file`."""

_FROM_ENV: dict[str, Entry] = {}
_FROM_ENV_KEY: tuple = ()

REGISTRY_ENV = "TUTORIAL_KIT_REGISTRY"
"""Environment variable: TOML files of extra entries (separated by ``os.pathsep``), read on first use."""


def _clean_sha256(sha256: str | None, name: str) -> str:
    text = (sha256 or "").strip().lower()
    text = text[len("sha256:"):] if text.startswith("sha256:") else text
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        given = "no sha256" if not sha256 else f"sha256={sha256!r}, which is not 64 hex digits"
        raise ValueError(
            f"register({name!r}): {given}. Every registered file needs its SHA-256, so a wrong, truncated "
            "or changed copy is refused. Compute it once from a copy you trust: "
            "`python -m tutorial_kit.data hash FILE` (or tk.data.file_hash(path)), and pass sha256='<64 hex digits>'."
        )
    return f"sha256:{text}"


def _make_user_entry(
    name: str,
    *,
    path: str | os.PathLike | None,
    url: str | None,
    sha256: str | None,
    size: int | None,
    description: str,
    stands_for: str | None,
    base: Path | None = None,
) -> Entry:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("register: the name must be a non-empty string, e.g. 'my_norman2019.h5ad'.")
    if name in REGISTRY:
        raise ValueError(
            f"{name!r} is a built-in course file; its hash cannot be changed by registering it. "
            "To use a copy you already have, put it in the cache or a mirror folder under that name "
            "(it is checked against the built-in hash), or register it under a new name with "
            f"stands_for={name!r} and its own sha256."
        )
    if (path is None) == (url is None):
        raise ValueError(f"register({name!r}): give exactly one of path= (a local file) or url= (a download).")
    if url is not None and not str(url).startswith(("https://", "http://", "file://")):
        raise ValueError(f"register({name!r}): url must start with https://, http:// or file://, got {url!r}.")
    if stands_for is not None and stands_for not in REGISTRY:
        close = difflib.get_close_matches(str(stands_for), list(REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"register({name!r}): stands_for={stands_for!r} is not a built-in course file.{hint}")
    local = None
    if path is not None:
        local_path = Path(path).expanduser()
        if not local_path.is_absolute():
            local_path = (base or Path.cwd()) / local_path
        local = str(local_path.resolve())
    return Entry(
        name=name,
        urls=(str(url),) if url is not None else (),
        known_hash=_clean_sha256(sha256, name),
        size=size,
        tier="workshop",
        description=description or f"registered by the user: {local or url}",
        source=str(local or url),
        hash_source="sha256 given when the file was registered",
        local=local,
        stands_for=stands_for,
    )


def register(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    description: str = "",
    stands_for: str | None = None,
    replace: bool = False,
) -> Entry:
    """Add your own file to the registry: a local file or a URL, with its SHA-256.

    Taught in ``book/data.md`` (bring your own data). The built-in entries keep their hashes:
    a built-in name cannot be registered again, and every registered file must match the
    sha256 given here (a missing or malformed hash is an error, not a warning).

    * ``path=``: a file you already have (e.g. on a shared disk); :func:`fetch` checks it in
      place and returns its path; it is never copied or written.
    * ``url=``: a download; it goes to the cache like a built-in file (checked before use).
    * ``stands_for=``: the built-in file whose published layout yours has (a newer copy, a
      subset, a stand-in for tests). The course loaders of that file then read yours
      (see :func:`resolve`), so ``tk.data.norman()`` at the workshop tier can run on it.

    Instructors can list entries in a TOML file and point ``TUTORIAL_KIT_REGISTRY`` at it
    (see :func:`register_file`), so every participant gets them without code.

    Args:
        name: a new registry name, e.g. ``'my_norman2019.h5ad'``.
        path: a local file (relative paths are relative to the current folder).
        url: a download URL (https, http or file).
        sha256: the file's SHA-256 (``'<hex>'`` or ``'sha256:<hex>'``); compute it with
            ``python -m tutorial_kit.data hash FILE``.
        size: size in bytes, optional (a cheap first check).
        description: what the file holds.
        stands_for: a built-in registry name whose layout the file has.
        replace: allow replacing an entry of the same name registered earlier.

    Returns:
        The new :class:`Entry`.

    Raises:
        ValueError: a built-in name, both or neither of ``path``/``url``, a missing or
            malformed sha256, an unknown ``stands_for``, or a name already registered
            differently (without ``replace=True``).

    Example:
        >>> import pathlib, tempfile
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "cells.csv"
        >>> _ = file.write_text("cell,guide\\nc1,NT\\n")
        >>> entry = register("my_cells.csv", path=file, sha256=file_hash(file))
        >>> fetch("my_cells.csv") == file.resolve()
        True
        >>> register("kang_2018.h5ad", path=file, sha256=file_hash(file))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: 'kang_2018.h5ad' is a built-in course file; its hash cannot be changed...
        >>> unregister("my_cells.csv")
    """
    entry = _make_user_entry(
        name, path=path, url=url, sha256=sha256, size=size, description=description, stands_for=stands_for
    )
    previous = _USER.get(name) or _FROM_ENV.get(name)
    if previous is not None and previous != entry and not replace:
        raise ValueError(
            f"{name!r} is already registered ({previous.source}, {previous.known_hash}); "
            "pass replace=True to replace it, or choose another name."
        )
    _USER[name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a file registered in this process with :func:`register` (built-in entries stay).

    Raises:
        ValueError: ``name`` was not registered in this process.
    """
    if name not in _USER:
        raise ValueError(f"{name!r} was not registered with tk.data.register in this process.")
    del _USER[name]


def _read_registry_file(path: Path) -> dict[str, Entry]:
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{REGISTRY_ENV} (or register_file) names {path}, which does not exist. "
            "Fix the path, or unset the variable."
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path} is not valid TOML ({err}).") from None
    files = data.get("file")
    if not isinstance(files, list) or not files:
        raise ValueError(
            f"{path}: no [[file]] tables. Each entry is\n[[file]]\nname = \"my_file.h5ad\"\n"
            "path = \"/data/my_file.h5ad\"   # or url = \"https://...\"\nsha256 = \"<64 hex digits>\""
        )
    allowed = {"name", "path", "url", "sha256", "size", "description", "stands_for"}
    out: dict[str, Entry] = {}
    for i, item in enumerate(files):
        unknown = sorted(set(item) - allowed)
        if unknown or "name" not in item:
            raise ValueError(f"{path}: [[file]] number {i + 1} has unknown keys {unknown} or no name; "
                             f"allowed keys: {sorted(allowed)}.")
        try:
            entry = _make_user_entry(
                item["name"],
                path=item.get("path"),
                url=item.get("url"),
                sha256=item.get("sha256"),
                size=item.get("size"),
                description=item.get("description", ""),
                stands_for=item.get("stands_for"),
                base=path.parent,
            )
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        if entry.name in out:
            raise ValueError(f"{path}: {entry.name!r} is listed twice.")
        out[entry.name] = entry
    return out


def register_file(path: str | os.PathLike) -> list[Entry]:
    """Register every ``[[file]]`` of a TOML file (keys as the arguments of :func:`register`).

    Relative ``path`` values are relative to the TOML file, so an instructor can ship the
    TOML beside the data (e.g. on a USB stick). Setting ``TUTORIAL_KIT_REGISTRY`` to the TOML
    file (several separated by ``os.pathsep``) registers them in every process, without code.

    Example:
        >>> import pathlib, tempfile
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "guides.csv").write_text("cell,guide\\n")
        >>> _ = (folder / "extra.toml").write_text(
        ...     '[[file]]\\nname = "my_guides.csv"\\npath = "guides.csv"\\n'
        ...     f'sha256 = "{file_hash(folder / "guides.csv")}"\\n')
        >>> [e.name for e in register_file(folder / "extra.toml")]
        ['my_guides.csv']
        >>> unregister("my_guides.csv")
    """
    entries = _read_registry_file(Path(path).expanduser().resolve())
    for entry in entries.values():
        previous = _USER.get(entry.name)
        if previous is not None and previous != entry:
            raise ValueError(f"{entry.name!r} is already registered differently ({previous.source}).")
    _USER.update(entries)
    return list(entries.values())


def _user_entries() -> dict[str, Entry]:
    """Registered entries: those of ``TUTORIAL_KIT_REGISTRY`` (re-read when it changes), then this process's."""
    global _FROM_ENV, _FROM_ENV_KEY
    raw = os.environ.get(REGISTRY_ENV, "").strip()
    paths = [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip()]
    key = tuple((str(p), p.stat().st_mtime_ns if p.exists() else None) for p in paths)
    if key != _FROM_ENV_KEY:
        loaded: dict[str, Entry] = {}
        for p in paths:
            for name, entry in _read_registry_file(p).items():
                if name in loaded and loaded[name] != entry:
                    raise ValueError(f"{name!r} is registered differently in two files of {REGISTRY_ENV}.")
                loaded[name] = entry
        _FROM_ENV, _FROM_ENV_KEY = loaded, key
    return {**_FROM_ENV, **_USER}


def registered() -> list[Entry]:
    """Every registered (not built-in) entry: from ``TUTORIAL_KIT_REGISTRY`` and :func:`register`."""
    return list(_user_entries().values())


def resolve(name: str) -> str:
    """The file a loader of the built-in ``name`` reads: a registered file standing for it, else ``name``.

    Example:
        >>> resolve("NormanWeissman2019_filtered.h5ad")
        'NormanWeissman2019_filtered.h5ad'
    """
    lookup(name)
    standing = [e.name for e in _user_entries().values() if e.stands_for == name]
    if len(standing) > 1:
        raise ValueError(
            f"Several registered files stand for {name!r}: {standing}; unregister all but one "
            f"(or remove them from {REGISTRY_ENV})."
        )
    return standing[0] if standing else name


def _registered_copy(entry: Entry, dest: Path | None) -> _Copy:
    """A registered local file for :func:`fill_cache`: used in place, or copied into ``dest``."""
    source = _check_registered_local(entry)
    if dest is None:
        return _Copy(source, "registered", entry.known_hash, True)
    target = dest / entry.name
    if not (target.is_file() and _problem(target, entry, entry.known_hash) is None):
        _copy(source, target, entry, entry.known_hash)
    return _Copy(target, "copied", entry.known_hash, True)


def _check_registered_local(entry: Entry) -> Path:
    path = Path(entry.local)
    if not path.is_file():
        raise DataUnavailableError(
            f"{entry.name} was registered as the local file {path}, which does not exist (or is not a file). "
            "Fix the path in register(...) or in the TOML file of TUTORIAL_KIT_REGISTRY.",
            name=entry.name,
            attempts=[(f"local {path}", "not there")],
            summary="registered local file not found",
        )
    problem = _problem(path, entry, entry.known_hash)
    if problem is not None:
        raise DataUnavailableError(
            f"The registered file {entry.name} at {path} does not match the sha256 it was registered with: {problem}. "
            "It is not used. If the file changed on purpose, register it again with its new sha256 "
            "(`python -m tutorial_kit.data hash FILE`).",
            name=entry.name,
            attempts=[(f"local {path}", problem)],
            summary=f"registered file is wrong ({problem})",
        )
    return path


# --------------------------------------------------------------------------------------
# Places: cache, mirror, network switch
# --------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The cache folder: ``TUTORIAL_KIT_CACHE``, else the user cache folder + ``tutorial_kit``.

    Taught in ``00_setup_check``. The folder is not created here.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict("os.environ", {"TUTORIAL_KIT_CACHE": "/data/tk-cache"}):
        ...     print(cache_dir().as_posix())
        /data/tk-cache
    """
    raw = os.environ.get("TUTORIAL_KIT_CACHE", "").strip()
    if raw:
        return Path(raw).expanduser()
    try:
        import platformdirs
    except ImportError:  # platformdirs is a dependency; this keeps a broken env usable
        return Path.home() / ".cache" / "tutorial_kit"
    return Path(platformdirs.user_cache_dir()) / "tutorial_kit"


def mirror_dir() -> Path | None:
    """The mirror folder from ``TUTORIAL_KIT_MIRROR``, or ``None`` when it is not set.

    A mirror has the same relative layout as the cache (CI: ``../shared/data``; at a
    workshop: a USB stick or a shared folder prepared with :func:`fill_cache`).

    Raises:
        FileNotFoundError: ``TUTORIAL_KIT_MIRROR`` is set but is not an existing folder.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict("os.environ", {"TUTORIAL_KIT_MIRROR": ""}):
        ...     print(mirror_dir())
        None
    """
    raw = os.environ.get("TUTORIAL_KIT_MIRROR", "").strip()
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"TUTORIAL_KIT_MIRROR is set to {raw!r}, which is not an existing folder. "
            "Point it at the folder holding the course files in their usual layout "
            "(e.g. <folder>/kang2018_scgen_valid.h5ad; in CI ../shared/data; at a workshop "
            "the mounted USB stick), or unset it (`unset TUTORIAL_KIT_MIRROR`) to use "
            "the cache and the network only."
        )
    return path


def _offline() -> bool:
    raw = os.environ.get("TUTORIAL_KIT_OFFLINE", "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"TUTORIAL_KIT_OFFLINE must be 1 or 0, got {raw!r}.")


# --------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------

_HASH_CACHE: dict[tuple[str, int, int, int, str], str] = {}


def _stat_key(path: Path, algorithm: str) -> tuple[str, int, int, int, str]:
    st = path.stat()
    return (str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino, algorithm)


def file_hash(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks.

    The result is remembered for this process per (path, size, modification time), so
    loading a large file again does not hash it again; a changed file is hashed anew.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
        >>> _ = path.write_bytes(b"hello")
        >>> file_hash(path)
        '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'
    """
    path = Path(path)
    key = _stat_key(path, algorithm)
    if key in _HASH_CACHE:
        return _HASH_CACHE[key]
    digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    _HASH_CACHE[key] = digest.hexdigest()
    return _HASH_CACHE[key]


def _split(known_hash: str) -> tuple[str, str]:
    algorithm, _, hexdigest = known_hash.partition(":")
    return algorithm, hexdigest


def _problem(path: Path, entry: Entry, expected: str | None) -> str | None:
    """Why ``path`` is not a good copy of ``entry`` (``None`` when it is)."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"size {size:,} bytes, expected {entry.size:,}"
    if expected is None:
        return None
    algorithm, hexdigest = _split(expected)
    actual = file_hash(path, algorithm)
    if actual != hexdigest:
        return f"{algorithm} {actual}, expected {hexdigest}"
    return None


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _read_sidecar(path: Path) -> str | None:
    """The trust-on-first-use hash recorded beside ``path`` (``'sha256:<hex>'``), if any."""
    try:
        text = _sidecar(path).read_text().split()
    except OSError:
        return None
    if text and re.fullmatch(r"[0-9a-f]{64}", text[0]):
        return f"sha256:{text[0]}"
    return None


def _write_sidecar(path: Path, sha256: str) -> None:
    side = _sidecar(path)
    fd, tmp = tempfile.mkstemp(dir=side.parent, prefix=f".{side.name}.", suffix=".part")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{sha256}  {path.name}\n")
    os.replace(tmp, side)


def _warn_unverified(entry: Entry, path: Path, sha256: str, *, recorded: bool) -> None:
    where = f"it is recorded in {_sidecar(path)} so later corruption is detected" if recorded else (
        "the mirror is read-only, so it is not recorded there"
    )
    warnings.warn(
        f"{entry.name} has no published hash, so this copy ({path}) is UNVERIFIED: it was accepted "
        f"because allow_unverified=True. Its sha256 is {sha256} ({where}). To pin it for everyone, "
        f"check it against a second download and set known_hash='sha256:{sha256}' for "
        f"{entry.name!r} in tutorial_kit/data/registry.py.",
        UnverifiedDataWarning,
        stacklevel=4,
    )


# --------------------------------------------------------------------------------------
# Lookup and errors
# --------------------------------------------------------------------------------------


def lookup(name: str) -> Entry:
    """The registry entry of ``name``; an unknown name is refused with the closest known names.

    Example:
        >>> lookup("kang2018_scgen_valid.h5ad").tier
        'ci'
        >>> lookup("kang2018.h5ad")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Unknown data file 'kang2018.h5ad'. Did you mean: 'kang_2018.h5ad', 'kang2018_scgen_valid.h5ad', ...
    """
    if name in REGISTRY:
        return REGISTRY[name]
    own = _user_entries()
    if name in own:
        return own[name]
    known = [*REGISTRY, *own]
    close = difflib.get_close_matches(str(name), known, n=5, cutoff=0.4)
    close += [n for n in known if str(name).lower() in n.lower() and n not in close]
    hint = f" Did you mean: {', '.join(repr(n) for n in close[:6])}?" if close else ""
    raise ValueError(
        f"Unknown data file {name!r}.{hint} "
        "List all names with `python -m tutorial_kit.data status` or tk.data.status()."
    )


def _select(names_or_tier: str | Iterable[str]) -> list[Entry]:
    if isinstance(names_or_tier, str):
        if names_or_tier in TIERS:
            return [e for e in REGISTRY.values() if e.tier == names_or_tier]
        return [lookup(names_or_tier)]
    entries = [lookup(n) for n in names_or_tier]
    return list({e.name: e for e in entries}.values())


def _expected_line(entry: Entry) -> str:
    parts = [entry.known_hash or "no published hash"]
    if entry.size is not None:
        parts.append(f"{entry.size:,} bytes")
    return ", ".join(parts)


def _by_hand(entry: Entry, root: Path, mirror: Path | None) -> str:
    target = root / entry.name
    if mirror is not None:
        alt = f"or copy it into the mirror folder as {mirror / entry.name} (TUTORIAL_KIT_MIRROR={mirror})"
    else:
        alt = (
            f"or put it in a mirror folder as <folder>/{entry.name} and set "
            "`export TUTORIAL_KIT_MIRROR=<folder>` (e.g. a USB stick from your instructor)"
        )
    return (
        "To provide it by hand, download it from one of the URLs above (a browser works) and save it as\n"
        f"    {target}\n{alt}.\nIt must match: {_expected_line(entry)}."
    )


def _attempt_lines(attempts: list[tuple[str, str]]) -> str:
    return "\n".join(f"  - {place}: {reason}" for place, reason in attempts)


def _refuse_unverified(
    entry: Entry, attempts: list[tuple[str, str]], found: Path | None = None
) -> DataUnavailableError:
    what = f"The copy at {found} cannot be checked" if found else "A download cannot be checked"
    message = (
        f"{entry.name} has no published hash. {what}: "
        "tutorial_kit would not notice a truncated, corrupt or changed file.\n"
        f"To accept it on trust, call fetch({entry.name!r}, allow_unverified=True) or run "
        "`python -m tutorial_kit.data fill --tier workshop --allow-unverified`. Its sha256 is then "
        "printed (please send it to the course maintainers to pin) and recorded in a sidecar "
        "file beside it, so later corruption is detected."
    )
    if attempts:
        message += "\nLooked in:\n" + _attempt_lines(attempts)
    return DataUnavailableError(
        message, name=entry.name, attempts=attempts, summary="no published hash; use allow_unverified"
    )


# --------------------------------------------------------------------------------------
# Getting a file
# --------------------------------------------------------------------------------------


class _Copy(NamedTuple):
    path: Path
    how: str  # 'cached', 'mirror', 'copied', 'downloaded'
    hash: str  # 'sha256:<hex>' or 'md5:<hex>'
    verified: bool  # True: matches the registry hash; False: trust on first use


def _check_local(
    entry: Entry, path: Path, *, role: str, allow_unverified: bool, attempts: list[tuple[str, str]]
) -> tuple[str, bool] | None:
    """Check a local copy; return ``(hash, verified)`` when it is good.

    ``role`` is ``'cache'`` or ``'destination'`` (a bad copy is removed with a warning and
    ``None`` returned) or ``'mirror'`` (a bad copy is an error; the mirror is never written).
    """
    place = f"{role} {path}"
    if not path.is_file():
        attempts.append((place, "not there"))
        return None
    writable = role != "mirror"
    expected = entry.known_hash or _read_sidecar(path)
    if expected is None:
        if not allow_unverified:
            raise _refuse_unverified(entry, attempts, found=path)
        problem = _problem(path, entry, None)
        if problem is None:
            sha256 = file_hash(path)
            if writable:
                _write_sidecar(path, sha256)
            _warn_unverified(entry, path, sha256, recorded=writable)
            return f"sha256:{sha256}", False
    else:
        problem = _problem(path, entry, expected)
        if problem is None:
            return expected, entry.known_hash is not None
    if not writable:
        raise DataUnavailableError(
            f"The mirror copy of {entry.name} is wrong: {path} has {problem}.\n"
            "Re-copy it from a good source (e.g. `python -m tutorial_kit.data fill "
            f"--tier {entry.tier} --dest {path.parents[len(Path(entry.name).parts) - 1]}` on a machine with "
            "network access), or unset TUTORIAL_KIT_MIRROR to use the cache and the network. "
            "tutorial_kit does not fall back to the network on its own: a bad mirror is for the "
            "instructor to fix.",
            name=entry.name,
            attempts=[*attempts, (place, problem)],
            summary=f"mirror copy is wrong ({problem})",
        )
    warnings.warn(
        f"The {role} copy of {entry.name} at {path} is corrupt or incomplete ({problem}); "
        "it is removed and fetched again.",
        CorruptFileWarning,
        stacklevel=4,
    )
    path.unlink()
    attempts.append((place, f"corrupt ({problem}), removed"))
    return None


def _describe(exc: BaseException) -> str:
    import requests

    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None:
        return f"HTTP {response.status_code} {response.reason}".strip()
    text = str(exc)
    if len(text) > 240:
        text = text[:240] + "..."
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return f"the connection dropped during the download ({text})"
    if isinstance(exc, requests.Timeout):
        return f"timed out ({text})"
    if isinstance(exc, requests.ConnectionError):
        return f"could not connect ({text})"
    return f"{type(exc).__name__}: {text}"


def _new_temp(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    return Path(tmp)


def _install(tmp: Path, target: Path, entry: Entry, digest: str) -> None:
    """Move a checked temporary file into place; record its hash (and a sidecar when unverified)."""
    os.replace(tmp, target)
    algorithm, hexdigest = _split(digest)
    _HASH_CACHE[_stat_key(target, algorithm)] = hexdigest
    if entry.known_hash is None:
        _write_sidecar(target, hexdigest)


def _download(
    entry: Entry, target: Path, *, pinned: str | None, progress: bool, attempts: list[tuple[str, str]]
) -> str | None:
    """Try each URL; return the hash of the installed file, or ``None`` when all failed."""
    import pooch

    from tutorial_kit import __version__

    downloader = pooch.HTTPDownloader(
        progressbar=progress,
        chunk_size=CHUNK,
        timeout=TIMEOUT_S,
        headers={"User-Agent": f"tutorial_kit/{__version__} (course data registry; python-requests)"},
    )
    for url in entry.urls:
        tmp = _new_temp(target)
        try:
            try:
                downloader(url, str(tmp), None)
            except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next URL
                attempts.append((url, _describe(exc)))
                continue
            problem = _problem(tmp, entry, pinned)
            if problem is not None:
                attempts.append((url, f"downloaded file is wrong ({problem}); deleted"))
                continue
            digest = pinned or f"sha256:{file_hash(tmp)}"
            _install(tmp, target, entry, digest)
            return digest
        finally:
            tmp.unlink(missing_ok=True)
    return None


def _copy(source: Path, target: Path, entry: Entry, digest: str) -> None:
    tmp = _new_temp(target)
    try:
        shutil.copyfile(source, tmp)
        problem = _problem(tmp, entry, digest)
        if problem is not None:
            raise DataUnavailableError(
                f"Copying {source} to {target} gave a wrong file ({problem}); is the disk full or failing?",
                name=entry.name,
                summary=f"copy is wrong ({problem})",
            )
        _install(tmp, target, entry, digest)
    finally:
        tmp.unlink(missing_ok=True)


def _want_progress(progress: bool | None, entry: Entry) -> bool:
    if progress is None:  # automatic: a bar for large or unknown sizes only
        return entry.size is None or entry.size >= 50 * 2**20
    return bool(progress)


def _obtain(
    entry: Entry,
    root: Path,
    *,
    role: str,
    sources: list[tuple[str, Path]],
    mirror: Path | None,
    in_place: bool,
    allow_unverified: bool,
    progress: bool | None,
) -> _Copy:
    attempts: list[tuple[str, str]] = []
    target = root / entry.name
    good = _check_local(entry, target, role=role, allow_unverified=allow_unverified, attempts=attempts)
    if good:
        return _Copy(target, "cached", *good)
    for source_role, source_root in sources:
        source = source_root / entry.name
        good = _check_local(entry, source, role=source_role, allow_unverified=allow_unverified, attempts=attempts)
        if good:
            if in_place:
                return _Copy(source, source_role, *good)
            _copy(source, target, entry, good[0])
            return _Copy(target, "copied", *good)
    if mirror is None:
        attempts.append(("mirror", "none (TUTORIAL_KIT_MIRROR is not set)"))
    pinned = entry.known_hash or _read_sidecar(target)
    if pinned is None and not allow_unverified:
        raise _refuse_unverified(entry, attempts)
    if _offline():
        attempts += [(url, "not tried: network switched off (TUTORIAL_KIT_OFFLINE=1)") for url in entry.urls]
        raise DataUnavailableError(
            f"{entry.name} is not available offline ({entry.description}).\n"
            "Network access is switched off (TUTORIAL_KIT_OFFLINE=1) and no local copy was found:\n"
            f"{_attempt_lines(attempts)}\n{_by_hand(entry, root, mirror)}",
            name=entry.name,
            attempts=attempts,
            summary="offline (TUTORIAL_KIT_OFFLINE=1) and not in the cache or mirror",
        )
    digest = _download(entry, target, pinned=pinned, progress=_want_progress(progress, entry), attempts=attempts)
    if digest is None:
        reasons = "; ".join(reason for place, reason in attempts if place in entry.urls)
        raise DataUnavailableError(
            f"Could not download {entry.name} ({entry.description}).\nTried:\n{_attempt_lines(attempts)}\n"
            f"{_by_hand(entry, root, mirror)}",
            name=entry.name,
            attempts=attempts,
            summary=f"all {len(entry.urls)} URL(s) failed: {reasons}",
        )
    if pinned is None:
        _warn_unverified(entry, target, _split(digest)[1], recorded=True)
    return _Copy(target, "downloaded", digest, entry.known_hash is not None)


def fetch(name: str, *, allow_unverified: bool = False, progress: bool | None = None) -> Path:
    """Local path of a verified copy of a course file: from the cache, the mirror or the network.

    Taught in ``00_setup_check``; every loader of :mod:`tutorial_kit.data` calls it.
    See the module docstring for the order of places and the policies.

    Args:
        name: a key of :data:`REGISTRY`, e.g. ``'kang2018_scgen_valid.h5ad'``.
        allow_unverified: accept a file that has no published hash (its sha256 is printed
            and recorded beside it; later loads check it).
        progress: show a download progress bar; ``None`` shows one for files over 50 MiB
            or of unknown size.

    Returns:
        The path of the file: in the cache, or in the mirror (read-only; do not modify it).

    Raises:
        ValueError: unknown name (the message lists close matches).
        DataUnavailableError: no verified copy could be obtained; the message lists every
            place and URL tried with the reason, and where to put the file by hand.

    Example:
        >>> import tutorial_kit as tk
        >>> path = tk.data.fetch("scmageck_barcode_rec.txt")  # doctest: +SKIP
        >>> fetch("kang2018_scgen_vaild.h5ad")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: Unknown data file 'kang2018_scgen_vaild.h5ad'. Did you mean: 'kang2018_scgen_valid.h5ad'...
    """
    entry = lookup(name)
    if entry.local is not None:
        return _check_registered_local(entry)
    cache = cache_dir()
    mirror = mirror_dir()
    found = _obtain(
        entry,
        cache,
        role="cache",
        sources=[("mirror", mirror)] if mirror is not None and not _same_folder(mirror, cache) else [],
        mirror=mirror,
        in_place=True,
        allow_unverified=allow_unverified,
        progress=progress,
    )
    return found.path


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:  # pragma: no cover - unresolvable paths are simply different
        return False


def fill_cache(
    names_or_tier: str | Iterable[str] = "ci",
    *,
    dest: str | os.PathLike | None = None,
    progress: bool = True,
    allow_unverified: bool = False,
) -> "pd.DataFrame":
    """Fetch every file of a tier (or the given names) into the cache, or build a mirror folder.

    Taught in ``00_setup_check``: run it once at home (or the instructor runs it with
    ``dest=`` to prepare a USB stick) and the workshop needs no network.

    Without ``dest`` the files go into the cache (mirror files are copied, so the stick can
    be removed afterwards). With ``dest`` the files go into that folder in the mirror layout,
    taken from the cache, then the mirror, then the network; each is written to a temporary
    file, verified and moved into place with ``os.replace``. Unverified files get their
    ``.sha256`` sidecar there too.

    A failure does not stop the others: the report's ``status`` says ``'failed: <reason>'``
    and one :class:`UserWarning` at the end names every failed file.

    Args:
        names_or_tier: ``'ci'``, ``'workshop'``, one registry name or a list of names.
        dest: build a mirror folder here instead of filling the cache.
        progress: progress bars (over files, and per download for large files).
        allow_unverified: accept files that have no published hash (see :func:`fetch`).

    Returns:
        One row per file: ``name``, ``tier``, ``bytes``, ``status`` (``'cached'``: already
        there and verified; ``'copied'``; ``'downloaded'``; ``'failed: <reason>'``),
        ``verified`` (``True``: matches the registry hash; ``False``: trust on first use or
        failed), ``hash`` and ``path``.

    Example:
        >>> import tutorial_kit as tk
        >>> report = tk.data.fill_cache("ci")  # doctest: +SKIP
        >>> report["status"].value_counts()  # doctest: +SKIP
    """
    import pandas as pd
    from tqdm import tqdm

    entries = _select(names_or_tier)
    cache = cache_dir()
    mirror = mirror_dir()
    if dest is None:
        root, role = cache, "cache"
        sources = [("mirror", mirror)] if mirror is not None else []
    else:
        root, role = Path(dest).expanduser(), "destination"
        root.mkdir(parents=True, exist_ok=True)
        sources = [("cache", cache)] + ([("mirror", mirror)] if mirror is not None else [])
    sources = [(r, p) for r, p in sources if not _same_folder(p, root)]
    rows, failed = [], []
    bar = tqdm(entries, desc="tutorial_kit data", unit="file", disable=not progress)
    for entry in bar:
        bar.set_postfix_str(entry.name, refresh=False)
        row = {"name": entry.name, "tier": entry.tier, "bytes": entry.size}
        try:
            if entry.local is not None:
                got = _registered_copy(entry, root if dest is not None else None)
            else:
                got = _obtain(
                    entry,
                    root,
                    role=role,
                    sources=sources,
                    mirror=mirror,
                    in_place=False,
                    allow_unverified=allow_unverified,
                    progress=None if progress else False,
                )
        except (DataUnavailableError, OSError) as exc:
            reason = exc.summary if isinstance(exc, DataUnavailableError) else f"{type(exc).__name__}: {exc}"
            row.update(status=f"failed: {reason}", verified=False, hash=None, path=None)
            failed.append(f"{entry.name} ({reason})")
        else:
            row.update(
                bytes=got.path.stat().st_size, status=got.how, verified=got.verified, hash=got.hash, path=str(got.path)
            )
        rows.append(row)
    bar.close()
    report = pd.DataFrame(rows, columns=["name", "tier", "bytes", "status", "verified", "hash", "path"])
    report["bytes"] = report["bytes"].astype("Int64")
    if failed:
        warnings.warn(
            f"fill_cache: {len(failed)} of {len(entries)} files failed: " + "; ".join(failed)
            + ". Call fetch(name) for the full message (URLs tried, where to put the file by hand).",
            UserWarning,
            stacklevel=2,
        )
    return report


def status(tier: str | None = None) -> "pd.DataFrame":
    """Which course files are in the cache and in the mirror (no hashing, no network).

    Taught in ``00_setup_check``.

    Args:
        tier: ``'ci'`` or ``'workshop'``; ``None`` lists both.

    Returns:
        One row per file: ``name``, ``tier``, ``bytes`` (registry size), ``hash_known``,
        ``in_cache``, ``in_mirror``.

    Example:
        >>> table = status(tier="ci")
        >>> len(table), list(table.columns)
        (17, ['name', 'tier', 'bytes', 'hash_known', 'in_cache', 'in_mirror'])
    """
    import pandas as pd

    if tier is not None and tier not in TIERS:
        raise ValueError(f"Unknown tier {tier!r}; use one of {TIERS} or None.")
    cache = cache_dir()
    mirror = mirror_dir()
    rows = [
        {
            "name": e.name,
            "tier": e.tier,
            "bytes": e.size,
            "hash_known": e.known_hash is not None,
            "in_cache": (cache / e.name).is_file(),
            "in_mirror": mirror is not None and (mirror / e.name).is_file(),
        }
        for e in (*REGISTRY.values(), *_user_entries().values())
        if tier is None or e.tier == tier
    ]
    for row, e in zip(rows, [e for e in (*REGISTRY.values(), *_user_entries().values()) if tier is None or e.tier == tier]):
        if e.local is not None:  # a registered local file is "in the cache" when it exists
            row["in_cache"] = Path(e.local).is_file()
    table = pd.DataFrame(rows, columns=["name", "tier", "bytes", "hash_known", "in_cache", "in_mirror"])
    table["bytes"] = table["bytes"].astype("Int64")
    return table

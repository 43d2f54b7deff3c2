"""Course data: a registry of files with hashes, and one loader per source.

Taught in ``00_setup_check``.
Files are looked up in the cache, then in a mirror folder, then on the network
(see :mod:`tutorial_kit.data.registry`); loaders return AnnData in the course schema
(see :mod:`tutorial_kit.data.schema`): :mod:`~tutorial_kit.data.loaders` for the small real files
of the CI tier, :mod:`~tutorial_kit.data.workshop` for the full public datasets, and
:mod:`~tutorial_kit.data.sessions` for what notebooks call (``tk.data.kang_scgen()``,
``tk.data.norman()``, ...), which picks one or the other by tier.
"""

from tutorial_kit.data.loaders import (
    load_datlinger2021,
    load_kang_muscat,
    load_kang_scgen_valid,
    load_norman_gi,
    load_papalexi2021,
    load_parse_guides,
    load_perturbench_devel,
    load_scmageck_guides,
)
from tutorial_kit.data.registry import (
    REGISTRY,
    DataUnavailableError,
    Entry,
    cache_dir,
    fetch,
    fill_cache,
    file_hash,
    mirror_dir,
    register,
    register_file,
    registered,
    resolve,
    status,
    unregister,
)
from tutorial_kit.data.sessions import (
    SCIPLEX_COMPOUNDS,
    datlinger,
    kang,
    kang_scgen,
    norman,
    papalexi,
    sciplex,
    select_genes,
)
from tutorial_kit.data.workshop import SCPERTURB, load_kang2018, load_scgen_pbmc, load_scperturb
from tutorial_kit.data.schema import (
    CONTROL,
    REQUIRED_OBS,
    check_schema,
    log1p_cp10k,
    normalize_perturbation,
    normalize_perturbations,
    perturbation_parts,
)

__all__ = [
    "CONTROL",
    "SCPERTURB",
    "kang",
    "kang_scgen",
    "load_kang2018",
    "load_scgen_pbmc",
    "load_scperturb",
    "norman",
    "papalexi",
    "datlinger",
    "sciplex",
    "SCIPLEX_COMPOUNDS",
    "select_genes",
    "REGISTRY",
    "REQUIRED_OBS",
    "DataUnavailableError",
    "Entry",
    "cache_dir",
    "check_schema",
    "fetch",
    "file_hash",
    "fill_cache",
    "load_datlinger2021",
    "log1p_cp10k",
    "load_kang_muscat",
    "load_kang_scgen_valid",
    "load_norman_gi",
    "load_papalexi2021",
    "load_parse_guides",
    "load_perturbench_devel",
    "load_scmageck_guides",
    "mirror_dir",
    "normalize_perturbation",
    "normalize_perturbations",
    "perturbation_parts",
    "register",
    "register_file",
    "registered",
    "resolve",
    "status",
    "unregister",
]

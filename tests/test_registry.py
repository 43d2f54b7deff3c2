"""The data registry against a real HTTP server on 127.0.0.1, a temporary mirror and the real CI mirror."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tutorial_kit.data import workshop as tk_workshop

from tutorial_kit.data import registry
from tutorial_kit.data.__main__ import main
from tutorial_kit.data.registry import (
    REGISTRY,
    CorruptFileWarning,
    DataUnavailableError,
    Entry,
    UnverifiedDataWarning,
    fetch,
    file_hash,
    fill_cache,
    status,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

PAYLOAD = b"cell,perturbation\n" + b"AAAC-1,control\n" * 4000  # 60 kB: several 1 MiB-chunk-free reads
OTHER = bytes(reversed(PAYLOAD))  # same size, other content (hash mismatch)
SHORT = b"not the file"  # other size (size mismatch)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1 that counts requests
# --------------------------------------------------------------------------------------


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                owner.requests.append(self.path)
                path = self.path.lstrip("/").split("?")[0]
                if path.startswith("drop/"):  # announce the whole file, send half, hang up
                    body = owner.files[path[len("drop/") :]]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if path.startswith("trunc/"):  # half the file, no Content-Length: only the hash can tell
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(owner.files[path[len("trunc/") :]][: len(PAYLOAD) // 2])
                    self.close_connection = True
                    return
                if path.startswith("slow/"):
                    time.sleep(1.0)
                    path = path[len("slow/") :]
                if path not in owner.files:
                    self.send_error(404, "Not Found")
                    return
                body = owner.files[path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = FileServer()
    srv.files["good.csv"] = PAYLOAD
    srv.files["other.csv"] = OTHER
    srv.files["short.csv"] = SHORT
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own cache, no mirror, network allowed, and a fresh hash memory."""
    monkeypatch.setenv("TUTORIAL_KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TUTORIAL_KIT_MIRROR", raising=False)
    monkeypatch.delenv("TUTORIAL_KIT_OFFLINE", raising=False)
    monkeypatch.setattr(registry, "_HASH_CACHE", {})
    return tmp_path


def register(monkeypatch, name="test/tiny.csv", urls=(), *, data=PAYLOAD, known=True, size=True, tier="ci"):
    entry = Entry(
        name=name,
        urls=tuple(urls) or ("http://127.0.0.1:1/unused",),
        known_hash=f"sha256:{sha256(data)}" if known else None,
        size=len(data) if size else None,
        tier=tier,
        description="a test file",
        source="tests",
        hash_source="tests",
    )
    monkeypatch.setitem(REGISTRY, name, entry)
    return entry


def leftovers(folder: Path) -> list[Path]:
    """Temporary download files left anywhere below ``folder``."""
    return [p for p in folder.rglob("*") if p.name.endswith(".part")] if folder.exists() else []


def cache() -> Path:
    return registry.cache_dir()


# --------------------------------------------------------------------------------------
# The table itself
# --------------------------------------------------------------------------------------


def require_shared() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"The CI data mirror is missing: expected {SHARED_DATA} (../shared/data beside the clone).")
    return SHARED_DATA


CI_NAMES = sorted(name for name, entry in REGISTRY.items() if entry.tier == "ci")


def mirror_files(folder: Path) -> set[str]:
    """The data files of a mirror folder, as registry names (relative paths).

    The mirror's own notes (``*.md`` at its top level) are not data; a README inside a data
    folder is (it is a file of the upstream repository, e.g. ``parse_sceptre_example/README.md``).
    """
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")
            if p.is_file() and not (p.parent == folder and p.suffix == ".md")}


def test_the_ci_entries_are_exactly_the_files_of_the_mirror():
    assert len(CI_NAMES) == 17
    mirror = mirror_files(require_shared())
    assert set(CI_NAMES) == mirror, (f"registered but not in the mirror: {sorted(set(CI_NAMES) - mirror)}; "
                                     f"in the mirror but not registered: {sorted(mirror - set(CI_NAMES))}")


def test_every_ci_url_is_the_raw_file_at_the_pinned_commit_of_its_source():
    for name, entry in REGISTRY.items():
        if entry.tier != "ci":
            continue
        source = re.fullmatch(r"(?P<repo>[\w.-]+/[\w.-]+)@(?P<commit>[0-9a-f]{40}):(?P<path>\S+)", entry.source)
        assert source, f"{name}: source {entry.source!r} is not <owner>/<repo>@<40-hex commit>:<path>"
        assert entry.urls == (f"https://raw.githubusercontent.com/{source['repo']}/{source['commit']}/{source['path']}",), name
        assert entry.known_hash.startswith("sha256:") and len(entry.known_hash) == len("sha256:") + 64, name
        assert entry.size and entry.size > 0, name
        assert "pinned commit" in entry.hash_source and "tests/test_registry.py" in entry.hash_source, name


def test_every_ci_entry_verifies_against_the_real_mirror(monkeypatch, capsys):
    shared = require_shared()
    monkeypatch.setenv("TUTORIAL_KIT_MIRROR", str(shared))
    monkeypatch.setenv("TUTORIAL_KIT_OFFLINE", "1")
    timings = {}
    for name, entry in REGISTRY.items():
        if entry.tier != "ci":
            continue
        start = time.perf_counter()
        path = fetch(name)
        timings[name] = time.perf_counter() - start
        assert path == shared / name  # used in place, not copied
        assert path.stat().st_size == entry.size
        assert f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}" == entry.known_hash
    assert sorted(timings) == CI_NAMES
    assert not cache().exists()  # nothing was written
    with capsys.disabled():
        print(f"\n[registry] fetch+verify of the {len(timings)} CI files from the mirror: "
              f"{sum(timings.values()) * 1000:.0f} ms")


def test_workshop_entries_as_published():
    kang = REGISTRY["kang_2018.h5ad"]
    assert kang.tier == "workshop"
    assert kang.urls == (
        "https://exampledata.scverse.org/pertpy/kang_2018.h5ad",
        "https://scverse-exampledata.s3.eu-west-1.amazonaws.com/pertpy/kang_2018.h5ad",
        "https://api.figshare.com/v2/file/download/34464122",
    )
    assert kang.known_hash == "sha256:e6a5adac64dcdeb36eaba27db49b63e0c64bb0ed4a64c6705971506b41c39830"
    assert "not verified" in kang.hash_source.lower()
    assert REGISTRY["NormanWeissman2019_filtered.h5ad"].known_hash == "md5:c870e6967d91c017d9da827bab183cd6"
    assert REGISTRY["PapalexiSatija2021_eccite_RNA.h5ad"].known_hash == "md5:d9e8bfe20b0e7b0919be042e8fcf6d03"
    assert REGISTRY["SrivatsanTrapnell2020_sciplex3.h5ad"].known_hash == "md5:c9e70629505d98c7ca1a837f62b14e89"
    for name in tk_workshop.SCPERTURB.values():  # every scPerturb loader has its file, from the v1.4 record
        entry = REGISTRY[name["file"]]
        assert entry.urls[0] == f"https://zenodo.org/records/13350497/files/{name['file']}?download=1"
        assert (entry.known_hash is None) == (entry.hash_source.startswith("none published"))
        assert entry.known_hash is None or "not verified" in entry.hash_source.lower()
    assert REGISTRY["gears_norman.zip"].urls == ("https://dataverse.harvard.edu/api/access/datafile/6154020",)
    for name in ("scgen_train_pbmc.h5ad", "scgen_valid_pbmc.h5ad", "gears_norman.zip", "norman_2019_adata.h5ad",
                 "ReplogleWeissman2022_K562_essential.h5ad", "DixitRegev2016_K562_TFs_7_days.h5ad"):
        assert REGISTRY[name].known_hash is None and REGISTRY[name].tier == "workshop"
    for entry in REGISTRY.values():
        assert entry.description and entry.source and entry.hash_source, entry.name
        assert all(u.startswith("https://") for u in entry.urls), entry.name


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tier": "gpu"}, "tier must be one of"),
        ({"urls": ()}, "at least one URL"),
        ({"name": "/abs/file"}, "relative path"),
        ({"name": "a/../b"}, "relative path"),
        ({"known_hash": "sha256:abc"}, "known_hash must look like"),
        ({"known_hash": "crc:00"}, "known_hash must look like"),
        ({"size": -1}, "size must be"),
    ],
)
def test_entry_validation(changes, message):
    fields = dict(name="x.csv", urls=["https://e.org/x"], known_hash=None, size=None, tier="ci")
    with pytest.raises(ValueError, match=message):
        Entry(**{**fields, **changes})
    assert Entry(**fields).urls == ("https://e.org/x",)  # lists become tuples


def test_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"Did you mean: 'kang2018_scgen_valid.h5ad'") as info:
        fetch("kang2018_scgen_vaild.h5ad")
    assert "python -m tutorial_kit.data status" in str(info.value)
    with pytest.raises(ValueError, match="kang_2018.h5ad"):  # substring matches too
        fetch("kang")
    with pytest.raises(ValueError, match=r"Unknown data file 'zzz'\. List all"):
        fetch("zzz")


# --------------------------------------------------------------------------------------
# Places
# --------------------------------------------------------------------------------------


def test_cache_dir_env_platformdirs_and_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("TUTORIAL_KIT_CACHE", "~/somewhere")
    assert registry.cache_dir() == Path.home() / "somewhere"
    monkeypatch.delenv("TUTORIAL_KIT_CACHE")
    import platformdirs

    assert registry.cache_dir() == Path(platformdirs.user_cache_dir()) / "tutorial_kit"
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # import fails
    assert registry.cache_dir() == Path.home() / ".cache" / "tutorial_kit"


def test_mirror_dir_missing_folder_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TUTORIAL_KIT_MIRROR", str(tmp_path / "no-such-stick"))
    with pytest.raises(FileNotFoundError, match="MIRROR is set to .*no-such-stick.*not an existing folder"):
        registry.mirror_dir()
    monkeypatch.setenv("TUTORIAL_KIT_MIRROR", str(tmp_path))
    assert registry.mirror_dir() == tmp_path


def test_offline_variable_is_checked(monkeypatch):
    for value, expected in [("1", True), ("yes", True), ("0", False), ("", False)]:
        monkeypatch.setenv("TUTORIAL_KIT_OFFLINE", value)
        assert registry._offline() is expected
    monkeypatch.setenv("TUTORIAL_KIT_OFFLINE", "maybe")
    with pytest.raises(ValueError, match="TUTORIAL_KIT_OFFLINE must be 1 or 0"):
        registry._offline()


def test_file_hash_is_remembered_per_path_size_and_mtime(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(PAYLOAD)
    calls = []
    real_new = hashlib.new
    monkeypatch.setattr(registry.hashlib, "new", lambda alg: calls.append(alg) or real_new(alg))
    assert file_hash(path) == sha256(PAYLOAD)
    assert file_hash(path) == sha256(PAYLOAD)
    assert calls == ["sha256"]  # the second call did not read the file
    assert file_hash(path, "md5") == hashlib.md5(PAYLOAD).hexdigest()
    path.write_bytes(SHORT)  # a changed file is hashed again
    assert file_hash(path) == sha256(SHORT)
    assert calls == ["sha256", "md5", "sha256"]


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------


def test_download_is_verified_cached_and_then_served_from_cache(server, monkeypatch):
    register(monkeypatch, urls=[server.url("good.csv")])
    path = fetch("test/tiny.csv", progress=True)
    assert path == cache() / "test" / "tiny.csv"
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/good.csv"]
    assert fetch("test/tiny.csv") == path
    assert server.requests == ["/good.csv"]  # second call: no request
    assert leftovers(cache()) == []


def test_wrong_hash_uses_next_url_and_leaves_nothing_behind(server, monkeypatch):
    register(monkeypatch, urls=[server.url("other.csv"), server.url("good.csv")])
    path = fetch("test/tiny.csv")
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/other.csv", "/good.csv"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.csv"]


def test_wrong_hash_and_wrong_size_everywhere_is_an_error_without_a_file(server, monkeypatch):
    register(monkeypatch, urls=[server.url("other.csv"), server.url("short.csv")])
    with pytest.raises(DataUnavailableError) as info:
        fetch("test/tiny.csv")
    message = str(info.value)
    wrong = f"sha256 {sha256(OTHER)}, expected {sha256(PAYLOAD)}"
    assert f"{server.url('other.csv')}: downloaded file is wrong ({wrong})" in message
    assert f"{server.url('short.csv')}: downloaded file is wrong (size 12 bytes, expected {len(PAYLOAD):,})" in message
    assert not (cache() / "test" / "tiny.csv").exists()
    assert leftovers(cache()) == []
    assert info.value.name == "test/tiny.csv"
    assert [place for place, _ in info.value.attempts][-2:] == [server.url("other.csv"), server.url("short.csv")]
    assert info.value.summary.startswith("all 2 URL(s) failed")


def test_404_falls_back_then_names_every_url_and_where_to_put_the_file(server, monkeypatch):
    register(monkeypatch, urls=[server.url("missing.csv"), server.url("good.csv")])
    assert fetch("test/tiny.csv").read_bytes() == PAYLOAD
    assert server.requests == ["/missing.csv", "/good.csv"]

    register(monkeypatch, name="test/gone.csv", urls=[server.url("gone1.csv"), server.url("gone2.csv")])
    with pytest.raises(DataUnavailableError) as info:
        fetch("test/gone.csv")
    message = str(info.value)
    assert message.startswith("Could not download test/gone.csv")
    assert f"{server.url('gone1.csv')}: HTTP 404 Not Found" in message
    assert f"{server.url('gone2.csv')}: HTTP 404 Not Found" in message
    assert f"cache {cache() / 'test' / 'gone.csv'}: not there" in message
    assert f"save it as\n    {cache() / 'test' / 'gone.csv'}" in message
    assert "export TUTORIAL_KIT_MIRROR=<folder>" in message
    assert f"It must match: sha256:{sha256(PAYLOAD)}, {len(PAYLOAD):,} bytes." in message
    assert not (cache() / "test" / "gone.csv").exists()


def test_connection_dropped_mid_file_is_detected(server, monkeypatch):
    register(monkeypatch, urls=[server.url("drop/good.csv"), server.url("good.csv")])
    assert fetch("test/tiny.csv").read_bytes() == PAYLOAD
    assert server.requests == ["/drop/good.csv", "/good.csv"]

    register(monkeypatch, name="test/drop.csv", urls=[server.url("drop/good.csv"), server.url("trunc/good.csv")],
             size=False)
    with pytest.raises(DataUnavailableError) as info:
        fetch("test/drop.csv")
    (_, dropped), (_, truncated) = info.value.attempts[-2:]
    assert dropped.startswith("the connection dropped during the download (") and "IncompleteRead" in dropped
    # Without Content-Length or a registry size, the hash still catches the short file.
    assert truncated.startswith(f"downloaded file is wrong (sha256 {sha256(PAYLOAD[: len(PAYLOAD) // 2])}")
    assert not (cache() / "test" / "drop.csv").exists()
    assert leftovers(cache()) == []


def test_unreachable_host_timeout_and_other_errors_are_reported(server, monkeypatch):
    register(monkeypatch, urls=["http://127.0.0.1:1/nothing-listens-here"])
    with pytest.raises(DataUnavailableError, match=r"127\.0\.0\.1:1/nothing-listens-here: could not connect"):
        fetch("test/tiny.csv")

    monkeypatch.setattr(registry, "TIMEOUT_S", (2, 0.2))
    register(monkeypatch, urls=[server.url("slow/good.csv")])
    with pytest.raises(DataUnavailableError, match=r"slow/good.csv: timed out \(.*Read timed out"):
        fetch("test/tiny.csv")

    import pooch

    def broken(self, url, output_file, pooch_obj):
        Path(output_file).write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", broken)
    register(monkeypatch, urls=[server.url("good.csv")])
    with pytest.raises(DataUnavailableError, match="good.csv: OSError: No space left on device"):
        fetch("test/tiny.csv")
    assert leftovers(cache()) == [] and not (cache() / "test" / "tiny.csv").exists()


def test_offline_error_lists_urls_and_where_to_put_the_file(server, monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_OFFLINE", "1")
    register(monkeypatch, urls=[server.url("good.csv"), server.url("also.csv")])
    with pytest.raises(DataUnavailableError) as info:
        fetch("test/tiny.csv")
    message = str(info.value)
    assert "TUTORIAL_KIT_OFFLINE=1" in message
    assert f"{server.url('good.csv')}: not tried" in message and f"{server.url('also.csv')}: not tried" in message
    assert "mirror: none (TUTORIAL_KIT_MIRROR is not set)" in message
    assert str(cache() / "test" / "tiny.csv") in message
    assert server.requests == []


def test_corrupt_or_partial_cached_file_is_replaced(server, monkeypatch):
    entry = register(monkeypatch, urls=[server.url("good.csv")])
    target = cache() / entry.name
    target.parent.mkdir(parents=True)
    target.write_bytes(OTHER)  # same size, wrong bytes
    with pytest.warns(CorruptFileWarning, match=r"cache copy of test/tiny.csv .* corrupt .*sha256"):
        assert fetch(entry.name).read_bytes() == PAYLOAD
    target.write_bytes(PAYLOAD[:100])  # a partial file
    with pytest.warns(CorruptFileWarning, match="size 100 bytes"):
        assert fetch(entry.name).read_bytes() == PAYLOAD
    assert server.requests == ["/good.csv", "/good.csv"]


# --------------------------------------------------------------------------------------
# Mirror
# --------------------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    folder = tmp_path / "usb"
    (folder / "test").mkdir(parents=True)
    monkeypatch.setenv("TUTORIAL_KIT_MIRROR", str(folder))
    return folder


def test_mirror_hit_uses_no_network(server, mirror, monkeypatch):
    register(monkeypatch, urls=[server.url("good.csv")])
    (mirror / "test" / "tiny.csv").write_bytes(PAYLOAD)
    path = fetch("test/tiny.csv")
    assert path == mirror / "test" / "tiny.csv"
    assert server.requests == []
    assert not (cache() / "test" / "tiny.csv").exists()


def test_mirror_with_wrong_hash_is_an_error_not_a_silent_download(server, mirror, monkeypatch):
    register(monkeypatch, urls=[server.url("good.csv")])
    bad = mirror / "test" / "tiny.csv"
    bad.write_bytes(OTHER)
    with pytest.raises(DataUnavailableError) as info:
        fetch("test/tiny.csv")
    message = str(info.value)
    wrong = f"sha256 {sha256(OTHER)}, expected {sha256(PAYLOAD)}"
    assert f"The mirror copy of test/tiny.csv is wrong: {bad} has {wrong}" in message
    assert "Re-copy it" in message and f"--dest {mirror}" in message
    assert server.requests == []
    assert bad.read_bytes() == OTHER  # the mirror is never written


# --------------------------------------------------------------------------------------
# Files without a published hash (trust on first use)
# --------------------------------------------------------------------------------------


def test_unverified_is_refused_then_allowed_with_a_sidecar(server, monkeypatch):
    register(monkeypatch, urls=[server.url("good.csv")], known=False, size=False, tier="workshop")
    with pytest.raises(DataUnavailableError, match="has no published hash") as info:
        fetch("test/tiny.csv")
    assert "allow_unverified=True" in str(info.value) and "--allow-unverified" in str(info.value)
    assert server.requests == []

    with pytest.warns(UnverifiedDataWarning, match=f"UNVERIFIED.*sha256 is {sha256(PAYLOAD)}"):
        path = fetch("test/tiny.csv", allow_unverified=True)
    assert path.read_bytes() == PAYLOAD
    sidecar = path.with_name("tiny.csv.sha256")
    assert sidecar.read_text() == f"{sha256(PAYLOAD)}  tiny.csv\n"  # `sha256sum -c` format

    # Later loads check the sidecar, with no flag and no request.
    assert fetch("test/tiny.csv") == path
    assert server.requests == ["/good.csv"]

    # Corruption is detected; the re-download must match the recorded hash.
    path.write_bytes(OTHER)
    with pytest.warns(CorruptFileWarning):
        assert fetch("test/tiny.csv").read_bytes() == PAYLOAD
    server.files["good.csv"] = SHORT  # upstream changed
    path.write_bytes(OTHER)
    with pytest.warns(CorruptFileWarning), pytest.raises(DataUnavailableError, match="downloaded file is wrong"):
        fetch("test/tiny.csv")


def test_unverified_local_copies(mirror, monkeypatch):
    register(monkeypatch, known=False, size=False, tier="workshop")
    in_mirror = mirror / "test" / "tiny.csv"
    in_mirror.write_bytes(PAYLOAD)
    with pytest.raises(DataUnavailableError, match=f"The copy at {in_mirror} cannot be checked"):
        fetch("test/tiny.csv")
    with pytest.warns(UnverifiedDataWarning, match="mirror is read-only, so it is not recorded"):
        assert fetch("test/tiny.csv", allow_unverified=True) == in_mirror
    assert not in_mirror.with_name("tiny.csv.sha256").exists()

    # A sidecar that is not a sha256 line is ignored.
    in_mirror.with_name("tiny.csv.sha256").write_text("garbage\n")
    with pytest.raises(DataUnavailableError, match="cannot be checked"):
        fetch("test/tiny.csv")

    # A mirror built with a sidecar is trusted without the flag.
    in_mirror.with_name("tiny.csv.sha256").write_text(f"{sha256(PAYLOAD)}  tiny.csv\n")
    assert fetch("test/tiny.csv") == in_mirror

    # A file put into the cache by hand is recorded on first use.
    by_hand = cache() / "test" / "tiny.csv"
    by_hand.parent.mkdir(parents=True)
    by_hand.write_bytes(PAYLOAD)
    with pytest.warns(UnverifiedDataWarning, match="recorded in"):
        assert fetch("test/tiny.csv", allow_unverified=True) == by_hand
    assert by_hand.with_name("tiny.csv.sha256").is_file()


# --------------------------------------------------------------------------------------
# fill_cache, status
# --------------------------------------------------------------------------------------


def test_fill_cache_copies_downloads_reports_failures_and_warns(server, mirror, monkeypatch):
    register(monkeypatch, name="test/from_mirror.csv", urls=[server.url("good.csv")])
    register(monkeypatch, name="test/from_net.csv", urls=[server.url("good.csv")])
    register(monkeypatch, name="test/broken.csv", urls=[server.url("missing.csv")])
    (mirror / "test" / "from_mirror.csv").write_bytes(PAYLOAD)
    names = ["test/from_mirror.csv", "test/from_net.csv", "test/broken.csv", "test/from_net.csv"]
    with pytest.warns(UserWarning, match=r"1 of 3 files failed: test/broken.csv \(all 1 URL\(s\) failed: HTTP 404"):
        report = fill_cache(names, progress=False)
    assert list(report.columns) == ["name", "tier", "bytes", "status", "verified", "hash", "path"]
    assert list(report["status"]) == ["copied", "downloaded", "failed: all 1 URL(s) failed: HTTP 404 Not Found"]
    assert list(report["verified"]) == [True, True, False]
    assert report["bytes"].tolist()[:2] == [len(PAYLOAD)] * 2
    assert (cache() / "test" / "from_mirror.csv").read_bytes() == PAYLOAD
    assert server.requests == ["/good.csv", "/missing.csv"]

    del server.files["good.csv"]  # a second run needs nothing from the network
    with pytest.warns(UserWarning, match="1 of 3 files failed"):
        again = fill_cache(names, progress=False)
    assert list(again["status"])[:2] == ["cached", "cached"]
    assert server.requests == ["/good.csv", "/missing.csv", "/missing.csv"]


def test_fill_cache_builds_a_mirror_from_the_real_ci_files(tmp_path, monkeypatch):
    shared = require_shared()
    monkeypatch.setenv("TUTORIAL_KIT_MIRROR", str(shared))
    monkeypatch.setenv("TUTORIAL_KIT_OFFLINE", "1")
    stick = tmp_path / "stick"
    report = fill_cache("ci", dest=stick, progress=True)
    assert len(report) == len(CI_NAMES)
    assert set(report["status"]) == {"copied"} and report["verified"].all()
    for name, entry in REGISTRY.items():
        if entry.tier == "ci":
            assert (stick / name).read_bytes() == (shared / name).read_bytes()
    assert leftovers(stick) == []
    # The new folder works as a mirror, and a second fill finds everything there.
    monkeypatch.setenv("TUTORIAL_KIT_MIRROR", str(stick))
    assert fetch("perturbench_devel.h5ad") == stick / "perturbench_devel.h5ad"
    assert set(fill_cache("ci", dest=stick, progress=False)["status"]) == {"cached"}


def test_fill_cache_dest_sources_unverified_and_errors(server, mirror, tmp_path, monkeypatch):
    register(monkeypatch, name="test/cached.csv")
    register(monkeypatch, name="test/tofu.csv", urls=[server.url("good.csv")], known=False, size=False)
    in_cache = cache() / "test" / "cached.csv"
    in_cache.parent.mkdir(parents=True)
    in_cache.write_bytes(PAYLOAD)
    dest = tmp_path / "new-mirror"
    with pytest.warns(UnverifiedDataWarning):
        report = fill_cache(["test/cached.csv", "test/tofu.csv"], dest=dest, progress=False, allow_unverified=True)
    assert list(report["status"]) == ["copied", "downloaded"]
    assert list(report["verified"]) == [True, False]
    assert report["hash"][1] == f"sha256:{sha256(PAYLOAD)}"
    assert (dest / "test" / "tofu.csv.sha256").read_text().startswith(sha256(PAYLOAD))

    # A copy that comes out wrong, and a disk error, are failures of that file only.
    real_copyfile = registry.shutil.copyfile
    monkeypatch.setattr(registry.shutil, "copyfile", lambda s, d: Path(d).write_bytes(SHORT))
    (dest / "test" / "cached.csv").unlink()
    with pytest.warns(UserWarning, match="copy is wrong"):
        report = fill_cache(["test/cached.csv"], dest=dest, progress=False)
    assert report["status"][0].startswith("failed: copy is wrong (size 12 bytes")
    monkeypatch.setattr(registry.shutil, "copyfile", real_copyfile)

    def no_space(target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(registry, "_new_temp", no_space)
    with pytest.warns(UserWarning, match="PermissionError"):
        report = fill_cache(["test/cached.csv"], dest=dest, progress=False)
    assert report["status"][0].startswith("failed: PermissionError")
    assert not (dest / "test" / "cached.csv").exists()


def test_fill_cache_into_the_mirror_folder_itself(mirror, monkeypatch):
    register(monkeypatch)
    (mirror / "test" / "tiny.csv").write_bytes(PAYLOAD)
    report = fill_cache("test/tiny.csv", dest=mirror, progress=False)
    assert list(report["status"]) == ["cached"]  # not copied onto itself
    # A cache folder that is the mirror folder: one look, no copy.
    monkeypatch.setenv("TUTORIAL_KIT_CACHE", str(mirror))
    assert fetch("test/tiny.csv") == mirror / "test" / "tiny.csv"
    with pytest.raises(ValueError, match="Unknown data file"):
        fill_cache(["test/tiny.csv", "nope.csv"])


def test_status_table(mirror, monkeypatch):
    register(monkeypatch, name="test/a.csv")
    register(monkeypatch, name="test/b.csv", known=False, size=False, tier="workshop")
    (mirror / "test" / "a.csv").write_bytes(PAYLOAD)
    (cache() / "test").mkdir(parents=True)
    (cache() / "test" / "b.csv").write_bytes(PAYLOAD)
    table = status().set_index("name")
    assert table.loc["test/a.csv"].to_dict() == {
        "tier": "ci", "bytes": len(PAYLOAD), "hash_known": True, "in_cache": False, "in_mirror": True
    }
    assert table.loc["test/b.csv", "in_cache"] and not table.loc["test/b.csv", "in_mirror"]
    assert not table.loc["test/b.csv", "hash_known"]
    assert set(status("workshop")["tier"]) == {"workshop"}
    assert len(status("ci")) == len(CI_NAMES) + 1  # the real CI files + test/a.csv
    with pytest.raises(ValueError, match="Unknown tier"):
        status("gpu")


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def test_cli_status_fetch_path(server, mirror, monkeypatch, capsys):
    register(monkeypatch, urls=[server.url("good.csv")])
    register(monkeypatch, name="test/in_mirror.csv")
    (mirror / "test" / "in_mirror.csv").write_bytes(PAYLOAD)

    assert main(["status", "--tier", "ci"]) == 0
    out = capsys.readouterr().out
    assert "test/tiny.csv" in out and "kang2018_scgen_valid.h5ad" in out and "kang_2018.h5ad" not in out
    assert f"mirror: {mirror}" in out

    assert main(["path", "test/tiny.csv"]) == 1
    assert "not in the cache or the mirror" in capsys.readouterr().err
    assert main(["path", "test/in_mirror.csv"]) == 0
    assert capsys.readouterr().out.strip() == str(mirror / "test" / "in_mirror.csv")

    assert main(["fetch", "test/tiny.csv", "nope.csv", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip() == str(cache() / "test" / "tiny.csv")
    assert "Unknown data file 'nope.csv'" in captured.err
    assert main(["path", "test/tiny.csv"]) == 0
    assert capsys.readouterr().out.strip() == str(cache() / "test" / "tiny.csv")

    monkeypatch.delenv("TUTORIAL_KIT_MIRROR")
    assert main(["status"]) == 0
    assert "(none: set TUTORIAL_KIT_MIRROR)" in capsys.readouterr().out


def test_cli_fill_exit_status(server, tmp_path, monkeypatch, capsys):
    register(monkeypatch, name="test/ok.csv", urls=[server.url("good.csv")])
    register(monkeypatch, name="test/bad.csv", urls=[server.url("missing.csv")])
    dest = tmp_path / "stick"
    assert main(["fill", "test/ok.csv", "--dest", str(dest), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "downloaded" in out and f"export TUTORIAL_KIT_MIRROR={dest}" in out
    with pytest.warns(UserWarning, match="failed"):
        assert main(["fill", "test/ok.csv", "test/bad.csv", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "failed: all 1 URL(s) failed: HTTP 404" in out and "1 of 2 files ready" in out
    assert main(["fill", "no-such-file", "--no-progress"]) == 2
    assert "Unknown data file" in capsys.readouterr().err
    monkeypatch.setenv("TUTORIAL_KIT_MIRROR", str(tmp_path / "missing"))
    assert main(["status"]) == 1
    assert "not an existing folder" in capsys.readouterr().err


def test_cli_runs_as_a_module(tmp_path):
    env = {**os.environ, "TUTORIAL_KIT_CACHE": str(tmp_path / "c"), "TUTORIAL_KIT_OFFLINE": "1"}
    env.pop("TUTORIAL_KIT_MIRROR", None)
    help_run = subprocess.run(
        [sys.executable, "-m", "tutorial_kit.data", "--help"], capture_output=True, text=True, env=env, check=False
    )
    assert help_run.returncode == 0
    for word in ("status", "fetch", "fill", "path", "TUTORIAL_KIT_MIRROR"):
        assert word in help_run.stdout
    fetch_run = subprocess.run(
        [sys.executable, "-m", "tutorial_kit.data", "fetch", "kang_2018.h5ad"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert fetch_run.returncode == 1
    assert "not available offline" in fetch_run.stderr and "https://exampledata.scverse.org" in fetch_run.stderr

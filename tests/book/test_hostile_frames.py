"""Hostile input to the image cache (vqlib.book.frames, issue 26): what it serves, what a frame
depends on, what a failed write leaves behind.

Every case is run through the real thing: an IPython ``InteractiveShell`` whose ``In`` records
the cells, a panel drawn by matplotlib, files on disk. Each case names the class of fault it
guards:

* ``silent wrong``: an image that is not the one the cells would draw is shown, with no warning;
* ``data lost``: a copy moved aside is overwritten, a frame that could be cached is lost to the cache;
* ``traceback``: an error escapes where a warning and a redrawn image are promised;
* ``late error``: a fault is noticed only after something was done with a bad file;
* ``hang``: a read that blocks or blows up memory, or a temporary file leaked on disk.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import struct
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vqlib.book.frames import read_frame, write_frame  # noqa: E402
from vqlib.sweeps.cache import CacheWarning  # noqa: E402



def _permissions_bind() -> bool:
    """Whether file permissions stop this process (not so for root with its usual capabilities)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return True
        finally:
            probe.chmod(stat.S_IRWXU)
    return False


ROOT = not _permissions_bind()  # root reads and writes any file


# ----------------------------------------------------------------------------- helpers


def image(fmt: str = "png", text: str = "x", dpi: int = 20, size=(1, 1)) -> bytes:
    """A small image drawn by matplotlib (deterministic bytes)."""
    fig = Figure(figsize=size)
    fig.text(0.5, 0.5, text)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def with_ihdr_width(png: bytes, width: int) -> bytes:
    """``png`` whose IHDR says ``width`` (its CRC fixed): a PNG that parses, of the wrong size."""
    (length,) = struct.unpack(">I", png[8:12])
    assert png[12:16] == b"IHDR" and length == 13
    data = struct.pack(">I", width) + png[20:29]
    return png[:8] + png[8:12] + b"IHDR" + data + struct.pack(">I", zlib.crc32(b"IHDR" + data)) + png[33:]


def png_without_pixels(png: bytes) -> bytes:
    """The PNG signature and IHDR of ``png``, then IEND: its size, but no image data."""
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    return png[:33] + iend


LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE svg [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
          b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
          b'<svg xmlns="http://www.w3.org/2000/svg" width="72pt" height="72pt"><text>&c;</text></svg>\n')


@pytest.fixture
def shell(tmp_path, monkeypatch):
    """A real IPython shell (its ``In`` records the cells it runs), the cache in tmp_path."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.setenv("VQLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # SVG frames without the date: byte-identical redraws
    main = sys.modules["__main__"]  # the shell installs its own __main__
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    sh = InteractiveShell.instance(config=config)
    yield sh
    InteractiveShell.clear_instance()
    sys.modules["__main__"] = main


def run(sh, cells):
    for cell in cells:
        sh.run_cell(cell, store_history=True).raise_error()
    return sh.user_ns


def fresh_kernel(sh):
    """Forget the cells run so far, as a new kernel would."""
    sh.reset(new_session=True)
    sh.user_ns["In"][:] = [""]


def cache_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, CacheWarning)]


def frames_dir(tmp_path) -> Path:
    return tmp_path / "cache" / "frames"


def live(folder: Path) -> set[Path]:
    """The frame files of a folder (not the copies moved aside, not temporary files)."""
    if not folder.is_dir():
        return set()
    return {p for p in folder.iterdir() if not p.name.startswith(".") and ".corrupt" not in p.name}


def leftovers(folder: Path) -> list[str]:
    """Temporary files of a write left in ``folder``."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".frame-") or p.name.endswith(".tmp"))


def moved_aside(frame: Path) -> list[Path]:
    return sorted(frame.parent.glob(frame.name + ".corrupt*"))


def panel_cells(fmt: str = "png", K: int = 2, name: str = "panel") -> list[str]:
    salt = "import matplotlib\nmatplotlib.rcParams['svg.hashsalt'] = 'vq'\n" if fmt == "svg" else ""
    return [f"{salt}import vqlib.book.widgets as W\ncalls = []\n",
            "def draw(ax, K):\n    calls.append(K)\n    ax.set_title(f'K = {K}')\n",
            f"{name} = W.sweep_panel(W.axes_renderer(draw, figsize=(1, 1)), {{'K': [{K}]}}, dpi=20, fmt={fmt!r})\n"]


def draw_once(sh, tmp_path, fmt="png"):
    """Draw a one-frame panel in a fresh cache: (its image, its file, the file of another panel)."""
    cells = panel_cells(fmt)
    drawn = run(sh, cells)["panel"].images[(2,)]
    (frame,) = live(frames_dir(tmp_path))
    run(sh, [panel_cells(fmt, K=3, name="other")[2]])  # another cell's frame, for the cases that need one
    (other,) = live(frames_dir(tmp_path)) - {frame}
    return drawn, frame, other


# --------------------------------------------------------- 1. what is served: a table of damage

# Each case damages the frame file of a one-frame panel; a fresh kernel running the same cells
# must warn once (naming the file), draw the frame again (byte-identical), keep the bad file
# aside where there is a file to keep, and store the frame again.


def _cut(frame, keep):
    frame.write_bytes(frame.read_bytes()[:keep(len(frame.read_bytes()))])


def _flip(frame, where):
    data = bytearray(frame.read_bytes())
    data[where(len(data))] ^= 0x5A
    frame.write_bytes(bytes(data))


def _fifo(frame):
    frame.unlink()
    os.mkfifo(frame)
    # should a reader block on the pipe (the fault), unblock it after 3 s so that the test fails, not hangs
    def unblock():
        time.sleep(3)
        try:
            fd = os.open(frame, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # nobody is reading: nothing to unblock
            return
        os.write(fd, b"\x89PNG\r\n\x1a\n garbage")
        os.close(fd)
    threading.Thread(target=unblock, daemon=True).start()


def _sparse(frame, size=80 << 20):
    with open(frame, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(size)


def _symlink(frame, target):
    frame.unlink()
    frame.symlink_to(target)


def _unreadable(frame):
    frame.chmod(0)


# id, fault class, format, damage(frame, drawn, other), whether a copy must be kept aside
DAMAGE = [
    ("png truncated to half, signature kept", "silent wrong", "png", lambda f, d, o: _cut(f, lambda n: n // 2), True),
    ("png truncated by one byte", "silent wrong", "png", lambda f, d, o: _cut(f, lambda n: n - 1), True),
    ("png truncated by its IEND chunk", "silent wrong", "png", lambda f, d, o: _cut(f, lambda n: n - 12), True),
    ("only the png signature", "silent wrong", "png", lambda f, d, o: f.write_bytes(d[:8]), True),
    ("an empty file", "silent wrong", "png", lambda f, d, o: f.write_bytes(b""), True),
    ("one byte flipped in the image data", "silent wrong", "png", lambda f, d, o: _flip(f, lambda n: n // 2), True),
    ("one byte flipped in the last chunk", "silent wrong", "png", lambda f, d, o: _flip(f, lambda n: n - 6), True),
    ("a png whose IHDR says another width", "silent wrong", "png",
     lambda f, d, o: f.write_bytes(with_ihdr_width(d, 7)), True),
    ("a png of another size", "silent wrong", "png", lambda f, d, o: f.write_bytes(image(dpi=30)), True),
    ("a png with a size and no pixels", "silent wrong", "png", lambda f, d, o: f.write_bytes(png_without_pixels(d)),
     True),
    ("the file of another frame", "silent wrong", "png", lambda f, d, o: f.write_bytes(o.read_bytes()), True),
    ("a symlink to another frame", "silent wrong", "png", lambda f, d, o: _symlink(f, o), True),
    ("garbage appended", "silent wrong", "png", lambda f, d, o: f.write_bytes(f.read_bytes() + b"tail"), True),
    ("whitespace, the signature, garbage", "silent wrong", "png",
     lambda f, d, o: f.write_bytes(b" \n\x89PNG\r\n\x1a\ngarbage"), True),
    ("random bytes", "silent wrong", "png", lambda f, d, o: f.write_bytes(bytes(range(256)) * 4), True),
    ("a jpeg where a png should be", "silent wrong", "png", lambda f, d, o: f.write_bytes(image("jpeg")), True),
    ("an svg where a png should be", "silent wrong", "png", lambda f, d, o: f.write_bytes(image("svg")), True),
    ("jpeg truncated, start marker kept", "silent wrong", "jpeg", lambda f, d, o: _cut(f, lambda n: n // 2), True),
    ("jpeg with a byte flipped in its scan", "silent wrong", "jpeg", lambda f, d, o: _flip(f, lambda n: n - 40),
     True),
    ("a png where a jpeg should be", "silent wrong", "jpeg", lambda f, d, o: f.write_bytes(image("png")), True),
    ("svg truncated", "silent wrong", "svg", lambda f, d, o: _cut(f, lambda n: n // 2), True),
    ("svg not well formed", "silent wrong", "svg",
     lambda f, d, o: f.write_bytes(b'<?xml version="1.0"?><svg><g></svg>'), True),
    ("xml whose root is not svg", "silent wrong", "svg",
     lambda f, d, o: f.write_bytes(b'<?xml version="1.0"?><html width="1" height="1"/>'), True),
    ("svg expanding entities", "hang", "svg", lambda f, d, o: f.write_bytes(LAUGHS), True),
    ("a folder where the frame should be", "data lost", "png", lambda f, d, o: (f.unlink(), f.mkdir()), True),
    ("a named pipe where the frame should be", "hang", "png", lambda f, d, o: _fifo(f), True),
    ("a sparse 80 MB file with the png signature", "hang", "png", lambda f, d, o: _sparse(f), True),
    ("a symlink loop", "traceback", "png", lambda f, d, o: (f.unlink(), f.symlink_to(f.name)), False),
    pytest.param("an unreadable file", "traceback", "png", lambda f, d, o: _unreadable(f), False,
                 marks=pytest.mark.skipif(ROOT, reason="root reads a file without read permission")),
]


@pytest.mark.parametrize(("case", "fault", "fmt", "damage", "kept"), DAMAGE, ids=[
    (c.values[0] if hasattr(c, "values") else c[0]) for c in DAMAGE])
def test_a_damaged_frame_is_warned_about_kept_aside_and_drawn_again(shell, tmp_path, case, fault, fmt, damage, kept):
    drawn, frame, other = draw_once(shell, tmp_path, fmt)
    damage(frame, drawn, other)
    fresh_kernel(shell)
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ns = run(shell, panel_cells(fmt))
    assert time.monotonic() - started < 2.5, f"{fault}: reading the damaged frame took too long"
    said = cache_warnings(record)
    assert ns["calls"] == [2], f"{fault}: the damaged frame was served ({case})"
    assert ns["panel"].images[(2,)] == drawn, f"{fault}: the frame drawn again differs"
    assert len(said) == 1 and frame.name in said[0], f"{fault}: warnings {said}"
    if kept:
        assert moved_aside(frame), f"data lost: the damaged file of {case!r} was not kept aside"
    with warnings.catch_warnings(record=True) as record:  # the frame drawn again is stored again
        warnings.simplefilter("always")
        assert read_frame(frame, fmt) == drawn, f"data lost: the frame drawn again was not stored ({case})"
    assert not cache_warnings(record)
    assert leftovers(frames_dir(tmp_path)) == [], f"hang: temporary files left by {case!r}"


def test_a_second_damage_keeps_the_first_copy_moved_aside(shell, tmp_path):  # data lost
    drawn, frame, _ = draw_once(shell, tmp_path)
    copies = []
    for bad in (b"first damage", b"second damage", b"third damage"):
        frame.write_bytes(bad)
        fresh_kernel(shell)
        with pytest.warns(CacheWarning):
            assert run(shell, panel_cells())["calls"] == [2]
        copies.append(bad)
    assert sorted(p.read_bytes() for p in moved_aside(frame)) == sorted(copies)


def test_a_frames_folder_that_is_a_file_gives_one_warning_per_panel(shell, tmp_path):  # traceback
    (tmp_path / "cache").mkdir()
    frames_dir(tmp_path).write_text("a file where the frames folder should be")
    cells = [*panel_cells()[:2], "panel = W.sweep_panel(W.axes_renderer(draw, figsize=(1, 1)), {'K': [2, 3, 4]}, dpi=20)\n"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ns = run(shell, cells)
    assert ns["calls"] == [2, 3, 4] and len(cache_warnings(record)) == 1


# ------------------------------------------------ 1b. records checked at the byte: Hypothesis

PNG_A, PNG_B = image(text="a"), image(text="b")
FRAME_NAME = "0123456789abcdef0123456789abcdef.png.frame"


def damaged(raw: bytes, cut: int, flips, tail: bytes) -> bytes:
    data = bytearray(raw[: cut % (len(raw) + 1)])
    for where, mask in flips:
        if data:
            data[where % len(data)] ^= mask
    return bytes(data) + tail


@given(cut=st.integers(0, 1 << 20), flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(1, 255)),
                                                 max_size=3), tail=st.binary(max_size=8))
def test_a_stored_frame_damaged_anywhere_is_never_served(tmp_path_factory, cut, flips, tail):  # silent wrong
    path = tmp_path_factory.mktemp("frames") / FRAME_NAME
    write_frame(path, PNG_A)
    raw = path.read_bytes()
    bad = damaged(raw, cut, flips, tail)
    path.write_bytes(bad)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = read_frame(path, "png")
    if bad == raw:
        assert got == PNG_A and not cache_warnings(record)
    else:
        assert got is None and len(cache_warnings(record)) == 1


@given(prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", PNG_A[:33], b"vqlib frame"]), body=st.binary(max_size=300))
def test_any_bytes_where_a_frame_should_be_are_warned_about_not_raised(tmp_path_factory, prefix, body):  # silent wrong, traceback
    path = tmp_path_factory.mktemp("frames") / FRAME_NAME
    path.write_bytes(prefix + body)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert read_frame(path, "png") is None
    assert len(cache_warnings(record)) == 1


def test_an_image_that_does_not_decode_is_shown_but_not_cached(tmp_path):  # late error
    path = tmp_path / FRAME_NAME
    for bad in (PNG_A[: len(PNG_A) // 2], b"\x89PNG\r\n\x1a\nnot really"):
        with pytest.warns(CacheWarning, match="not cached"):
            write_frame(path, bad)
        assert not path.exists() and leftovers(tmp_path) == []
    with pytest.warns(CacheWarning, match="not cached"):
        write_frame(tmp_path / FRAME_NAME.replace(".png", ".svg"), LAUGHS)


def test_the_size_recorded_is_checked_against_the_image(tmp_path):  # silent wrong
    """A record whose checksum holds but whose image is not of the size written (a forged or
    mis-written record) is refused: the size comes from decoding the image."""
    path = tmp_path / FRAME_NAME
    write_frame(path, PNG_A)
    raw = path.read_bytes()
    head, payload = raw.split(b"\n", 1)
    assert payload == PNG_A
    magic, meta = head.split(b" {", 1)
    meta = json.loads(b"{" + meta)
    wrong = with_ihdr_width(PNG_A, meta["size"][0] + 1)
    meta.update(bytes=len(wrong), sha256=__import__("hashlib").sha256(wrong).hexdigest())
    path.write_bytes(magic + b" " + json.dumps(meta).encode() + b"\n" + wrong)
    with pytest.warns(CacheWarning, match="size"):
        assert read_frame(path, "png") is None


# ------------------------------------------------------------ 3. failed writes: nothing leaked


def in_child(job, timeout=20.0):
    """Run ``job()`` in a forked child (its limits and signals stay there); its JSON-able result."""
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            result = job()
        except BaseException as error:  # report anything, the test decides
            result = {"raised": type(error).__name__}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("hang: the write did not finish")
    with os.fdopen(read_end, "rb") as f:
        return json.loads(f.read() or b"{}")


def write_under_limit(path: Path, data: bytes, limit: int, interrupt: bool = False):
    """write_frame with the file size limited to ``limit`` bytes (``ulimit -f``: a full disk);
    ``interrupt``: the limit's signal raises KeyboardInterrupt mid-write instead."""
    import resource

    def job():
        if interrupt:
            def stop(*_):
                raise KeyboardInterrupt
            signal.signal(signal.SIGXFSZ, stop)
        else:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            write_frame(path, data)
        return {"warnings": cache_warnings(record)}

    return in_child(job)


@pytest.mark.parametrize(("limit", "interrupt", "fault"), [
    (0, False, "hang"), (40, False, "hang"), (len(PNG_B) // 2, False, "hang"), (len(PNG_B) // 2, True, "hang")],
    ids=["disk full at the first byte", "disk full in the header", "disk full mid-image", "interrupted mid-write"])
def test_a_failed_write_leaves_no_temporary_file_and_the_previous_frame(tmp_path, limit, interrupt, fault):
    path = tmp_path / FRAME_NAME
    write_frame(path, PNG_A)
    result = write_under_limit(path, PNG_B, limit, interrupt)
    if interrupt:
        assert result.get("raised") == "KeyboardInterrupt", result  # not swallowed
    else:
        assert len(result["warnings"]) == 1 and "could not be written" in result["warnings"][0], result
    assert leftovers(tmp_path) == [], f"{fault}: temporary files left"
    assert read_frame(path, "png") == PNG_A, "data lost: the previous frame"


def test_temporary_files_of_a_killed_writer_are_removed_a_running_ones_kept(tmp_path):  # hang (disk)
    stale, running = tmp_path / ".frame-killed.tmp", tmp_path / ".frame-running.tmp"
    for p in (stale, running):
        p.write_bytes(b"half a frame")
    os.utime(stale, (time.time() - 86400, time.time() - 86400))
    write_frame(tmp_path / FRAME_NAME, PNG_A)
    assert not stale.exists(), "hang: a dead writer's temporary file stays for ever"
    assert running.exists(), "data lost: a running writer's temporary file was removed"


def test_an_unwritable_folder_gives_one_warning_and_no_temporary_file(tmp_path):  # traceback
    if ROOT:
        pytest.skip("root writes into a read-only folder")
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            write_frame(tmp_path / FRAME_NAME, PNG_A)
            write_frame(tmp_path / FRAME_NAME.replace("0", "1"), PNG_A)
    finally:
        tmp_path.chmod(stat.S_IRWXU)
    assert len(cache_warnings(record)) == 1 and leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- concurrency


def test_concurrent_writers_and_readers_see_whole_frames_only(tmp_path):  # silent wrong
    path = tmp_path / FRAME_NAME
    seen, errors = [], []
    start, done = threading.Barrier(12), threading.Event()

    def writer(data):
        start.wait()
        for _ in range(15):
            write_frame(path, data)

    def reader():
        start.wait()
        while True:
            finished = done.is_set()
            try:
                seen.append(read_frame(path, "png"))
            except Exception as error:  # noqa: BLE001 - any escape is the fault
                errors.append(error)
            if finished:
                return

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=writer, args=(d,)) for d in (PNG_A, PNG_B) * 4]
        threads += [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads[:8]:
            t.join()
        done.set()
        for t in threads[8:]:
            t.join()
    assert not errors and not cache_warnings(record)
    assert set(seen) <= {None, PNG_A, PNG_B} and {PNG_A, PNG_B} & set(seen)
    assert leftovers(tmp_path) == []


def test_two_readers_of_one_damaged_frame_keep_one_copy_each_time(tmp_path):  # data lost
    path = tmp_path / FRAME_NAME
    errors = []
    for round_ in range(4):
        write_frame(path, PNG_A)
        path.write_bytes(f"damage {round_}".encode())
        start = threading.Barrier(2)

        def reader():
            start.wait()
            try:
                assert read_frame(path, "png") is None
            except Exception as error:  # noqa: BLE001 - any escape is the fault
                errors.append(error)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheWarning)
            threads = [threading.Thread(target=reader) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert not errors
    assert sorted(p.read_bytes() for p in moved_aside(path)) == [f"damage {r}".encode() for r in range(4)]


# ------------------------------------------------- 2. a frame is keyed by the files cells read


def data_cells(data: Path, how: str = "open") -> list[str]:
    read = {
        "open": f"text = open({str(data)!r}).read()\n",
        "numpy": f"import numpy as np\ntext = str(np.load({str(data)!r}))\n",
        "os": f"import os\nfd = os.open({str(data)!r}, os.O_RDONLY)\ntext = os.read(fd, 100).decode()\nos.close(fd)\n",
        "maybe": f"try:\n    text = open({str(data)!r}).read()\nexcept FileNotFoundError:\n    text = 'none'\n",
        "in draw": "text = None\n",
    }[how]
    title = f"open({str(data)!r}).read()" if how == "in draw" else "text"
    return ["import vqlib.book.widgets as W\ncalls = []\n", read,
            f"def draw(ax, K):\n    calls.append(K)\n    ax.set_title({title})\n",
            "panel = W.sweep_panel(W.axes_renderer(draw, figsize=(1, 1)), {'K': [2, 3]}, dpi=20)\n"]


def drawn_without_cache(cells, sh, monkeypatch):
    cache = os.environ["VQLIB_CACHE"]
    monkeypatch.setenv("VQLIB_CACHE", "off")
    fresh_kernel(sh)
    images = run(sh, cells)["panel"].images
    monkeypatch.setenv("VQLIB_CACHE", cache)
    return images


def write_data(path: Path, how: str, text: str):
    """Change ``path`` as another process would: written beside it and renamed into place (a
    file the kernel's own process creates or truncates is the kernel's output, not an input)."""
    buffer = io.BytesIO()
    if how == "numpy":
        import numpy as np

        np.save(buffer, np.array(text))
    else:
        buffer.write(text.encode())
    fd, tmp = __import__("tempfile").mkstemp(dir=path.parent)
    os.write(fd, buffer.getvalue())
    os.close(fd)
    os.replace(tmp, path)


DEPENDS = [
    ("a file a cell opens changes", "silent wrong", "open", False),
    ("a file a cell opens changes, its size and mtime restored", "silent wrong", "open", True),
    ("a file a cell reads with numpy.load changes", "silent wrong", "numpy", False),
    ("a file a cell reads with os.open changes", "silent wrong", "os", False),
    ("a file the cell could not open appears", "silent wrong", "maybe", False),
    ("a file the draw function opens changes", "silent wrong", "in draw", False),
]


@pytest.mark.parametrize(("case", "fault", "how", "same_stat"), DEPENDS, ids=[c[0] for c in DEPENDS])
def test_a_frame_is_drawn_again_when_a_file_the_cells_read_changes(shell, tmp_path, monkeypatch, case, fault, how,
                                                                   same_stat):
    data = tmp_path / ("data.npy" if how == "numpy" else "data.txt")
    if how != "maybe":
        write_data(data, how, "alpha")
    cells = data_cells(data, how)
    first = run(shell, cells)["panel"].images
    before = data.stat() if data.exists() else None
    write_data(data, how, "omega")
    if same_stat:
        os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert data.stat().st_size == before.st_size and data.stat().st_mtime_ns == before.st_mtime_ns
    fresh_kernel(shell)
    ns = run(shell, cells)
    assert ns["calls"] == [2, 3], f"{fault}: {case}: the old frames were served"
    assert ns["panel"].images != first
    if how in ("open", "in draw"):  # and they are what a kernel without the cache draws
        assert ns["panel"].images == drawn_without_cache(cells, shell, monkeypatch)


def test_frames_of_cells_whose_files_did_not_change_are_read_back(shell, tmp_path):  # the cache still works
    data = tmp_path / "data.txt"
    write_data(data, "open", "alpha")
    for how in ("open", "numpy"):
        if how == "numpy":
            write_data(tmp_path / "data.npy", "numpy", "alpha")
            data = tmp_path / "data.npy"
        fresh_kernel(shell)
        first = run(shell, data_cells(data, how))["panel"].images
        os.utime(data)  # touched, not changed: the contents are what counts
        fresh_kernel(shell)
        ns = run(shell, data_cells(data, how))
        assert ns["calls"] == [] and ns["panel"].images == first


def test_frames_after_the_sweep_cache_and_temporary_files_are_read_back(shell, tmp_path):  # data lost
    """A cold run computes and stores sweep rows, a warm one reads them; cells write and read
    temporary files of their own: none of that is a change, the frames are read back."""
    cells = ["import tempfile, vqlib.sweeps.cache as C, vqlib.book.widgets as W\ncalls = []\n",
             "rows = C.cached('probe', {'a': 1}, lambda: [{'x': 1.5}])\n"
             "with tempfile.NamedTemporaryFile('w+') as f:\n    f.write('scratch'); f.flush()\n"
             "    scratch = open(f.name).read()\n"
             f"open({str(tmp_path / 'out.txt')!r}, 'w').write('mine')\nmine = open({str(tmp_path / 'out.txt')!r}).read()\n",
             "def draw(ax, K):\n    calls.append(K)\n    ax.set_title(f\"{rows[0]['x']} {K}\")\n",
             "panel = W.sweep_panel(W.axes_renderer(draw, figsize=(1, 1)), {'K': [2, 3]}, dpi=20)\n"]
    first = run(shell, cells)["panel"].images
    fresh_kernel(shell)
    ns = run(shell, cells)
    assert ns["calls"] == [] and ns["panel"].images == first


def test_a_kernel_that_read_a_pipe_caches_no_image(shell, tmp_path):  # silent wrong
    """What came through a pipe cannot be known again: the images of that kernel are drawn."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    cells = ["import os, vqlib.book.frames as F\nbefore = F.frame_context()\n",
             f"os.close(os.open({str(pipe)!r}, os.O_RDONLY | os.O_NONBLOCK))\nafter = F.frame_context()\n"]
    ns = run(shell, cells)
    assert ns["before"] is not None and ns["after"] is None


FIGURE_CELLS = [
    "import matplotlib.pyplot as plt\nimport vqlib\nvqlib.book.plots.use_book_style()\ndrawn = []\n",
    "text = open({path!r}).read()\n",
    "fig, ax = plt.subplots(figsize=(1, 1))\nax.set_title(text)\n"
    "fig.canvas.mpl_connect('draw_event', lambda event: drawn.count(text) or drawn.append(text))\n"
    "png = get_ipython().display_formatter.format(fig)[0]['image/png']\n",
]


def test_a_figure_is_drawn_again_when_a_file_its_cells_read_changes(shell, tmp_path):  # silent wrong
    from IPython.core.pylabtools import select_figure_formats

    select_figure_formats(shell, {"png"}, bbox_inches="tight")
    data = tmp_path / "data.txt"
    write_data(data, "open", "alpha")
    cells = [c.format(path=str(data)) for c in FIGURE_CELLS]
    first = run(shell, cells)["png"]
    fresh_kernel(shell)
    ns = run(shell, cells)
    assert ns["drawn"] == [] and ns["png"] == first  # unchanged: read back
    write_data(data, "open", "omega")
    fresh_kernel(shell)
    ns = run(shell, cells)
    assert ns["drawn"] == ["omega"] and ns["png"] != first


def test_images_are_not_cached_when_the_cache_was_loaded_after_cells_ran(tmp_path):  # silent wrong
    """Files read before the image cache was loaded are unknown to it: it caches nothing then.
    A forked child loads the module again in its second cell, as a kernel would import it late."""
    data = tmp_path / "data.txt"
    data.write_text("alpha")

    def job():
        import importlib

        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        os.environ["VQLIB_CACHE"] = str(tmp_path / "cache")
        InteractiveShell.clear_instance()
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        sh = InteractiveShell.instance(config=config)
        sh.user_ns["In"][:] = [""]
        run(sh, [f"text = open({str(data)!r}).read()\n",
                 "import importlib, vqlib.book.frames as F\nF = importlib.reload(F)\ncontext = F.frame_context()\n"])
        return {"context": sh.user_ns["context"], "reloaded": importlib.import_module("vqlib.book.frames") is not None}

    assert in_child(job)["context"] is None

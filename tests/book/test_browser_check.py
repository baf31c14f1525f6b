"""The Python side of the browser check (tools/browser_check.py) that needs no browser:
page weight and the status page's table. The browser side runs in CI after the build."""
import gzip
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import browser_check  # noqa: E402


def test_transfer_bytes_counts_text_compressed_and_images_as_they_are(tmp_path):
    text = ("<p>" + "the same words again " * 500 + "</p>").encode()
    (tmp_path / "page.html").write_bytes(text)
    (tmp_path / "figure.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 4)
    cache = {}
    weight = browser_check.transfer_bytes(tmp_path, ["page.html", "figure.png", "missing.js"], cache)
    assert weight["files"] == 2
    assert weight["raw"] == len(text) + 4 + 1024
    assert weight["compressed"] == len(gzip.compress(text, 6)) + 4 + 1024
    assert weight["largest"][0]["file"] == "figure.png"  # the PNG is not compressed again
    assert set(cache) == {"page.html", "figure.png"}


def test_the_status_page_gets_the_table_of_bytes(tmp_path):
    page = tmp_path / "status.html"
    page.write_text('<h2>Page weight</h2><div id="page-weight-table"><p>Not measured</p></div><p>end</p>')
    results = [
        {"page": "chapters/01_a.html", "redirect": None,
         "transfer": {"files": 3, "raw": 5_000_000, "compressed": 2_500_000,
                      "largest": [{"file": "_offline_vendor/html-manager/dist/embed.js", "raw": 1, "compressed": 1}]}},
        {"page": "index.html", "redirect": "intro.html",
         "transfer": {"files": 1, "raw": 1, "compressed": 1, "largest": []}},
    ]
    assert browser_check.fill_status_page([tmp_path], results) != []
    html = page.read_text()
    assert "Not measured" not in html and "chapters/01_a.html" in html and "embed.js" in html
    assert "2.38 MB" in html and "target: at most 3 MB" in html and "index.html" not in html
    assert html.endswith("<p>end</p>")

"""viz.export_attention: the bertviz layout as a JSON file and as a self-contained HTML page."""

import json

import numpy as np
import pytest

from transformer_np import viz


def _maps(rng, L=2, H=3, T=4):
    w = rng.random((L, H, T, T))
    return list(w / w.sum(-1, keepdims=True))


def test_json_holds_the_bertviz_layout(tmp_path):
    maps = _maps(np.random.default_rng(0))
    path = viz.export_attention(tmp_path / "a.json", ["[CLS]", "it", "</script>", "[SEP]"], maps)
    data = json.loads(path.read_text())
    assert data["tokens"][2] == "</script>"
    att = np.array(data["attention"])
    assert att.shape == (2, 1, 3, 4, 4) and np.abs(att[:, 0] - np.array(maps)).max() <= 5e-5


def test_html_embeds_the_data_and_cannot_be_broken_by_a_token(tmp_path):
    maps = _maps(np.random.default_rng(1))
    path = viz.export_attention(tmp_path / "a.html", ["a", "b", "</script><b>", "d"], maps, title="x <y>")
    html = path.read_text()
    assert html.count("</script>") == 1 and "<\\/script>" in html and "x &lt;y>" in html
    start = html.index("const data = ") + len("const data = ")
    data = json.loads(html[start:html.index(";\nconst L")].replace("<\\/", "</"))
    assert len(data["attention"]) == 2 and data["tokens"][2] == "</script><b>"


def test_errors(tmp_path):
    maps = _maps(np.random.default_rng(2))
    with pytest.raises(ValueError, match=r"tokens: expected one per query and key of every layer \(4\), received 3"):
        viz.export_attention(tmp_path / "a.json", ["a", "b", "c"], maps)
    with pytest.raises(ValueError, match=r"path: expected a name ending in .json or .html, received"):
        viz.export_attention(tmp_path / "a.txt", list("abcd"), maps)

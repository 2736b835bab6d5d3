"""Gallery: exact top-k, memory-bounded batching, add/remove, safe save/load, mismatch refusal, CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

from lowres_sdk import BundleError, Embedder, InputError
from lowres_sdk.gallery import Gallery


def unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_search_is_exact_and_batching_does_not_change_it():
    g = Gallery(8)
    vecs = unit(500, 8)
    g.add(vecs, [f"g{i}" for i in range(500)])
    q = unit(37, 8, seed=1)
    full = q @ vecs.T
    expected = np.argsort(-full, axis=1)[:, :5]
    r = g.search(q, top_k=5)
    assert (r.indices == expected).all()
    assert np.allclose(r.scores, np.take_along_axis(full, expected, 1), atol=1e-6)
    assert r.ids[0] == [f"g{j}" for j in expected[0]]
    small = g.search(q, top_k=5, query_batch=4, gallery_batch=33)  # many blocks, same answer
    assert (small.indices == r.indices).all()
    assert g.search(q[0], top_k=1000).scores.shape == (1, 500)  # k clipped to the gallery size


def test_add_remove_and_bad_vectors():
    g = Gallery(4)
    g.add(np.eye(4) * 3, ["a", "b", "c", "d"], [{"k": i} for i in range(4)])  # normalised on the way in
    assert np.allclose(np.linalg.norm(g.vectors, axis=1), 1)
    g.remove(["b"])
    assert g.ids == ["a", "c", "d"] and g.metadata[1] == {"k": 2}
    assert g.search(np.array([0, 1, 0, 0.1]), top_k=1).ids == [["d"]]
    with pytest.raises(InputError, match="already in the gallery or repeated"):
        g.add(np.eye(4)[:1], ["a"])
    with pytest.raises(InputError, match="repeated"):
        g.add(np.eye(4)[:2], ["x", "x"])
    with pytest.raises(InputError, match=r"\[N, 4\]"):
        g.add(np.ones((2, 5)), ["y", "z"])
    with pytest.raises(InputError, match="NaN"):
        g.search(np.full(4, np.nan))
    with pytest.raises(InputError, match="not in the gallery"):
        g.remove(["zzz"])


def test_save_load_round_trip_without_pickle(tmp_path):
    g = Gallery(6, fingerprint="abc")
    g.add(unit(10, 6), [f"i{i}" for i in range(10)], [{"path": f"p{i}.jpg"} for i in range(10)])
    g.save(tmp_path / "g")
    h = Gallery.load(tmp_path / "g")
    assert h.ids == g.ids and h.metadata == g.metadata and np.array_equal(h.vectors, g.vectors)
    assert h.fingerprint == "abc" and not list(tmp_path.glob(".g.*"))
    raw = bytearray((tmp_path / "g" / "vectors.npy").read_bytes())
    raw[-1] ^= 1
    (tmp_path / "g" / "vectors.npy").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match="does not match"):
        Gallery.load(tmp_path / "g")


@pytest.fixture(scope="module")
def embed_bundle(tiny_run, tmp_path_factory):
    from lowres_sdk.export.exporter import export_run

    return export_run(tiny_run, tmp_path_factory.mktemp("emb") / "bundle", task="embed", eval_per_class=4,
                      log=lambda *a: None)


def test_gallery_refuses_another_embedder(embed_bundle, tmp_path):
    emb = Embedder(embed_bundle.path)
    g = Gallery.for_embedder(emb)
    g.check_embedder(emb)
    Gallery(emb.dim, fingerprint="0" * 64).save(tmp_path / "other")
    with pytest.raises(BundleError, match="re-index"):
        Gallery.load(tmp_path / "other", embedder=emb)
    Gallery(emb.dim + 1).save(tmp_path / "wide")
    with pytest.raises(BundleError, match="-d embeddings"):
        Gallery.load(tmp_path / "wide", embedder=emb)


def test_index_and_search_cli(embed_bundle, tiny_data, tmp_path):
    gallery = tmp_path / "gallery"
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "index", str(tiny_data / "train"), "--bundle",
                        str(embed_bundle.path), "--out", str(gallery)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    g = Gallery.load(gallery)
    assert len(g) == 96 and g.metadata[0]["class"] == "blob"
    query = tiny_data / "test" / "hstripes" / "000.png"
    p = subprocess.run([sys.executable, "-m", "lowres_sdk.cli", "search", str(query), "--gallery", str(gallery),
                        "--top-k", "5", "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    hits = json.loads(p.stdout.splitlines()[0])["hits"]
    assert len(hits) == 5 and hits[0]["score"] >= hits[-1]["score"]
    assert all(set(h) == {"id", "score", "metadata"} for h in hits)


def test_a_gallery_without_a_fingerprint_is_refused_or_searched_with_a_warning(tmp_path):
    import cv2

    from lowres_sdk.gallery import UnverifiedGalleryWarning
    from tiny_bundles import make_bundle

    emb = Embedder(make_bundle(tmp_path / "emb", task="embed"))
    g = Gallery(emb.dim)
    g.add(np.eye(emb.dim)[:2], ["a", "b"])
    g.save(tmp_path / "bare")
    with pytest.raises(BundleError, match="no model fingerprint.*re-index"):
        Gallery.load(tmp_path / "bare", embedder=emb)
    with pytest.warns(UnverifiedGalleryWarning, match="no model fingerprint"):
        assert len(Gallery.load(tmp_path / "bare", embedder=emb, unverified_ok=True)) == 2
    img = tmp_path / "q.png"
    cv2.imwrite(str(img), np.full((8, 8, 3), 200, np.uint8))
    cmd = [sys.executable, "-m", "lowres_sdk.cli", "search", str(img), "--gallery", str(tmp_path / "bare"),
           "--bundle", str(emb.bundle.path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stderr.startswith("error: the gallery records no model fingerprint")
    p = subprocess.run([*cmd, "--unverified-ok"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr.startswith("warning: the gallery records no model fingerprint")
    assert p.stdout.splitlines()[0] == f"{img}:"

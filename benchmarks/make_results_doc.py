"""Assemble docs/results.md from the committed benchmark outputs in benchmarks/results/*.md.

Every figure in docs/results.md is copied from those files, so the doc never disagrees with
the benchmark outputs. Run it after any benchmark:  python benchmarks/make_results_doc.py
"""

from common import RESULTS, ROOT

SECTIONS = [  # (results file stem, heading, command that reproduces it, how it was run)
    (
        "train_speed",
        "Training and decoding speed (Flickr8k train)",
        "python benchmarks/train_speed.py",
        "Where the time goes: the naive loop spends `naive_read_and_encode_seconds` reading and encoding "
        "images, the rest in five decoder steps per batch over full-length captions. gemcaption's epoch "
        "is decoder work only, on real tokens, in one step per batch, so its speed-up is bounded by how "
        "much cheaper that decoder work is than the CNN pass plus five naive steps; on 2 CPU cores with "
        "these decoder sizes it is not 20x.",
    ),
    (
        "train_step_cost",
        "Where a training step's time goes (defaults)",
        "python benchmarks/train_step_cost.py",
        "With the output layer nearly free (16 words) a step still costs the image side and the token "
        "layers; set that against the naive epoch above (CNN pass plus five full-length steps per batch) "
        "to see the most any loop over this model could gain here.",
    ),
    (
        "flickr8k",
        "Flickr8k captioning: decoder variants, and the earlier full run (dev split)",
        "python benchmarks/flickr8k.py --variants NAME --limit 2000 --embed-dim 256 --epochs 12 --patience 3",
        "One process per variant, one after another (NAME: each row's variant). The variants are a screening "
        "run on the first 2,000 train and 333 dev images (the shared 2-core machine allowed no more in the "
        "time); the last table is the earlier full-data run, kept in the same JSON. Learning curves (train and "
        "dev loss and token accuracy per epoch, every variant): "
        "[flickr8k.curves.png](../benchmarks/results/flickr8k.curves.png).",
    ),
    ("encoders", "Image encoders: speed and gemstone linear probe", "python benchmarks/encoders.py", ""),
    (
        "gemstones",
        "Gemstone classification (68 classes)",
        "python benchmarks/gemstones.py",
        "Three runs with the same seed and split, merged: see [results-gemstones.md](results-gemstones.md).",
    ),
    (
        "retrieval_quality",
        "Retrieval quality: the learned caption space against caption matching, CCA and visual-only",
        "python benchmarks/retrieval_quality.py --epochs 6 --sets flickr8k --merge --captioner CAPTIONER --only ...; "
        "python benchmarks/retrieval_quality.py --sets jewellery gemstones --merge --jewellery-model MODEL",
        "The learned space (`gemcaption.space`) is trained from the cached Lite0 features; `gemcaption train` trains "
        "it by default with the captioner and chooses the index's fusion weights on the validation split (the "
        "'space trained by gemcaption train' and 'index vectors with the fusion ...' rows; CAPTIONER was trained "
        "with `gemcaption train --data flickr8k:... --epochs 2`, MODEL with `gemcaption train --data "
        "csv:.../jewelry/captions.csv --epochs 10`). The variants, early stopping and fusion weights were all "
        "chosen on dev. Each section names the run that measured it.",
    ),
    ("index_speed", "FAISS index speed and recall", "python benchmarks/index_speed.py", ""),
    ("demo", "The demo (synthetic jewellery set)", "python benchmarks/demo.py", ""),
    (
        "robustness",
        "Robustness: kills during saves, concurrent writers, damaged directories, server load",
        "python benchmarks/robustness.py",
        "Kills are SIGKILLs at a random moment of a real saving process; after each, the directory must "
        "load with the old or the new content and no staging litter may remain. Damaged directories: each "
        "file truncated, bit-flipped, zeroed or deleted; a clean outcome is one `ModelError`. Server: a "
        "third of the text queries are deliberately bad (an empty text, a 2,000-character text) and must "
        "get a 400 JSON answer; one upload per image client is an 8000x8000 PNG that must get a 413 from "
        "its header. The captioner behind the server is a real Keras captioner, but tiny (Lite0 at 32 px, random "
        "weights), so the memory figure is the server's own, not that of a full-size model.",
    ),
]


def main():
    parts = [
        "# Results",
        "",
        "Every figure below is copied from a committed benchmark output in `benchmarks/results/` "
        "(the JSON beside each table has the raw values and the machine's load during the run). "
        "All runs: 2 CPU cores, no GPU. Regenerate this page with "
        "`python benchmarks/make_results_doc.py`.",
        "",
    ]
    for stem, heading, command, how in SECTIONS:
        path = RESULTS / f"{stem}.md"
        if not path.exists():
            continue
        parts += [
            f"## {heading}",
            "",
            f"Reproduce: `{command}` (output: `benchmarks/results/{stem}.json`). {how}",
            "",
            path.read_text().strip(),
            "",
        ]
    (ROOT / "docs" / "results.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'docs' / 'results.md'}")


if __name__ == "__main__":
    main()

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
        "Flickr8k captioning and retrieval (dev split)",
        "python benchmarks/flickr8k.py --epochs 10 --embed-dim 512 --models-dir runs/flickr8k-512",
        "The two decoders were trained one after the other with `--train-only --decoders NAME`, then "
        "evaluated together with `--reuse` (same options). The Transformer stopped early after 6 epochs "
        "(best dev loss at epoch 3); the LSTM ran all 10.",
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
        "python benchmarks/retrieval_quality.py --epochs 6 --sets flickr8k jewellery gemstones",
        "The learned space (`gemcaption.space`) is trained from the cached Lite0 features; `gemcaption train` "
        "does not train it yet, so the product's default search is still caption matching. The variant and "
        "the figures were both chosen on dev. Fusion weights for image queries were not yet chosen on dev.",
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

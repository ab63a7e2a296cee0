#!/usr/bin/env python3
"""Record what Hugging Face computes for the real all-MiniLM-L6-v2, for the
tests that run when the model has been fetched (tools/get-minilm.sh):

  tests/fixtures/minilm/corpus_ids.txt     BertTokenizerFast ids of each line
                                           of corpus.txt, no truncation
  tests/fixtures/minilm/corpus_ids_16.txt  the same truncated to 16 ids
  tests/fixtures/minilm/embeddings.npy     sentence-transformers' encode() of
                                           sentences.txt (max_seq_length 256)

  /work/venv/bin/python tools/record_minilm.py build/minilm/model
"""
import sys

import numpy as np


def lines_of(path):
    data = open(path, "rb").read().decode("utf-8")
    lines = data.split("\n")
    return lines[:-1] if data.endswith("\n") else lines


def main():
    model_dir = sys.argv[1]
    fx = "tests/fixtures/minilm/"
    from transformers import BertTokenizerFast
    tok = BertTokenizerFast(tokenizer_file=model_dir + "/tokenizer.json")
    corpus = lines_of(fx + "corpus.txt")
    for name, max_len in (("corpus_ids.txt", None), ("corpus_ids_16.txt", 16)):
        with open(fx + name, "w") as f:
            for line in corpus:
                ids = tok(line, truncation=max_len is not None,
                          max_length=max_len)["input_ids"]
                f.write(",".join(map(str, ids)) + "\n")
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(lines_of(fx + "sentences.txt"), batch_size=32,
                       convert_to_numpy=True)
    np.save(fx + "embeddings.npy", emb.astype(np.float32))
    print("record_minilm: %d corpus lines, embeddings %s" % (len(corpus),
                                                            emb.shape))


if __name__ == "__main__":
    main()

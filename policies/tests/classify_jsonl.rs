//! `switchyard classify` batch format: error rows instead of aborting, SDK content parts,
//! detector attribution, and the shipped sample `examples/prompts.jsonl`.
use policies::{classify_jsonl, Classifier, OrgRules};
use serde_json::Value;

fn clf() -> Classifier {
    Classifier::new(OrgRules::default()).expect("builtin classifier compiles")
}

fn rows(input: &str) -> (policies::JsonlSummary, Vec<Value>) {
    let mut out = Vec::new();
    let s = classify_jsonl(&clf(), input.as_bytes(), &mut out).expect("batch runs");
    let text = String::from_utf8(out).expect("utf8");
    let rows = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect();
    (s, rows)
}

#[test]
fn bad_lines_become_error_rows_and_the_batch_goes_on() {
    let input = concat!(
        "{\"id\":\"a\",\"prompt\":\"mail me: r.ito@post.jp\"}\n",
        "not json at all\n",
        "{\"id\":\"b\",\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}]}\n",
        "{\"prompt\":\"no id here\"}\n",
        "\n",
        "{\"id\":7,\"prompt\":\"fine\"}\n",
    );
    let (s, rows) = rows(input);
    assert_eq!(s.classified, 2);
    assert_eq!(s.errors, 3);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["id"], "a");
    assert_eq!(rows[0]["sensitive"], true);
    // Not JSON: no id, so the line number identifies it.
    assert_eq!(rows[1]["line"], 2);
    assert!(rows[1].get("id").is_none());
    assert!(rows[1]["error"].as_str().is_some_and(|e| !e.is_empty()));
    // JSON with an id: the error row carries it.
    assert_eq!(rows[2]["id"], "b");
    assert!(rows[2]["error"]
        .as_str()
        .is_some_and(|e| e.contains("wizard")));
    assert_eq!(rows[3]["line"], 4);
    assert!(rows[3]["error"].as_str().is_some_and(|e| e.contains("id")));
    assert_eq!(rows[4]["id"], 7);
}

#[test]
fn openai_content_parts_and_anthropic_blocks_are_classified() {
    let input = concat!(
        "{\"id\":1,\"messages\":[{\"role\":\"user\",\"content\":[",
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.invalid/a.png\"}},",
        "{\"type\":\"text\",\"text\":\"my email is h.okafor@post.ng\"}]}]}\n",
        "{\"id\":2,\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"}],\"messages\":[",
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t1\",",
        "\"content\":[{\"type\":\"text\",\"text\":\"card 4539 1488 0343 6467\"}]}]}]}\n",
        "{\"id\":3,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}\n",
    );
    let (s, rows) = rows(input);
    assert_eq!(s.classified, 2, "{rows:?}");
    assert_eq!(rows[0]["categories"][0], "pii");
    assert_eq!(rows[0]["findings"][0]["detector"], "rule");
    assert_eq!(rows[1]["categories"][0], "financial");
    // The Anthropic system block is segment 0: offsets count it.
    let start = rows[1]["findings"][0]["start"].as_u64().expect("start");
    assert!(start > "Be brief.".len() as u64);
    assert_eq!(s.errors, 1);
    assert!(rows[2]["error"]
        .as_str()
        .is_some_and(|e| e.contains("text")));
}

/// The sample batch in `examples/prompts.jsonl` (invented prompts, shipped for the README's
/// `switchyard classify < prompts.jsonl`) parses without error rows and every row gets the
/// categories its `expect` field names.
#[test]
fn shipped_sample_prompts_classify_as_expected() {
    let input = include_str!("../examples/prompts.jsonl");
    let (s, rows) = rows(input);
    assert_eq!(s.errors, 0, "{rows:?}");
    assert!(s.classified >= 10);
    for (line, row) in input.lines().zip(&rows) {
        let want: Value = serde_json::from_str(line).expect("json");
        assert_eq!(row["categories"], want["expect"], "{line}\n{row}");
    }
}

//! `cargo run -p switchyard-policies --example classify < prompts.jsonl > out.jsonl`
use std::io::{stdin, stdout, BufWriter};
use std::process::ExitCode;

use policies::{classify_jsonl, Classifier, OrgRules};

fn main() -> ExitCode {
    let classifier = match Classifier::new(OrgRules::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("classifier: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = BufWriter::new(stdout().lock());
    match classify_jsonl(&classifier, stdin().lock(), out) {
        Ok(s) => {
            eprintln!("classified {} lines, {} error rows", s.classified, s.errors);
            if s.errors > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("classify: {e}");
            ExitCode::FAILURE
        }
    }
}

//! A task plug-in for the tests: one family, `test-addition`, served over the node's task plug-in
//! protocol (JSON lines on stdin/stdout). Questions are sums of two numbers drawn from a hash of
//! (difficulty, seed, index), so every process generates the same question for the same four
//! values. `--exit-after N` makes it exit after N answers, to test a plug-in that dies.

use std::io::{BufRead, Write};

use serde_json::{Value, json};

const FAMILY: &str = "test-addition";
const MAX_DIFFICULTY: u64 = 2;

fn operands(difficulty: u64, seed: u64, index: u64) -> (u64, u64) {
    let mut hasher = blake3::Hasher::new();
    for value in [difficulty, seed, index] {
        hasher.update(&value.to_le_bytes());
    }
    let bytes = hasher.finalize();
    let word = |i: usize| u64::from_le_bytes(bytes.as_bytes()[i..i + 8].try_into().unwrap());
    let range = 10u64.pow(difficulty as u32 + 1);
    (word(0) % range, word(8) % range)
}

fn answer(request: &Value) -> Value {
    let number = |key: &str| request[key].as_u64();
    match request["op"].as_str() {
        Some("hello") => json!({
            "protocol": 1,
            "families": [{
                "name": FAMILY,
                "description": "add two numbers (a test plug-in)",
                "max_difficulty": MAX_DIFFICULTY,
            }],
        }),
        Some(op @ ("generate" | "score")) => {
            if request["family"] != FAMILY {
                return json!({"error": format!("unknown family {}", request["family"])});
            }
            let (Some(difficulty), Some(seed), Some(index)) =
                (number("difficulty"), number("seed"), number("index"))
            else {
                return json!({"error": "difficulty, seed and index must be unsigned integers"});
            };
            if difficulty > MAX_DIFFICULTY {
                return json!({"error": format!("difficulty {difficulty} is above {MAX_DIFFICULTY}")});
            }
            let (a, b) = operands(difficulty, seed, index);
            if op == "generate" {
                return json!({"prompt": format!("What is {a}+{b}?"), "answer": {"sum": a + b}});
            }
            let expected = request["answer"]["sum"].as_u64();
            let given = request["extracted"]
                .as_str()
                .and_then(|s| s.trim().parse::<u64>().ok());
            json!({"score": if given.is_some() && given == expected { 1.0 } else { 0.0 }})
        }
        _ => json!({"error": format!("unknown op {}", request["op"])}),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut remaining = match (args.next().as_deref(), args.next()) {
        (Some("--exit-after"), Some(n)) => n.parse::<u64>().expect("--exit-after takes a count"),
        _ => u64::MAX,
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { return };
        if remaining == 0 {
            return;
        }
        remaining -= 1;
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(request) => answer(&request),
            Err(err) => json!({"error": format!("not JSON: {err}")}),
        };
        if writeln!(stdout, "{reply}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
    }
}

//! Task families served by another process: the task plug-in protocol.
//!
//! A plug-in is a long-running program that reads one JSON request per line on its standard input
//! and writes exactly one JSON answer per line on its standard output, in order (its standard error
//! goes to the node's). Three requests, protocol version 1:
//!
//! - `{"op":"hello","protocol":1}` → `{"protocol":1,"families":[{"name","description","max_difficulty"}]}`
//! - `{"op":"generate","family","difficulty","seed","index"}` → `{"prompt":"…","answer":<any JSON>}`
//! - `{"op":"score","family","difficulty","seed","index","answer","completion","extracted"}` →
//!   `{"score":<0..1>}`, where `answer` is what `generate` returned and `extracted` the answer text
//!   the node read from the completion (or `null`).
//!
//! Any request may be answered `{"error":"…"}`. Generation must be deterministic, because other
//! nodes regenerate a question from its four numbers to check a bundle: the node asks twice at start
//! and refuses a plug-in whose answers differ. A plug-in that does not answer in time, answers
//! something that is not JSON, or exits is stopped and every later request fails naming it, since
//! its answers could no longer be matched to their requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{EVAL_SEED_BASE, Question};

/// The protocol version this node speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Longest line a plug-in may answer: a question and its answer data, not a corpus.
const MAX_LINE_BYTES: u64 = 4 * 1024 * 1024;

/// Longest prompt a plug-in may generate, in bytes.
const MAX_PROMPT_BYTES: usize = 64 * 1024;

/// A `[[plugin]]` entry of the node configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// Program and arguments, e.g. `["python3", "scripts/reasoning_gym_plugin.py"]`.
    pub command: Vec<String>,
    /// Families this node uses from it; the plug-in must offer each.
    pub families: Vec<String>,
    /// Longest wait for one answer, in seconds.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: f64,
}

fn default_timeout_seconds() -> f64 {
    30.0
}

/// A family as a plug-in describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFamily {
    /// Name used in task references.
    pub name: String,
    /// One line saying what it asks.
    #[serde(default)]
    pub description: String,
    /// Highest difficulty.
    #[serde(default)]
    pub max_difficulty: u32,
}

/// What went wrong with a plug-in, naming its command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task plug-in `{command}`: {problem}")]
pub struct PluginError {
    /// The command line, for people.
    pub command: String,
    /// What is wrong and what to do.
    pub problem: String,
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<Result<String, String>>,
    /// Why the process is no longer used, once it is not.
    stopped: Option<String>,
}

/// A running plug-in.
pub struct Plugin {
    command: String,
    families: Vec<PluginFamily>,
    timeout: Duration,
    process: Mutex<Process>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("command", &self.command)
            .field("families", &self.families)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Hello {
    protocol: u64,
    families: Vec<PluginFamily>,
}

#[derive(Deserialize)]
struct Generated {
    prompt: String,
    answer: Value,
}

#[derive(Deserialize)]
struct Scored {
    score: f64,
}

impl Plugin {
    /// Starts the plug-in, checks that it speaks this protocol and offers every family in `spec`,
    /// and that it generates each of them deterministically.
    pub fn start(spec: &PluginSpec) -> Result<Self, PluginError> {
        let command = spec.command.join(" ");
        let fail = |problem: String| PluginError {
            command: command.clone(),
            problem,
        };
        let (program, args) = spec.command.split_first().ok_or_else(|| {
            fail("`[[plugin]] command` is empty; give the program and its arguments".into())
        })?;
        if !(spec.timeout_seconds > 0.0 && spec.timeout_seconds <= 3600.0) {
            return Err(fail(format!(
                "`[[plugin]] timeout_seconds` = {} must be in (0, 3600]",
                spec.timeout_seconds
            )));
        }
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|err| {
                fail(format!(
                    "cannot start it ({err}); check that `{program}` is installed and on PATH, \
                     or fix `[[plugin]] command` in the config"
                ))
            })?;
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        let (sender, lines) = sync_channel(1);
        std::thread::Builder::new()
            .name("task-plugin-reader".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                loop {
                    let mut line = Vec::new();
                    let read = (&mut reader)
                        .take(MAX_LINE_BYTES + 1)
                        .read_until(b'\n', &mut line);
                    let item = match read {
                        Ok(0) => Err("closed its output (it exited?)".to_owned()),
                        Ok(_) if line.len() as u64 > MAX_LINE_BYTES => {
                            Err(format!("wrote a line over {MAX_LINE_BYTES} bytes"))
                        }
                        Ok(_) => String::from_utf8(line)
                            .map_err(|_| "wrote a line that is not UTF-8".to_owned()),
                        Err(err) => Err(format!("cannot be read from ({err})")),
                    };
                    let last = item.is_err();
                    if sender.send(item).is_err() || last {
                        return;
                    }
                }
            })
            .map_err(|err| fail(format!("cannot start a thread to read it ({err})")))?;
        let mut plugin = Self {
            command: command.clone(),
            families: Vec::new(),
            timeout: Duration::from_secs_f64(spec.timeout_seconds),
            process: Mutex::new(Process {
                child,
                stdin,
                lines,
                stopped: None,
            }),
        };
        let hello: Hello = plugin.request(json!({"op": "hello", "protocol": PROTOCOL_VERSION}))?;
        if hello.protocol != PROTOCOL_VERSION {
            return Err(fail(format!(
                "speaks task plug-in protocol {}, this node speaks {PROTOCOL_VERSION}",
                hello.protocol
            )));
        }
        let offered: Vec<&str> = hello.families.iter().map(|f| f.name.as_str()).collect();
        let missing: Vec<&str> = spec
            .families
            .iter()
            .map(String::as_str)
            .filter(|name| !offered.contains(name))
            .collect();
        if !missing.is_empty() {
            return Err(fail(format!(
                "does not offer {}; it offers: {}",
                missing.join(", "),
                offered.join(", ")
            )));
        }
        plugin.families = hello
            .families
            .into_iter()
            .filter(|f| spec.families.contains(&f.name))
            .collect();
        for family in &plugin.families {
            plugin.check_deterministic(family)?;
        }
        Ok(plugin)
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The families this node uses from the plug-in.
    pub fn families(&self) -> &[PluginFamily] {
        &self.families
    }

    fn error(&self, problem: String) -> PluginError {
        PluginError {
            command: self.command.clone(),
            problem,
        }
    }

    /// Asks the same questions twice, at the easiest and hardest levels and on a training and an
    /// evaluation seed, and compares the answers byte for byte.
    fn check_deterministic(&self, family: &PluginFamily) -> Result<(), PluginError> {
        for difficulty in [0, family.max_difficulty] {
            for (seed, index) in [(1, 0), (EVAL_SEED_BASE + 1, 7)] {
                let first = self.generate(&family.name, difficulty, seed, index)?;
                let second = self.generate(&family.name, difficulty, seed, index)?;
                if first != second {
                    return Err(self.error(format!(
                        "generated two different questions for family {}, difficulty {difficulty}, \
                         seed {seed}, index {index}; generation must depend on these four values \
                         only, or other nodes cannot check this node's questions",
                        family.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The question `index` of stream `seed` of `family` at `difficulty`. Its answer holds the
    /// plug-in's answer data as JSON text, handed back when scoring.
    pub fn generate(
        &self,
        family: &str,
        difficulty: u32,
        seed: u64,
        index: u64,
    ) -> Result<Question, PluginError> {
        let generated: Generated = self.request(json!({
            "op": "generate",
            "family": family,
            "difficulty": difficulty,
            "seed": seed,
            "index": index,
        }))?;
        if generated.prompt.trim().is_empty() || generated.prompt.len() > MAX_PROMPT_BYTES {
            return Err(self.error(format!(
                "generated a prompt of {} bytes for {family} (index {index}); prompts must be \
                 between 1 and {MAX_PROMPT_BYTES} bytes",
                generated.prompt.len()
            )));
        }
        Ok(Question {
            family: family.to_owned(),
            difficulty,
            seed,
            index,
            prompt: generated.prompt,
            answer: generated.answer.to_string(),
        })
    }

    /// The plug-in's score in [0, 1] of `completion`, whose answer text the node read as
    /// `extracted`.
    pub fn score(
        &self,
        question: &Question,
        completion: &str,
        extracted: Option<&str>,
    ) -> Result<f64, PluginError> {
        let answer: Value = serde_json::from_str(&question.answer).map_err(|err| {
            self.error(format!(
                "a question of {} carries answer data that is not JSON ({err})",
                question.family
            ))
        })?;
        let scored: Scored = self.request(json!({
            "op": "score",
            "family": question.family,
            "difficulty": question.difficulty,
            "seed": question.seed,
            "index": question.index,
            "answer": answer,
            "completion": completion,
            "extracted": extracted,
        }))?;
        if !(0.0..=1.0).contains(&scored.score) {
            return Err(self.error(format!(
                "scored a completion {}; scores must be in [0, 1]",
                scored.score
            )));
        }
        Ok(scored.score)
    }

    /// Sends one request and reads its answer. Any failure stops the plug-in for good: a late or
    /// garbled answer would be read as the answer to the next request.
    fn request<T: for<'de> Deserialize<'de>>(&self, request: Value) -> Result<T, PluginError> {
        let op = request["op"].as_str().unwrap_or("?").to_owned();
        let mut process = self
            .process
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(why) = &process.stopped {
            return Err(self.error(format!("was stopped earlier: {why}")));
        }
        let answer = exchange(&mut process, &request, self.timeout);
        let line = match answer {
            Ok(line) => line,
            Err(problem) => {
                let problem = format!("{problem} (request `{op}`)");
                process.stopped = Some(problem.clone());
                let _ = process.child.kill();
                let _ = process.child.wait();
                return Err(self.error(problem));
            }
        };
        let value: Value = match serde_json::from_str(line.trim_end()) {
            Ok(value) => value,
            Err(err) => {
                let problem = format!(
                    "answered `{op}` with a line that is not JSON ({err}): {:?}",
                    truncate(&line, 200)
                );
                process.stopped = Some(problem.clone());
                let _ = process.child.kill();
                let _ = process.child.wait();
                return Err(self.error(problem));
            }
        };
        drop(process);
        if let Some(message) = value.get("error") {
            return Err(self.error(format!("refused `{op}`: {}", plain(message))));
        }
        serde_json::from_value(value.clone()).map_err(|err| {
            self.error(format!(
                "answered `{op}` with {} ({err})",
                truncate(&value.to_string(), 200)
            ))
        })
    }
}

fn exchange(process: &mut Process, request: &Value, timeout: Duration) -> Result<String, String> {
    let mut line = request.to_string();
    line.push('\n');
    process
        .stdin
        .write_all(line.as_bytes())
        .and_then(|()| process.stdin.flush())
        .map_err(|err| format!("cannot be written to ({err}); did it exit?"))?;
    match process.lines.recv_timeout(timeout) {
        Ok(answer) => answer,
        Err(RecvTimeoutError::Timeout) => Err(format!(
            "did not answer within {:.1} s (raise `[[plugin]] timeout_seconds` if it is slow)",
            timeout.as_secs_f64()
        )),
        Err(RecvTimeoutError::Disconnected) => Err("closed its output (it exited?)".to_owned()),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let process = self
            .process
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = process.child.kill();
        let _ = process.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RewardConfig, TaskCatalog, TaskError};

    /// A plug-in written in POSIX shell: `answers` is the body of a `case "$line" in … esac` over
    /// each request line. Requests are serialized with sorted keys, which the patterns follow.
    fn shell(answers: &str, families: &[&str]) -> PluginSpec {
        PluginSpec {
            command: vec![
                "sh".into(),
                "-c".into(),
                format!("while IFS= read -r line; do case \"$line\" in {answers} esac; done"),
            ],
            families: families.iter().map(|f| (*f).to_owned()).collect(),
            timeout_seconds: 5.0,
        }
    }

    const HELLO: &str = r#"*'"hello"'*) echo '{"protocol":1,"families":[{"name":"echo","description":"repeats","max_difficulty":1}]}' ;;"#;

    fn sh_available() -> bool {
        let found = Command::new("sh").arg("-c").arg("true").status().is_ok();
        if !found {
            eprintln!("skipped: no `sh` on this machine to run test plug-ins");
        }
        found
    }

    #[test]
    fn a_well_behaved_plugin_generates_checks_and_scores() {
        if !sh_available() {
            return;
        }
        let answers = format!(
            r#"{HELLO}
            *'"index":3'*'"generate"'*) echo '{{"prompt":"Say three.","answer":{{"text":"3"}}}}' ;;
            *'"generate"'*) echo '{{"prompt":"Say one.","answer":{{"text":"1"}}}}' ;;
            *'"extracted":"3"'*'"score"'*) echo '{{"score":1.0}}' ;;
            *'"extracted":"2"'*'"score"'*) echo '{{"score":0.5}}' ;;
            *'"score"'*) echo '{{"score":0}}' ;;
            *) echo '{{"error":"unknown op"}}' ;;"#
        );
        let plugin = Plugin::start(&shell(&answers, &["echo"])).unwrap();
        let mut catalog = TaskCatalog::new();
        catalog.add_plugin(plugin).unwrap();
        let info = catalog.family_info("echo").unwrap();
        assert_eq!(info.max_difficulty, 1);
        assert!(info.plugin.unwrap().starts_with("sh -c"));
        let question = catalog.generate("echo", 1, 9, 3).unwrap();
        assert_eq!(question.prompt, "Say three.");
        assert_eq!(question.answer, r#"{"text":"3"}"#);
        let task = swarm_protocol::TaskRef::Procedural {
            family: "echo".into(),
            difficulty: 1,
            seed: 9,
            index: 3,
        };
        assert_eq!(catalog.check(&task, "Say three.").unwrap(), question);
        assert_eq!(
            catalog.check(&task, "Say one."),
            Err(TaskError::PromptMismatch)
        );
        assert!(matches!(
            catalog.generate("echo", 2, 9, 3),
            Err(TaskError::Difficulty { max: 1, .. })
        ));
        let rewards = RewardConfig::default();
        let right = catalog
            .verify(&question, "so <answer>3</answer>", &rewards)
            .unwrap();
        assert!(right.correct && right.reward == 1.0);
        let partial = catalog
            .verify(&question, "<answer>2</answer>", &rewards)
            .unwrap();
        assert!(!partial.correct && partial.reward == 0.5, "{partial:?}");
        let wrong = catalog
            .verify(&question, "<answer>7</answer>", &rewards)
            .unwrap();
        assert_eq!(wrong.reward, rewards.format_reward);
    }

    #[test]
    fn misbehaving_plugins_are_named_and_stopped() {
        if !sh_available() {
            return;
        }
        let cases: [(PluginSpec, &str); 7] = [
            (
                PluginSpec {
                    command: vec!["/nonexistent/plugin".into()],
                    families: vec!["echo".into()],
                    timeout_seconds: 5.0,
                },
                "cannot start it",
            ),
            (
                shell(HELLO, &["poem"]),
                "does not offer poem; it offers: echo",
            ),
            (shell(r#"*) echo 'not json' ;;"#, &["echo"]), "not JSON"),
            (
                shell(r#"*) sleep 30 ;;"#, &["echo"]).with_timeout(0.3),
                "did not answer within 0.3 s",
            ),
            (shell(r#"*) exit 3 ;;"#, &["echo"]), "exited"),
            (
                shell(
                    &format!(
                        r#"{HELLO} *) n=$((n+1)); echo "{{\"prompt\":\"question $n\",\"answer\":1}}" ;;"#
                    ),
                    &["echo"],
                ),
                "two different questions",
            ),
            (
                shell(
                    &format!(r#"{HELLO} *) echo '{{"error":"no such family"}}' ;;"#),
                    &["echo"],
                ),
                "refused `generate`: no such family",
            ),
        ];
        for (spec, expected) in cases {
            let err = Plugin::start(&spec).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in: {err}");
            assert!(err.starts_with("task plug-in `"), "{err}");
        }
    }

    #[test]
    fn a_plugin_that_times_out_stays_stopped() {
        if !sh_available() {
            return;
        }
        let answers = format!(
            r#"{HELLO}
            *'"index":5'*) sleep 30 ;;
            *'"generate"'*) echo '{{"prompt":"Say one.","answer":1}}' ;;"#
        );
        let plugin = Plugin::start(&shell(&answers, &["echo"]).with_timeout(0.5)).unwrap();
        let err = plugin.generate("echo", 0, 1, 5).unwrap_err().to_string();
        assert!(err.contains("did not answer"), "{err}");
        let err = plugin.generate("echo", 0, 1, 0).unwrap_err().to_string();
        assert!(err.contains("was stopped earlier"), "{err}");
    }

    #[test]
    fn a_family_name_is_served_by_one_source() {
        if !sh_available() {
            return;
        }
        let hello = r#"*'"hello"'*) echo '{"protocol":1,"families":[{"name":"sorting"}]}' ;;
            *) echo '{"prompt":"p","answer":1}' ;;"#;
        let plugin = Plugin::start(&shell(hello, &["sorting"])).unwrap();
        let err = TaskCatalog::new().add_plugin(plugin).unwrap_err();
        assert!(matches!(err, TaskError::FamilyClash { .. }), "{err}");
    }

    impl PluginSpec {
        fn with_timeout(mut self, seconds: f64) -> Self {
            self.timeout_seconds = seconds;
            self
        }
    }
}

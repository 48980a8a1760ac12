//! Prompt rendering: instruct checkpoints expect their chat template around a question, base models
//! and the tiny policy take the raw text.
//!
//! The template is the Jinja source from `chat_template.jinja` or `tokenizer_config.json`'s
//! `chat_template`, rendered by minijinja with the variables the Hugging Face tokenizer passes
//! (`messages`, `add_generation_prompt`, `bos_token`, `eos_token`, ...). Templates call a few Python
//! string and dict methods that Jinja inherits from Python; the common ones are provided here.
//! `strftime_now` is deliberately left undefined so that templates fall back to their fixed date:
//! every node must render the same question to the same text.

use std::path::Path;

use anyhow::{Context, Result, bail};
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};
use serde::Serialize;

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template and the special-token strings it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    special_tokens: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

/// The text of a special-token entry of `tokenizer_config.json`: either a plain string or an
/// added-token object with a `content` field.
fn token_text(value: &serde_json::Value) -> Option<&str> {
    value
        .as_str()
        .or_else(|| value.get("content").and_then(serde_json::Value::as_str))
}

/// The template source from `tokenizer_config.json`: a string, or a list of named templates of which
/// the one named `default` is used.
fn template_from_config(config: &serde_json::Value) -> Result<Option<String>> {
    match config.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(source)) => Ok(Some(source.clone())),
        Some(serde_json::Value::Array(named)) => named
            .iter()
            .find(|t| t.get("name").and_then(serde_json::Value::as_str) == Some("default"))
            .and_then(|t| t.get("template").and_then(serde_json::Value::as_str))
            .map(|s| Some(s.to_owned()))
            .context("`chat_template` is a list without a template named `default`"),
        Some(other) => bail!("`chat_template` must be a string or a list, found {other}"),
    }
}

impl ChatTemplate {
    /// Compiles `source`; `tokenizer_config` supplies the special-token strings (`bos_token`, ...).
    pub fn new(source: &str, tokenizer_config: &serde_json::Value) -> Result<Self> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(python_methods);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|err| anyhow::anyhow!("the chat template does not compile: {err:#}"))?;
        let mut special_tokens = serde_json::Map::new();
        for key in [
            "bos_token",
            "eos_token",
            "pad_token",
            "unk_token",
            "sep_token",
            "cls_token",
            "mask_token",
        ] {
            if let Some(text) = config_token(tokenizer_config, key) {
                special_tokens.insert(key.to_owned(), serde_json::Value::String(text.to_owned()));
            }
        }
        Ok(Self {
            env,
            special_tokens,
        })
    }

    /// The model directory's template, if it has one: `chat_template.jinja` wins over the
    /// `chat_template` field of `tokenizer_config.json`, as in the Hugging Face loader.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config = if config_path.exists() {
            let text = std::fs::read_to_string(&config_path)
                .with_context(|| format!("cannot read {}", config_path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", config_path.display()))?
        } else {
            serde_json::Value::Null
        };
        let jinja_path = dir.join("chat_template.jinja");
        let source = if jinja_path.exists() {
            Some(
                std::fs::read_to_string(&jinja_path)
                    .with_context(|| format!("cannot read {}", jinja_path.display()))?,
            )
        } else {
            template_from_config(&config).with_context(|| config_path.display().to_string())?
        };
        source
            .map(|source| {
                Self::new(&source, &config)
                    .with_context(|| format!("chat template of {}", dir.display()))
            })
            .transpose()
    }

    /// `prompt` as the single user turn of a conversation, followed by the assistant's opening.
    pub fn render(&self, prompt: &str) -> Result<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .expect("the template was added at construction");
        let mut context = self.special_tokens.clone();
        context.insert(
            "messages".into(),
            serde_json::to_value([Message {
                role: "user",
                content: prompt,
            }])?,
        );
        context.insert("add_generation_prompt".into(), true.into());
        template
            .render(context)
            .map_err(|err| anyhow::anyhow!("the chat template failed to render: {err:#}"))
    }
}

fn config_token<'a>(config: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    config.get(key).and_then(token_text)
}

/// Python `str` and `dict` methods that chat templates call (`content.strip()`,
/// `tool.items()`, ...), which Jinja2 gets from Python and minijinja does not have.
fn python_methods(
    state: &State<'_, '_>,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let string_arg = |index: usize| -> Result<Option<String>, Error> {
        match args.get(index) {
            None => Ok(None),
            Some(v) if v.is_none() || v.is_undefined() => Ok(None),
            Some(v) => v.as_str().map(|s| Some(s.to_owned())).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{method}() expects a string argument"),
                )
            }),
        }
    };
    match (value.kind(), method) {
        (ValueKind::String, _) => {
            let text = value.as_str().unwrap_or_default();
            let chars = string_arg(0)?;
            let trim_set = |c: char| {
                chars
                    .as_deref()
                    .map_or(c.is_whitespace(), |s| s.contains(c))
            };
            Ok(match method {
                "strip" => Value::from(text.trim_matches(trim_set)),
                "lstrip" => Value::from(text.trim_start_matches(trim_set)),
                "rstrip" => Value::from(text.trim_end_matches(trim_set)),
                "startswith" => Value::from(text.starts_with(chars.as_deref().unwrap_or_default())),
                "endswith" => Value::from(text.ends_with(chars.as_deref().unwrap_or_default())),
                "lower" => Value::from(text.to_lowercase()),
                "upper" => Value::from(text.to_uppercase()),
                "split" => Value::from(match chars.as_deref() {
                    Some(separator) => text.split(separator).map(Value::from).collect::<Vec<_>>(),
                    None => text.split_whitespace().map(Value::from).collect(),
                }),
                "replace" => {
                    let to = string_arg(1)?.unwrap_or_default();
                    Value::from(text.replace(chars.as_deref().unwrap_or_default(), &to))
                }
                _ => return Err(Error::from(ErrorKind::UnknownMethod)),
            })
        }
        (ValueKind::Map, "items") => state.apply_filter("items", std::slice::from_ref(value)),
        (ValueKind::Map, "keys") => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
        (ValueKind::Map, "values") => Ok(Value::from(
            value
                .try_iter()?
                .map(|key| value.get_item(&key))
                .collect::<Result<Vec<_>, _>>()?,
        )),
        (ValueKind::Map, "get") => {
            let item = value.get_item(args.first().unwrap_or(&Value::UNDEFINED))?;
            Ok(if item.is_undefined() {
                args.get(1).cloned().unwrap_or(Value::from(()))
            } else {
                item
            })
        }
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The ChatML layout used by Qwen2 instruct models, written the way their templates are.
    const CHATML: &str = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + \
        message.content.strip() + '<|im_end|>' + '\\n' }}{%- endfor %}\
        {%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    #[test]
    fn renders_a_chatml_template_with_python_string_methods() {
        let template = ChatTemplate::new(CHATML, &json!({})).unwrap();
        assert_eq!(
            template.render("  What is 2+2? ").unwrap(),
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn special_tokens_come_from_the_tokenizer_config() {
        let source = "{{ bos_token }}{% for m in messages %}[{{ m['role'] | upper }}] \
            {{ m['content'] }}{{ eos_token }}{% endfor %}";
        let config = json!({"bos_token": {"content": "<s>", "special": true}, "eos_token": "</s>"});
        let template = ChatTemplate::new(source, &config).unwrap();
        assert_eq!(template.render("hi").unwrap(), "<s>[USER] hi</s>");
    }

    #[test]
    fn template_errors_are_reported() {
        let raising = "{{ raise_exception('Conversation roles must alternate') }}";
        let err = ChatTemplate::new(raising, &json!({}))
            .unwrap()
            .render("x")
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("roles must alternate"),
            "{err:#}"
        );
        let broken = ChatTemplate::new("{% for %}", &json!({})).err().unwrap();
        assert!(broken.to_string().contains("does not compile"), "{broken}");
    }

    #[test]
    fn model_directories_without_a_template_render_raw_text() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ChatTemplate::from_model_dir(dir.path()).unwrap().is_none());
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            json!({"chat_template": [{"name": "default", "template": CHATML}]}).to_string(),
        )
        .unwrap();
        let template = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
        assert!(
            template
                .render("q")
                .unwrap()
                .starts_with("<|im_start|>user\nq")
        );
        std::fs::write(
            dir.path().join("chat_template.jinja"),
            "Q: {{ messages[0].content }}\nA:",
        )
        .unwrap();
        let template = ChatTemplate::from_model_dir(dir.path()).unwrap().unwrap();
        assert_eq!(template.render("q").unwrap(), "Q: q\nA:");
    }
}

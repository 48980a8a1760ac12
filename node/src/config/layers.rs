//! Layering of configuration sources onto the defaults: file, then `SWARM_*` environment, then flags.
//!
//! The serialized defaults act as the schema: every key a source may set exists there, with the type it
//! must have. Checking sources against it (rather than relying on serde alone) lets every error name the
//! exact key, the source it came from and what would be accepted.

use anyhow::{Result, anyhow, bail};
use toml::{Table, Value};

/// Prefix of environment variables that override configuration keys (`SWARM_NET_LISTEN` sets `net.listen`).
pub const ENV_PREFIX: &str = "SWARM_";

/// Merges `overlay` (from `source`, e.g. a file name) into `base`, refusing keys the schema lacks and values
/// of the wrong type.
pub fn merge(base: &mut Table, overlay: Table, source: &str, path: &str) -> Result<()> {
    for (key, value) in overlay {
        let key_path = join(path, &key);
        let Some(slot) = base.get_mut(&key) else {
            let known: Vec<&str> = base.keys().map(String::as_str).collect();
            bail!(
                "unknown key `{key_path}` in {source}; known keys{}: {}",
                if path.is_empty() {
                    String::new()
                } else {
                    format!(" in [{path}]")
                },
                known.join(", ")
            );
        };
        match (slot, value) {
            (Value::Table(slot), Value::Table(overlay)) => merge(slot, overlay, source, &key_path)?,
            (slot, value) => *slot = coerce(slot, value, &key_path, source)?,
        }
    }
    Ok(())
}

/// Applies `SWARM_<SECTION>_<KEY>` variables. Returns the names of `SWARM_*` variables that match no key
/// and are not in `ignored` (flags' own variables), so the caller can warn about likely typos.
pub fn apply_env(
    base: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
    ignored: &[&str],
) -> Result<Vec<String>> {
    let mut leaves = Vec::new();
    collect_leaves(base, "", &mut leaves);
    let mut unknown = Vec::new();
    for (name, raw) in vars {
        let Some(suffix) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ignored.contains(&name.as_str()) {
            continue;
        }
        let Some(key_path) = leaves.iter().find(|leaf| env_suffix(leaf) == suffix) else {
            unknown.push(name);
            continue;
        };
        let source = format!("environment variable {name}");
        let slot = lookup_mut(base, key_path).expect("leaf paths come from this table");
        let value = parse_like(slot, &raw, key_path, &source)?;
        *slot = value;
    }
    Ok(unknown)
}

/// Sets one dotted key from a command-line flag.
pub fn set(base: &mut Table, key_path: &str, value: Value, flag: &str) -> Result<()> {
    let source = format!("flag {flag}");
    let slot = lookup_mut(base, key_path)
        .ok_or_else(|| anyhow!("internal: flag {flag} targets unknown key `{key_path}`"))?;
    *slot = coerce(slot, value, key_path, &source)?;
    Ok(())
}

/// The environment variable name for a dotted key.
pub fn env_name(key_path: &str) -> String {
    format!("{ENV_PREFIX}{}", env_suffix(key_path))
}

fn env_suffix(key_path: &str) -> String {
    key_path.replace(['.', '-'], "_").to_ascii_uppercase()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn collect_leaves(table: &Table, path: &str, out: &mut Vec<String>) {
    for (key, value) in table {
        let key_path = join(path, key);
        match value {
            Value::Table(inner) => collect_leaves(inner, &key_path, out),
            _ => out.push(key_path),
        }
    }
}

/// Every leaf of `table` as (dotted key, value).
pub fn leaves(table: &Table) -> Vec<(String, Value)> {
    let mut paths = Vec::new();
    collect_leaves(table, "", &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let value = lookup(table, &path)
                .cloned()
                .expect("leaf paths come from this table");
            (path, value)
        })
        .collect()
}

/// Sets the leaf `key_path` of `table` (which must exist) to `value`.
pub fn replace(table: &mut Table, key_path: &str, value: Value) {
    if let Some(slot) = lookup_mut(table, key_path) {
        *slot = value;
    }
}

fn lookup<'a>(table: &'a Table, key_path: &str) -> Option<&'a Value> {
    let mut parts = key_path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn lookup_mut<'a>(table: &'a mut Table, key_path: &str) -> Option<&'a mut Value> {
    let mut parts = key_path.split('.');
    let mut value = table.get_mut(parts.next()?)?;
    for part in parts {
        value = value.as_table_mut()?.get_mut(part)?;
    }
    Some(value)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "true or false",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

/// Checks that `value` has the type of the default in `slot`, widening integers to floats.
fn coerce(slot: &Value, value: Value, key_path: &str, source: &str) -> Result<Value> {
    match (slot, value) {
        (Value::Float(_), Value::Integer(i)) => Ok(Value::Float(i as f64)),
        (Value::Array(_), Value::Array(items)) => Ok(Value::Array(items)),
        (slot, value) if std::mem::discriminant(slot) == std::mem::discriminant(&value) => {
            Ok(value)
        }
        (slot, value) => bail!(
            "`{key_path}` in {source} must be {}, found {} ({value})",
            type_name(slot),
            type_name(&value)
        ),
    }
}

/// Parses an environment string as the type of the default in `slot`. Lists are comma-separated.
fn parse_like(slot: &Value, raw: &str, key_path: &str, source: &str) -> Result<Value> {
    let bad = |what: &str| anyhow!("`{key_path}` from {source} must be {what}, found `{raw}`");
    Ok(match slot {
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Integer(_) => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Value::Float(_) => Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        Value::Boolean(_) => Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(bad("true or false")),
        }),
        Value::Array(_) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        ),
        Value::Datetime(_) | Value::Table(_) => bail!("`{key_path}` cannot be set from {source}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Table {
        toml::from_str(
            r#"
            [net]
            listen = ["/ip4/0.0.0.0/tcp/0"]
            local = false
            [learner]
            lr = 0.001
            group_size = 8
            "#,
        )
        .unwrap()
    }

    #[test]
    fn file_overrides_defaults_and_widens_integers() {
        let mut base = schema();
        let file: Table = toml::from_str("[learner]\nlr = 1\n").unwrap();
        merge(&mut base, file, "node.toml", "").unwrap();
        assert_eq!(base["learner"]["lr"].as_float(), Some(1.0));
        assert_eq!(base["learner"]["group_size"].as_integer(), Some(8));
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_key() {
        let mut base = schema();
        let file: Table = toml::from_str("[learner]\nlearning_rate = 1\n").unwrap();
        let err = merge(&mut base, file, "node.toml", "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`learner.learning_rate`") && err.contains("lr"),
            "{err}"
        );

        let file: Table = toml::from_str("[net]\nlocal = \"yes\"\n").unwrap();
        let err = merge(&mut base, file, "node.toml", "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`net.local`") && err.contains("true or false"),
            "{err}"
        );
    }

    #[test]
    fn environment_sets_typed_values_and_reports_unknown_names() {
        let mut base = schema();
        let vars = [
            ("SWARM_LEARNER_GROUP_SIZE", "4"),
            (
                "SWARM_NET_LISTEN",
                "/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/udp/1/quic-v1",
            ),
            ("SWARM_NET_LOCLA", "true"),
            ("SWARM_CONFIG", "x.toml"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let unknown = apply_env(&mut base, vars, &["SWARM_CONFIG"]).unwrap();
        assert_eq!(unknown, ["SWARM_NET_LOCLA"]);
        assert_eq!(base["learner"]["group_size"].as_integer(), Some(4));
        assert_eq!(base["net"]["listen"].as_array().unwrap().len(), 2);

        let err = apply_env(
            &mut base,
            [("SWARM_LEARNER_LR".to_owned(), "fast".to_owned())],
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`learner.lr`") && err.contains("SWARM_LEARNER_LR"),
            "{err}"
        );
    }
}

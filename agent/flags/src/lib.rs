//! k3s-style configuration shared by `edge-server` and `edge-agent`: every flag can also come from
//! an `EDGE_*` environment variable and from a YAML file with the flags' names as keys
//! (`/etc/edge/config.yaml`). Precedence: flag, then environment, then file.

use std::path::{Path, PathBuf};

use clap::Parser;

#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    #[error("{0}")]
    Usage(String),
    #[error("reading {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0}: {1}")]
    File(PathBuf, String),
}

/// Parses `args` (program name first) into `T`, merging in the config file that `config_file`
/// names in the first parse. `--help` and `--version` print and exit, as clap does.
pub fn load<T: Parser>(args: Vec<String>, config_file: impl Fn(&T) -> &Path) -> Result<T, FlagsError> {
    let first: T = parse(&args)?;
    let path = config_file(&first).to_path_buf();
    let file_args = match std::fs::read_to_string(&path) {
        Ok(text) => args_from_yaml(&text).map_err(|e| FlagsError::File(path.clone(), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(FlagsError::Read(path, e)),
    };
    if file_args.is_empty() {
        return Ok(first);
    }
    // File values go first so that later command-line flags override them; a key whose
    // environment variable is set is left out so that the environment wins over the file.
    let cmd = T::command();
    let mut merged = vec![args.first().cloned().unwrap_or_default()];
    for (flag, value) in file_args {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(flag.as_str())) else {
            return Err(FlagsError::File(path, format!("unknown key {flag:?}")));
        };
        if arg.get_env().is_some_and(|env| std::env::var_os(env).is_some()) {
            continue;
        }
        match value {
            Some(v) => merged.extend([format!("--{flag}"), v]),
            None => merged.push(format!("--{flag}")),
        }
    }
    merged.extend(args.into_iter().skip(1));
    parse(&merged)
}

fn parse<T: Parser>(args: &[String]) -> Result<T, FlagsError> {
    let matches = T::command().args_override_self(true).try_get_matches_from(args).map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            std::process::exit(0);
        }
        FlagsError::Usage(e.render().to_string().trim_end().to_string())
    })?;
    T::from_arg_matches(&matches).map_err(|e| FlagsError::Usage(e.to_string()))
}

/// Turns `key: value` pairs into `(flag, value)`; booleans become bare flags (or are left out when
/// false), lists repeat the flag.
pub fn args_from_yaml(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let map = match doc {
        serde_yaml::Value::Null => return Ok(Vec::new()),
        serde_yaml::Value::Mapping(m) => m,
        _ => return Err("expected a mapping of flag names to values".into()),
    };
    let scalar = |key: &str, v: serde_yaml::Value| -> Result<Option<String>, String> {
        match v {
            serde_yaml::Value::String(s) => Ok(Some(s)),
            serde_yaml::Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(format!("{key}: unsupported value {other:?}")),
        }
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let key = k.as_str().ok_or("keys must be strings")?.to_string();
        match v {
            serde_yaml::Value::Bool(true) => out.push((key, None)),
            serde_yaml::Value::Bool(false) => {}
            serde_yaml::Value::Sequence(items) => {
                for item in items {
                    let value = scalar(&key, item)?;
                    out.push((key.clone(), value));
                }
            }
            other => {
                let value = scalar(&key, other)?;
                out.push((key, value));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    struct Demo {
        #[arg(long, default_value = "/nonexistent")]
        config: PathBuf,
        #[arg(long, env = "EDGE_FLAGS_TEST_PORT", default_value_t = 1)]
        port: u16,
        #[arg(long)]
        debug: bool,
        #[arg(long = "label")]
        labels: Vec<String>,
    }

    fn args(extra: &[&str]) -> Vec<String> {
        std::iter::once("demo").chain(extra.iter().copied()).map(String::from).collect()
    }

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.yaml");
        std::fs::write(&f, "port: 7\ndebug: true\nlabel: [a=1, b=2]\n").unwrap();
        let p = f.to_str().unwrap();
        let d: Demo = load(args(&["--config", p]), |d: &Demo| &d.config).unwrap();
        assert_eq!((d.port, d.debug, d.labels.clone()), (7, true, vec!["a=1".to_string(), "b=2".to_string()]));
        let d: Demo = load(args(&["--config", p, "--port", "9"]), |d: &Demo| &d.config).unwrap();
        assert_eq!(d.port, 9);
        std::fs::write(&f, "nope: 1\n").unwrap();
        let e = load::<Demo>(args(&["--config", p]), |d| &d.config).unwrap_err();
        assert!(e.to_string().contains("unknown key \"nope\""), "{e}");
        let d: Demo = load(args(&[]), |d: &Demo| &d.config).unwrap();
        assert_eq!(d.port, 1);
    }

    #[test]
    fn yaml_shapes() {
        assert_eq!(args_from_yaml("").unwrap(), vec![]);
        assert_eq!(args_from_yaml("a: false\n").unwrap(), vec![]);
        assert!(args_from_yaml("- x\n").is_err());
        assert!(args_from_yaml("a: {b: 1}\n").is_err());
    }
}

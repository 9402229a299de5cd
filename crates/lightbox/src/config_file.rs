//! The optional TOML configuration file and `lightbox config show`.
//!
//! Precedence, highest first: command-line flags, environment variables, the
//! file (`--config FILE` or `LIGHTBOX_CONFIG`), built-in defaults. The file
//! holds the same settings as the flags, named like them (`data_dir` or
//! `data-dir`), plus the `aws_*` settings of the S3 blob store. clap already
//! orders flags > env > defaults, so the file slots in by supplying, before
//! parsing, each setting whose environment variable is not set.

use anyhow::{anyhow, bail, Context};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Command};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// S3 settings object_store reads from the environment; the file may hold them too.
const AWS_SETTINGS: &[(&str, &str)] = &[
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("aws_session_token", "AWS_SESSION_TOKEN"),
    ("aws_region", "AWS_REGION"),
    ("aws_endpoint", "AWS_ENDPOINT"),
    ("aws_allow_http", "AWS_ALLOW_HTTP"),
];

/// What the configuration file contributed.
#[derive(Debug, Default)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    /// Environment variables whose value came from the file.
    pub from_file: BTreeSet<String>,
}

/// Reads the configuration file, if one is named, into the environment of
/// this process (only where a variable is not set). Call before anything
/// else runs, while the process has one thread.
pub fn load(command: &Command) -> anyhow::Result<Loaded> {
    let path = path_from_args().or_else(|| {
        std::env::var_os("LIGHTBOX_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let Some(path) = path else {
        return Ok(Loaded::default());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    let known = settings(command);
    let mut from_file = BTreeSet::new();
    for (key, value) in table {
        let env = known.get(&key.replace('-', "_")).ok_or_else(|| {
            anyhow!(
                "{}: unknown setting `{key}`; the settings are: {}",
                path.display(),
                known.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => bail!(
                "{}: `{key}` must be a string, a number or a boolean",
                path.display()
            ),
        };
        if std::env::var_os(env).is_none() {
            // Safe: called at the start of main, before any other thread exists.
            std::env::set_var(env, value);
            from_file.insert(env.clone());
        }
    }
    Ok(Loaded {
        path: Some(path),
        from_file,
    })
}

/// `--config FILE` or `--config=FILE` on the command line, read before clap
/// parses it (clap also declares the flag, for help and validation).
fn path_from_args() -> Option<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(value) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// Setting name (the long flag, `_` for `-`) -> environment variable, for
/// every flag of every subcommand that has one.
fn settings(command: &Command) -> BTreeMap<String, String> {
    fn walk(command: &Command, out: &mut BTreeMap<String, String>) {
        for arg in command.get_arguments() {
            if let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) {
                if long != "config" {
                    out.entry(long.replace('-', "_"))
                        .or_insert_with(|| env.to_string_lossy().into_owned());
                }
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(command, &mut out);
    for (key, env) in AWS_SETTINGS {
        out.insert((*key).to_owned(), (*env).to_owned());
    }
    out
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Print JSON instead of TOML.
    #[arg(long)]
    json: bool,
    /// The server's settings, as `lightbox serve` would take them.
    #[command(flatten)]
    serve: crate::serve::ServeArgs,
}

/// One effective setting, as `config show` prints it.
struct Shown {
    key: String,
    value: Option<String>,
    source: &'static str,
}

/// Prints the settings `lightbox serve` would run with (given the same flags,
/// environment and file), secrets redacted, each with where it came from.
pub fn show(args: &ShowArgs, matches: &ArgMatches, command: &Command, loaded: &Loaded) {
    let show_cmd = command
        .find_subcommand("config")
        .and_then(|c| c.find_subcommand("show"))
        .expect("config show is a subcommand");
    let mut shown = Vec::new();
    for arg in show_cmd.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if matches!(long, "json" | "config" | "help") {
            continue;
        }
        let value = matches.get_raw(id).map(|values| {
            values
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",")
        });
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable)
                if env.as_ref().is_some_and(|e| loaded.from_file.contains(e)) =>
            {
                "file"
            }
            Some(ValueSource::EnvVariable) => "env",
            Some(ValueSource::DefaultValue) => "default",
            _ => "unset",
        };
        let key = long.replace('-', "_");
        let value = value.map(|v| redact(&key, &v));
        shown.push(Shown { key, value, source });
    }
    for (key, env) in AWS_SETTINGS {
        let value = std::env::var(env).ok().filter(|v| !v.is_empty());
        let source = match &value {
            None => "unset",
            Some(_) if loaded.from_file.contains(*env) => "file",
            Some(_) => "env",
        };
        shown.push(Shown {
            key: (*key).to_owned(),
            value: value.map(|v| redact(key, &v)),
            source,
        });
    }
    if args.json {
        let settings: serde_json::Map<String, serde_json::Value> = shown
            .iter()
            .map(|s| {
                (
                    s.key.clone(),
                    serde_json::json!({ "value": s.value, "source": s.source }),
                )
            })
            .collect();
        let out = serde_json::json!({
            "config_file": loaded.path.as_ref().map(|p| p.display().to_string()),
            "settings": settings,
        });
        println!("{out:#}");
        return;
    }
    match &loaded.path {
        Some(path) => println!("# configuration file: {}", path.display()),
        None => println!("# no configuration file (--config FILE or LIGHTBOX_CONFIG)"),
    }
    println!("# precedence: flag > env > file > default");
    for s in shown {
        match s.value {
            Some(v) => println!("{} = {}  # {}", s.key, toml_value(&v), s.source),
            None => println!("# {} is not set", s.key),
        }
    }
}

/// A TOML literal for a value: numbers and booleans bare, the rest quoted.
fn toml_value(value: &str) -> String {
    if value.parse::<i64>().is_ok() || value == "true" || value == "false" {
        value.to_owned()
    } else {
        toml::Value::String(value.to_owned()).to_string()
    }
}

const REDACTED: &str = "<redacted>";

/// Hides secrets: whole values of secret settings, and the password (and any
/// password-like query parameter) of a database URL.
pub fn redact(key: &str, value: &str) -> String {
    let key = key.to_ascii_lowercase();
    if key.contains("secret") || key.contains("password") || key.ends_with("_token") {
        return REDACTED.to_owned();
    }
    if key.contains("url") {
        return redact_url(value);
    }
    value.to_owned()
}

/// `scheme://user:password@host/db?password=…` -> password parts redacted.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let query = query.map(|q| {
        q.split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}={REDACTED}")
                }
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_passwords_are_redacted() {
        assert_eq!(
            redact("database_url", "postgres://lb:s3cret@db:5432/lightbox"),
            "postgres://lb:<redacted>@db:5432/lightbox"
        );
        assert_eq!(
            redact(
                "database_url",
                "postgresql://db/lightbox?user=lb&password=s3cret&sslmode=require"
            ),
            "postgresql://db/lightbox?user=lb&password=<redacted>&sslmode=require"
        );
        assert_eq!(
            redact("database_url", "postgres://lb@db/lightbox"),
            "postgres://lb@db/lightbox"
        );
        // A password with `@` in it does not leak its tail.
        assert_eq!(
            redact("database_url", "postgres://lb:p@ss@db/x"),
            "postgres://lb:<redacted>@db/x"
        );
        assert_eq!(
            redact("aws_secret_access_key", "wJalrXUtnFEMI"),
            "<redacted>"
        );
        assert_eq!(redact("oidc_client_secret", "kc-s3cret"), "<redacted>");
        assert_eq!(
            redact("oidc_issuer", "https://kc.example/realms/clinic"),
            "https://kc.example/realms/clinic"
        );
        assert_eq!(redact("listen", "0.0.0.0:8080"), "0.0.0.0:8080");
    }
}

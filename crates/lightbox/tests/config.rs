//! Configuration: flags > environment > file > defaults, `lightbox config
//! show` with secrets redacted, and `serve` running from a file.

mod support;

use serde_json::Value;
use std::process::Command;
use support::BIN;

fn lightbox(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command.args(args);
    for var in [
        "LIGHTBOX_CONFIG",
        "LIGHTBOX_LISTEN",
        "LIGHTBOX_DATA_DIR",
        "LIGHTBOX_RATE_LIMIT_PER_SECOND",
        "DATABASE_URL",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    command.output().expect("run lightbox")
}

fn show_json(args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut all = vec!["config", "show", "--json"];
    all.extend_from_slice(args);
    let out = lightbox(&all, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn setting<'a>(shown: &'a Value, key: &str) -> (&'a Value, &'a str) {
    let s = &shown["settings"][key];
    (&s["value"], s["source"].as_str().unwrap())
}

#[test]
fn flags_beat_env_beat_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lightbox.toml");
    std::fs::write(
        &file,
        "listen = \"0.0.0.0:9000\"\nrate-limit-per-second = 7\nrate_limit_burst = 70\n\
         trust_forwarded_for = true\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let shown = show_json(
        &["--config", file, "--listen", "127.0.0.1:1"],
        &[("LIGHTBOX_RATE_LIMIT_PER_SECOND", "9")],
    );
    assert_eq!(shown["config_file"], file);
    assert_eq!(
        setting(&shown, "listen"),
        (&Value::from("127.0.0.1:1"), "flag")
    );
    assert_eq!(
        setting(&shown, "rate_limit_per_second"),
        (&Value::from("9"), "env")
    );
    assert_eq!(
        setting(&shown, "rate_limit_burst"),
        (&Value::from("70"), "file")
    );
    assert_eq!(
        setting(&shown, "trust_forwarded_for"),
        (&Value::from("true"), "file")
    );
    assert_eq!(
        setting(&shown, "request_timeout_secs"),
        (&Value::from("30"), "default")
    );
    assert_eq!(setting(&shown, "database_url"), (&Value::Null, "unset"));

    // LIGHTBOX_CONFIG names the file too.
    let shown = show_json(&[], &[("LIGHTBOX_CONFIG", file)]);
    assert_eq!(
        setting(&shown, "listen"),
        (&Value::from("0.0.0.0:9000"), "file")
    );
    // Without a file, defaults.
    let shown = show_json(&[], &[]);
    assert_eq!(shown["config_file"], Value::Null);
    assert_eq!(
        setting(&shown, "listen"),
        (&Value::from("127.0.0.1:8080"), "default")
    );
}

#[test]
fn config_show_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lightbox.toml");
    std::fs::write(
        &file,
        "aws_secret_access_key = \"wJalrXUtnFEMIfilesecret\"\naws_region = \"eu-west-1\"\n",
    )
    .unwrap();
    let env = [(
        "DATABASE_URL",
        "postgres://lightbox:hunter2pass@db.internal:5432/lightbox?sslpassword=certpass",
    )];
    for format in [&["--json"][..], &[][..]] {
        let mut args = vec!["config", "show", "--config", file.to_str().unwrap()];
        args.extend_from_slice(format);
        let out = lightbox(&args, &env);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for secret in ["hunter2pass", "certpass", "wJalrXUtnFEMIfilesecret"] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
        assert!(
            text.contains("postgres://lightbox:<redacted>@db.internal:5432/lightbox"),
            "{text}"
        );
        assert!(text.contains("eu-west-1"), "{text}");
    }
}

#[test]
fn unknown_or_unreadable_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listn = \"0.0.0.0:1\"\n").unwrap();
    let out = lightbox(&["config", "show", "--config", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown setting `listn`"), "{err}");
    let out = lightbox(
        &["config", "show", "--config", "/nonexistent/lightbox.toml"],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration file"));
}

#[test]
fn serve_runs_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("lightbox.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", file.to_str().unwrap()])
        .env_remove("LIGHTBOX_DATA_DIR")
        .env_remove("LIGHTBOX_LISTEN")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    assert!(
        data.join("lightbox.db").exists(),
        "data_dir from the file is used"
    );
}
